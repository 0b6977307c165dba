"""Python types as plan types: annotations become `TypeSpec`s, contract classes become `Contract`s.

The mapping is the plan language's: `str`, `int`, `float`, `bool` are string, integer, number, boolean; `list[T]`
(and tuples, sets) an array; `dict` an object; `Literal[...]` and `Enum`s an enum; `T | None` an optional field;
pydantic models, dataclasses and `@contract` classes are contracts, named by their class. Constraints come from
`Annotated` metadata and pydantic `Field(...)` (ge, gt, le, lt, min_length, max_length, pattern, description), and
`opaque[T]` marks a field that reaches the model only in the JSON attachment. Anything else is refused with a
`DefinitionProblem` that says which field it is.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import sys
import threading
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel

from stratum_core.plan import PRIMITIVE_TYPES, Contract, TypeSpec
from stratum_core.plan._schema import content_hash, contract_schema

__all__ = [
    "OPAQUE",
    "ContractInfo",
    "DefinitionProblem",
    "Resolved",
    "contract_info",
    "defining_namespace",
    "is_contract_class",
    "merge_contracts",
    "opaque",
    "resolved_hints",
    "set_contract_name",
    "type_spec",
]

T = TypeVar("T")


class _Opaque:
    def __repr__(self) -> str:
        return "OPAQUE"


OPAQUE = _Opaque()
"""The `Annotated` marker of an opaque field."""

opaque: TypeAlias = Annotated[T, OPAQUE]
"""`opaque[T]`: a T that reaches the model only inside the JSON attachment, never in the instruction text."""


class DefinitionProblem(Exception):
    """Something in a Python definition that a plan cannot express; `path` locates it (`field.sub`)."""

    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.hint = hint

    def under(self, prefix: str) -> DefinitionProblem:
        """The same problem, located under `prefix`."""
        path = f"{prefix}.{self.path}" if self.path and prefix else prefix or self.path
        return DefinitionProblem(self.message, path=path, hint=self.hint)


@dataclass(frozen=True)
class ContractInfo:
    """A contract class as the plan sees it.

    Attributes:
        cls: the Python class.
        name: the contract's name (the class name, unless `@contract(name=...)` says otherwise).
        contract: its plan model.
        contracts: it and every contract it uses, by name.
        schema: its JSON Schema 2020-12 (nested contracts under `$defs`).
        content_hash: the sha256 of the schema's canonical JSON, 12 hex characters.
    """

    cls: type
    name: str
    contract: Contract
    contracts: Mapping[str, Contract]
    schema: Mapping[str, Any]
    content_hash: str


@dataclass(frozen=True)
class Resolved:
    """A Python annotation as a plan type: the spec, the contracts it uses, and whether None is allowed."""

    spec: TypeSpec
    contracts: Mapping[str, Contract]
    optional: bool = False


_infos: dict[type, ContractInfo] = {}
_names: dict[type, str] = {}
_building: list[type] = []
_namespaces: dict[Any, dict[str, Any]] = {}
_lock = threading.RLock()

_PRIMITIVES: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
_FORMATS: dict[Any, str] = {datetime.datetime: "date-time", datetime.date: "date", datetime.time: "time"}


def defining_namespace(obj: Any, depth: int) -> None:
    """Remember the local names of the frame `depth` levels up, where `obj` is being defined.

    Annotations are strings under `from __future__ import annotations`; a class or contract defined inside a
    function is found only among that function's locals, which Python does not keep for `get_type_hints`.
    """
    getframe = getattr(sys, "_getframe", None)
    if getframe is None:
        return
    try:
        frame = getframe(depth + 1)
    except ValueError:
        return
    if frame.f_code.co_name != "<module>":
        with _lock:
            _namespaces[obj] = dict(frame.f_locals)


def resolved_hints(obj: Any) -> dict[str, Any]:
    """`typing.get_type_hints` of a class or function, with the local names of where it was defined."""
    return typing.get_type_hints(obj, localns=_namespaces.get(obj), include_extras=True)


def is_contract_class(value: Any) -> bool:
    """Whether `value` is a class that maps to a contract: a pydantic model, a dataclass, or `@contract`-decorated."""
    if not isinstance(value, type):
        return False
    return (
        value in _names or value in _infos or issubclass(value, BaseModel) or dataclasses.is_dataclass(value)
    ) and value is not BaseModel


def set_contract_name(cls: type, name: str) -> None:
    """Name the contract of `cls` (before it is first converted)."""
    with _lock:
        _names[cls] = name


def merge_contracts(into: dict[str, Contract], new: Mapping[str, Contract]) -> None:
    """Add `new` to `into`; two different contracts under one name are a DefinitionProblem."""
    for name, contract in new.items():
        have = into.get(name)
        if have is not None and have != contract:
            raise DefinitionProblem(
                f"two different contracts are named '{name}'",
                hint="rename one of the classes, or pass @contract(name=...)",
            )
        into[name] = contract


def contract_info(cls: type) -> ContractInfo:
    """The contract of a class (computed once); raises DefinitionProblem for what a contract cannot hold.

    A contract that refers back to itself, directly or through others, is refused: plan contracts are trees.
    """
    with _lock:
        found = _infos.get(cls)
        if found is not None:
            return found
        name = _names.get(cls, cls.__name__)
        if cls in _building:
            cycle = " -> ".join(_names.get(c, c.__name__) for c in _building[_building.index(cls) :])
            raise DefinitionProblem(
                f"contract '{name}' refers back to itself ({cycle} -> {name})",
                hint="contracts cannot be recursive; cut the cycle (e.g. keep ids instead of nested records)",
            )
        if name in PRIMITIVE_TYPES:
            raise DefinitionProblem(f"'{name}' is a built-in type and cannot name a contract", hint="rename the class")
        _building.append(cls)
        try:
            fields, contracts = _contract_fields(cls)
        finally:
            _building.pop()
        contract = Contract(name=name, fields=fields)
        merge_contracts(contracts, {name: contract})
        schema = contract_schema(name, contracts)
        info = ContractInfo(
            cls=cls, name=name, contract=contract, contracts=contracts, schema=schema, content_hash=content_hash(schema)
        )
        _infos[cls] = info
        return info


def _field_defaults(cls: type) -> dict[str, tuple[bool, Any, Any]]:
    """Per field of a pydantic model or dataclass: (required, default, FieldInfo-like or None)."""
    out: dict[str, tuple[bool, Any, Any]] = {}
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        for name, info in cls.model_fields.items():
            required = info.is_required()
            value = None if required or info.default_factory is not None else info.default
            out[name] = (required, value, info)
        return out
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        default: Any = None
        described: Any = None
        required = item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
        if item.default is not dataclasses.MISSING:
            default = item.default
            if _is_field_info(default):  # `x: float = Field(ge=0)` on a dataclass
                described, default = default, None
                required = not _has_default(described)
        out[item.name] = (required, default, described)
    return out


def _is_field_info(value: Any) -> bool:
    return type(value).__name__ == "FieldInfo" and hasattr(value, "metadata")


def _has_default(info: Any) -> bool:
    default = getattr(info, "default", None)
    return default is not None and type(default).__name__ != "PydanticUndefinedType"


def _annotations(cls: type) -> dict[str, Any]:
    if issubclass(cls, BaseModel):
        annotations: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            annotation = info.annotation
            annotations[name] = _annotate(annotation, info.metadata)
        return annotations
    try:
        return resolved_hints(cls)
    except NameError as error:
        raise DefinitionProblem(
            f"the type {error.name!r} is not defined where contract '{cls.__name__}' is declared",
            hint="declare contracts before the contracts that use them",
        ) from error


def _contract_fields(cls: type) -> tuple[dict[str, TypeSpec], dict[str, Contract]]:
    if not (issubclass(cls, BaseModel) or dataclasses.is_dataclass(cls)):
        raise DefinitionProblem(
            f"class '{cls.__name__}' is not a contract", hint="decorate it with @contract (or make it a pydantic model)"
        )
    annotations = _annotations(cls)
    contracts: dict[str, Contract] = {}
    fields: dict[str, TypeSpec] = {}
    for name, (required, default, described) in _field_defaults(cls).items():
        annotation = annotations.get(name, Any)
        if described is not None and not issubclass(cls, BaseModel):
            annotation = _annotate(annotation, [described])
        try:
            resolved = type_spec(annotation)
        except DefinitionProblem as problem:
            raise problem.under(name) from None
        merge_contracts(contracts, resolved.contracts)
        spec = resolved.spec
        updates: dict[str, Any] = {}
        if not required or resolved.optional:
            updates["required"] = False
        if default is not None and not isinstance(default, enum.Enum):
            updates["default"] = _json_default(default, name)
        if described is not None and getattr(described, "description", None) and spec.description is None:
            updates["description"] = described.description
        fields[name] = spec.model_copy(update=updates) if updates else spec
    return fields, contracts


def _annotate(annotation: Any, metadata: list[Any]) -> Any:
    """`Annotated[annotation, *metadata]`, built at run time."""
    if not metadata:
        return annotation
    return Annotated.__class_getitem__((annotation, *metadata))  # type: ignore[attr-defined]


def _json_default(value: Any, where: str) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple) and all(isinstance(item, str | int | float | bool) for item in value):
        return list(value)
    raise DefinitionProblem(
        f"the default {value!r} is not a JSON value", path=where, hint="use a literal default, or leave it out"
    )


def type_spec(annotation: Any) -> Resolved:
    """The plan type of a Python annotation (see the module docstring); raises DefinitionProblem when there is none."""
    contracts: dict[str, Contract] = {}
    spec, optional = _spec(annotation, [], contracts)
    return Resolved(spec=spec, contracts=contracts, optional=optional)


def _spec(annotation: Any, metadata: list[Any], contracts: dict[str, Contract]) -> tuple[TypeSpec, bool]:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return _spec(base, [*metadata, *extra], contracts)
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            raise DefinitionProblem(
                f"the union {_name(annotation)} has no plan type",
                hint="a field has one type (T | None is an optional field); use a contract or Any",
            )
        spec, _ = _spec(members[0], metadata, contracts)
        return spec, True
    values: dict[str, Any] = {}
    if origin is Literal:
        choices = list(get_args(annotation))
        values["enum"] = tuple(choices)
        kind = _common_kind(choices)
        if kind is not None:
            values["type"] = kind
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = [member.value for member in annotation]
        values["enum"] = tuple(choices)
        kind = _common_kind(choices)
        if kind is not None:
            values["type"] = kind
    elif _hashable(annotation) and annotation in _PRIMITIVES:
        values["type"] = _PRIMITIVES[annotation]
    elif _hashable(annotation) and annotation in _FORMATS:
        values.update(type="string", format=_FORMATS[annotation])
    elif annotation is Any or annotation is object:
        values["type"] = "any"
    elif annotation is None or annotation is type(None):
        values["type"] = "null"
    elif origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset) or _is_sequence(origin):
        values["type"] = "array"
        args = [arg for arg in get_args(annotation) if arg is not Ellipsis]
        if origin is tuple and len(set(map(repr, args))) > 1:
            raise DefinitionProblem(
                f"the tuple {_name(annotation)} has items of different types", hint="use tuple[T, ...] or list[T]"
            )
        if args:
            try:
                item, _ = _spec(args[0], [], contracts)
            except DefinitionProblem as problem:
                raise problem.under("items") from None
            values["items"] = item
        if origin in (set, frozenset):
            values["unique_items"] = True
    elif origin in (dict,) or annotation is dict or _is_mapping(origin) or _is_mapping(annotation):
        values["type"] = "object"
    elif is_contract_class(annotation):
        info = contract_info(annotation)
        merge_contracts(contracts, info.contracts)
        values["type"] = info.name
    elif isinstance(annotation, str | typing.ForwardRef):
        text = annotation if isinstance(annotation, str) else annotation.__forward_arg__
        raise DefinitionProblem(
            f"the type {text!r} is not resolved", hint="declare contracts before the functions and contracts using them"
        )
    else:
        raise DefinitionProblem(
            f"{_name(annotation)} has no plan type",
            hint="use str, int, float, bool, list[...], dict, Literal[...], an Enum, a contract class or Any",
        )
    optional = False
    for item in metadata:
        optional = _apply(item, values) or optional
    return TypeSpec(**values), optional


def _apply(item: Any, values: dict[str, Any]) -> bool:
    """Fold one piece of `Annotated` metadata into the spec's values; True when it makes the field optional."""
    if item is OPAQUE:
        values["opaque"] = True
        return False
    if _is_field_info(item):
        if getattr(item, "description", None):
            values["description"] = item.description
        for inner in getattr(item, "metadata", []) or []:
            _apply(inner, values)
        return False
    bounds = (("gt", "exclusive_minimum"), ("ge", "minimum"), ("lt", "exclusive_maximum"), ("le", "maximum"))
    for attribute, key in bounds:
        bound = getattr(item, attribute, None)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            values[key] = bound
    array = values.get("type") == "array"
    for attribute, text_key, array_key in (
        ("min_length", "min_length", "min_items"),
        ("max_length", "max_length", "max_items"),
    ):
        size = getattr(item, attribute, None)
        if isinstance(size, int) and not isinstance(size, bool):
            values[array_key if array else text_key] = size
    pattern = getattr(item, "pattern", None)
    if isinstance(pattern, str):
        values["pattern"] = pattern
    return False


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _common_kind(choices: list[Any]) -> str | None:
    kinds = {"boolean" if isinstance(c, bool) else _PRIMITIVES.get(type(c)) for c in choices}
    if kinds == {"integer", "number"}:
        return "number"
    return kinds.pop() if len(kinds) == 1 and None not in kinds else None


def _is_sequence(origin: Any) -> bool:
    from collections.abc import Sequence
    from collections.abc import Set as AbstractSet

    return isinstance(origin, type) and origin is not str and issubclass(origin, Sequence | AbstractSet)


def _is_mapping(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
