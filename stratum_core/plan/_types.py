"""The checker's view of plan types: a field or input spec as a `Ty`, and whether one type can feed another.

The type model itself (`Ty`, `join`, `ty_text`) is the expressions' (`stratum_core.expressions._types`): a plan's
references and its expressions are typed alike. Here a `TypeSpec` becomes a `Ty` with its constraints, an optional
field or input (`required: false` without a `default`) becomes `T | None`, and `feed_problem` decides whether every
value a producer may give is accepted where it is bound: kind, range, length, enum, item count, and the record-width
rule (a record feeds a record type only if each of its fields is one the type declares, and each field the type
requires is one it always has), the rule the engine's JSON Schemas apply (`additionalProperties: false`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stratum_core.expressions._types import ANY, Ty, join, literal_ty, record, ty_text
from stratum_core.plan._model import PRIMITIVE_TYPES, Contract, TypeSpec

__all__ = [
    "ANY",
    "METHODS",
    "Feed",
    "Ty",
    "can_feed",
    "common",
    "feed",
    "fields_of",
    "from_spec",
    "literal_ty",
    "lookup_field",
    "record",
    "ty_text",
]

METHODS = frozenset(
    {
        "lower", "upper", "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "join",
        "replace", "count", "find", "rfind", "index", "title", "capitalize", "casefold", "isdigit", "isalpha",
        "isalnum", "isspace", "islower", "isupper", "splitlines", "removeprefix", "removesuffix", "zfill",
        "partition", "rpartition", "keys", "values", "items", "get",
    }
)  # fmt: skip
"""Method names an expression may call on strings, lists and records; reading them is not a field access."""


def from_spec(spec: TypeSpec | None, *, as_field: bool = True) -> Ty:
    """The resolved type of a field or input spec, with its constraints; optional (and no default): `T | None`.

    Contract names stay names (see `fields_of`).
    """
    if spec is None:
        return ANY
    optional = as_field and not spec.required and spec.default is None
    if spec.type is None or spec.type == "any":
        return Ty("any") if spec.enum is None else Ty("any", enum=tuple(spec.enum))
    if spec.type not in PRIMITIVE_TYPES:
        ty = Ty("contract", name=spec.type)
        if spec.items is not None:  # pragma: no cover - a contract name with items is refused by the schema
            return ANY
        return ty.maybe() if optional else ty
    items = from_spec(spec.items, as_field=False) if spec.items is not None else ANY
    fields = None
    if spec.type == "object" and spec.properties is not None:
        fields = tuple((key, from_spec(value)) for key, value in spec.properties.items())
    ty = Ty(
        spec.type,
        items=items if spec.type == "array" else None,
        fields=fields,
        minimum=spec.minimum,
        maximum=spec.maximum,
        exclusive_minimum=spec.exclusive_minimum,
        exclusive_maximum=spec.exclusive_maximum,
        min_length=spec.min_length,
        max_length=spec.max_length,
        min_items=spec.min_items,
        max_items=spec.max_items,
        enum=tuple(spec.enum) if spec.enum is not None else ((spec.const,) if spec.const is not None else None),
        pattern=spec.pattern,
        unique=bool(spec.unique_items),
    )
    return ty.maybe() if optional else ty


_contract_fields: dict[int, tuple[Contract, dict[str, Ty]]] = {}


def fields_of(ty: Ty, contracts: Mapping[str, Contract]) -> dict[str, Ty] | None:
    """The fields of a record type, or None when they are not known (any object, unknown or broken contract)."""
    if ty.kind == "contract":
        contract = contracts.get(str(ty.name))
        if contract is None:
            return None
        cached = _contract_fields.get(id(contract))
        if cached is None or cached[0] is not contract:
            if len(_contract_fields) > 4096:
                _contract_fields.clear()
            cached = (contract, {key: from_spec(value) for key, value in contract.fields.items()})
            _contract_fields[id(contract)] = cached
        return cached[1]
    if ty.kind == "object" and ty.fields is not None:
        return ty.field_map
    return None


def lookup_field(ty: Ty, part: str | int, contracts: Mapping[str, Contract]) -> tuple[Ty, str | None, list[str]]:
    """The type of `ty.part` (or `ty[part]`): (type, error message or None, candidate names for a hint)."""
    if ty.kind == "any":
        return ANY, None, []
    if isinstance(part, int):
        if ty.kind == "array":
            return ty.items or ANY, None, []
        return ANY, f"{ty_text(ty)} is not a list", []
    if ty.kind == "array" and part in METHODS:
        return ANY, None, []
    fields = fields_of(ty, contracts)
    if fields is not None:
        if part in fields:
            return fields[part], None, []
        owner = f"contract '{ty.name}'" if ty.kind == "contract" else ty_text(ty)
        return ANY, f"{owner} has no field '{part}'", list(fields)
    if ty.kind == "object" or (ty.kind == "contract" and ty.name not in contracts):
        return ANY, None, []
    return ANY, f"{ty_text(ty)} has no field '{part}'", []


@dataclass
class Feed:
    """Whether a producer's type fits where it is bound.

    `problem` is the first reason it does not; `checks` are what the types cannot decide (a value of unknown type, a
    `pattern` the producer does not share, unique items), left to the engine at run time.
    """

    problem: str | None = None
    checks: list[str] = field(default_factory=list)


def feed(source: Ty, target: Ty, contracts: Mapping[str, Contract]) -> Feed:
    """Whether every value of type `source` is accepted where `target` is expected."""
    result = Feed()
    result.problem = _feed(source, target, contracts, result.checks, "", set())
    return result


def can_feed(source: Ty, target: Ty, contracts: Mapping[str, Contract] | None = None) -> bool:
    """Whether a value of type `source` fits `target` in kind (constraints aside; unknown types pass)."""
    return _feed(_loose(source), _loose(target), contracts or {}, [], "", set(), kinds_only=True) is None


def _loose(ty: Ty) -> Ty:
    return replace(ty.bare(), optional=False)


def _where(path: str) -> str:
    return f" at {path}" if path else ""


def _feed(
    source: Ty,
    target: Ty,
    contracts: Mapping[str, Contract],
    checks: list[str],
    path: str,
    seen: set[tuple[str, str]],
    *,
    kinds_only: bool = False,
) -> str | None:
    if target.kind == "any":
        if target.enum is not None and source.kind != "any" and not _enum_within(source, target):
            return f"{ty_text(source)}{_where(path)} may be a value outside {_enum_text(target)}"
        return None
    if source.kind == "any":
        checks.append(f"a value of unknown type{_where(path)} must be {ty_text(target)}")
        return None
    if source.optional and not target.optional and not kinds_only:
        return f"it may be absent{_where(path)}, and {ty_text(target.present())} is required"
    if source.kind == "null":
        return None if target.optional or target.kind == "null" else f"it is None{_where(path)}"
    source, target = source.present(), target.present()
    if target.kind == "object" and target.fields is None and target.items is None:
        return None if source.kind in ("object", "contract") else f"{ty_text(source)}{_where(path)} is not a record"
    if source.kind == "contract" and target.kind == "contract" and source.name == target.name:
        return None
    if source.kind in ("object", "contract") and target.kind in ("object", "contract"):
        return _feed_record(source, target, contracts, checks, path, seen, kinds_only=kinds_only)
    if source.kind == "contract" or target.kind == "contract":
        return f"{ty_text(source)}{_where(path)} is not {ty_text(target)}"
    if target.kind == "number" and source.kind == "integer":
        source = replace(source, kind="number")
    if source.kind != target.kind:
        return f"{ty_text(source)}{_where(path)} is not {ty_text(target)}"
    if kinds_only:
        if source.kind == "array":
            return _feed(source.items or ANY, target.items or ANY, contracts, checks, path, seen, kinds_only=True)
        return None
    problem = _constraints(source, target, path, checks)
    if problem is not None:
        return problem
    if source.kind == "array":
        return _feed(source.items or ANY, target.items or ANY, contracts, checks, f"{path}[]", seen)
    return None


def _feed_record(
    source: Ty,
    target: Ty,
    contracts: Mapping[str, Contract],
    checks: list[str],
    path: str,
    seen: set[tuple[str, str]],
    *,
    kinds_only: bool,
) -> str | None:
    pair = (repr(source), repr(target))
    if pair in seen:
        return None
    seen.add(pair)
    produced = fields_of(source, contracts)
    wanted = fields_of(target, contracts)
    if source.kind == target.kind == "contract" and (produced is None or wanted is None):
        return f"{ty_text(source)}{_where(path)} is not {ty_text(target)}"
    if wanted is None:
        return None
    if produced is None:
        if source.kind == "object" and source.fields is None and source.items is None:
            if kinds_only:
                return f"{ty_text(source)}{_where(path)} is not {ty_text(target)}"
            checks.append(f"a record of unknown fields{_where(path)} must be {ty_text(target)}")
            return None
        return None
    owner = ty_text(target)
    for name, ty in produced.items():
        inner = f"{path}.{name}" if path else name
        if name not in wanted:
            return (
                f"{ty_text(source)} has field '{name}', which {owner} does not have (a record feeds a type only "
                "with the fields it declares)"
            )
        problem = _feed(ty, wanted[name], contracts, checks, inner, seen, kinds_only=kinds_only)
        if problem is not None:
            return problem
    for name, ty in wanted.items():
        if name not in produced and not ty.optional:
            return f"{ty_text(source)} has no field '{name}', which {owner} requires"
    return None


def _constraints(source: Ty, target: Ty, path: str, checks: list[str]) -> str | None:
    where = _where(path)
    if target.enum is not None and not _enum_within(source, target):
        return f"{_produced(source)}{where} may be a value outside {_enum_text(target)}"
    if source.kind in ("number", "integer"):
        low, high = _range(source)
        target_low, target_high = _range(target)
        if target_low is not None and (low is None or low < target_low):
            return f"{_produced(source)}{where} may be below the minimum of {_number(target_low)}"
        if target_high is not None and (high is None or high > target_high):
            return f"{_produced(source)}{where} may be above the maximum of {_number(target_high)}"
        if target.exclusive_minimum is not None and not (
            (source.exclusive_minimum is not None and source.exclusive_minimum >= target.exclusive_minimum)
            or (low is not None and low > target.exclusive_minimum)
        ):
            return f"{_produced(source)}{where} may not be above {_number(target.exclusive_minimum)}"
        if target.exclusive_maximum is not None and not (
            (source.exclusive_maximum is not None and source.exclusive_maximum <= target.exclusive_maximum)
            or (high is not None and high < target.exclusive_maximum)
        ):
            return f"{_produced(source)}{where} may not be below {_number(target.exclusive_maximum)}"
    if source.kind == "string":
        problem = _sizes(source.min_length, source.max_length, target.min_length, target.max_length, "characters")
        if problem is not None:
            return f"{_produced(source)}{where} {problem}"
        if target.pattern is not None and source.pattern != target.pattern and source.enum is None:
            checks.append(f"{_produced(source)}{where} must match the pattern {target.pattern!r}")
    if source.kind == "array":
        problem = _sizes(source.min_items, source.max_items, target.min_items, target.max_items, "items")
        if problem is not None:
            return f"{_produced(source)}{where} {problem}"
        if target.unique and not source.unique:
            checks.append(f"{_produced(source)}{where} must have unique items")
    return None


def _sizes(low: int | None, high: int | None, target_low: int | None, target_high: int | None, unit: str) -> str | None:
    if target_low is not None and (low or 0) < target_low:
        return f"may have fewer than {target_low} {unit}"
    if target_high is not None and (high is None or high > target_high):
        return f"may have more than {target_high} {unit}"
    return None


def _range(ty: Ty) -> tuple[float | None, float | None]:
    low, high = ty.minimum, ty.maximum
    if ty.enum is not None and all(isinstance(value, int | float) for value in ty.enum) and ty.enum:
        values = [float(value) for value in ty.enum]
        low = min(values) if low is None else max(low, min(values))
        high = max(values) if high is None else min(high, max(values))
    return low, high


def _enum_within(source: Ty, target: Ty) -> bool:
    if source.enum is None:
        return False
    return all(any(_same(value, allowed) for allowed in target.enum or ()) for value in source.enum)


def _same(left: Any, right: Any) -> bool:
    return left == right and (type(left) is bool) == (type(right) is bool)


def _enum_text(ty: Ty) -> str:
    values = ", ".join(repr(value) for value in (ty.enum or ())[:10])
    return "{" + values + (", ..." if len(ty.enum or ()) > 10 else "") + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _produced(ty: Ty) -> str:
    """How a producer's type reads with its constraints: 'an integer in 0..100', 'a string of at most 5 characters'."""
    text = ty_text(ty.present())
    if ty.enum is not None:
        return f"{text} in {_enum_text(ty)}"
    if ty.kind in ("number", "integer"):
        low, high = ty.minimum, ty.maximum
        if low is not None or high is not None:
            lowest = _number(low) if low is not None else "-inf"
            return f"{text} in {lowest}..{_number(high) if high is not None else 'inf'}"
        return text
    if ty.kind == "string" and (ty.min_length is not None or ty.max_length is not None):
        return f"{text} of {ty.min_length or 0}..{ty.max_length if ty.max_length is not None else 'any'} characters"
    if ty.kind == "array" and (ty.min_items is not None or ty.max_items is not None):
        return f"{text} of {ty.min_items or 0}..{ty.max_items if ty.max_items is not None else 'any'} items"
    return text


def common(types: list[Ty]) -> Ty:
    """The type all of `types` share (constraints widened), or `any`."""
    return join(types)
