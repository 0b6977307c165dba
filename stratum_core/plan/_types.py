"""The checker's view of types: what a reference or an expression reads, and whether one type can feed another.

A `Ty` is a resolved type: a primitive, a contract (by name), a list of a type, or a record with known fields (an
inline object, or the synthetic outputs of parallel groups, debates and `stable: false` functions). `any` stands for
"not known here": it never causes a problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stratum_core.plan._model import PRIMITIVE_TYPES, Contract, TypeSpec

__all__ = ["ANY", "METHODS", "Ty", "can_feed", "common", "from_spec", "lookup_field", "record", "ty_text"]


@dataclass(frozen=True)
class Ty:
    """A resolved type. kind: any, string, number, integer, boolean, null, array, object, contract."""

    kind: str
    name: str | None = None
    items: Ty | None = None
    fields: tuple[tuple[str, Ty], ...] | None = None

    @property
    def field_map(self) -> dict[str, Ty]:
        return dict(self.fields or ())


ANY = Ty("any")

METHODS = frozenset(
    {
        "lower", "upper", "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "join",
        "replace", "count", "find", "rfind", "index", "title", "capitalize", "casefold", "isdigit", "isalpha",
        "isalnum", "isspace", "islower", "isupper", "splitlines", "removeprefix", "removesuffix", "zfill",
        "partition", "rpartition", "keys", "values", "items", "get",
    }
)  # fmt: skip
"""Method names an expression may call on strings, lists and records; reading them is not a field access."""


def record(**fields: Ty) -> Ty:
    """A record type with the given fields."""
    return Ty("object", fields=tuple(fields.items()))


def from_spec(spec: TypeSpec | None) -> Ty:
    """The resolved type of a field or input spec (contract names stay names; see `lookup_field`)."""
    if spec is None or spec.type is None or spec.type == "any":
        return ANY
    if spec.type not in PRIMITIVE_TYPES:
        return Ty("contract", name=spec.type)
    if spec.type == "array":
        return Ty("array", items=from_spec(spec.items) if spec.items is not None else ANY)
    if spec.type == "object" and spec.properties is not None:
        return Ty("object", fields=tuple((key, from_spec(value)) for key, value in spec.properties.items()))
    return Ty(spec.type)


def ty_text(ty: Ty) -> str:
    """How a type reads in a message: string, Sentiment, a list of Reply, a record."""
    if ty.kind == "contract":
        return str(ty.name)
    if ty.kind == "array":
        items = ty.items or ANY
        if items.kind in ("string", "number", "integer", "boolean", "array"):
            return f"a list of {items.kind}s" if items.kind != "array" else "a list of lists"
        return f"a list of {ty_text(items)}" if items.kind != "any" else "a list"
    if ty.kind == "object":
        if ty.fields:
            return "a record {" + ", ".join(name for name, _ in ty.fields) + "}"
        return "an object"
    if ty.kind == "any":
        return "any value"
    return {"integer": "an integer", "boolean": "a boolean"}.get(ty.kind, f"a {ty.kind}")


def _fields_of(ty: Ty, contracts: Mapping[str, Contract]) -> dict[str, Ty] | None:
    """The fields of a record type, or None when they are not known (any object, unknown or broken contract)."""
    if ty.kind == "contract":
        contract = contracts.get(str(ty.name))
        if contract is None:
            return None
        return {key: from_spec(value) for key, value in contract.fields.items()}
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
    fields = _fields_of(ty, contracts)
    if fields is not None:
        if part in fields:
            return fields[part], None, []
        owner = f"contract '{ty.name}'" if ty.kind == "contract" else ty_text(ty)
        return ANY, f"{owner} has no field '{part}'", list(fields)
    if ty.kind == "object" or (ty.kind == "contract" and ty.name not in contracts):
        return ANY, None, []
    return ANY, f"{ty_text(ty)} has no field '{part}'", []


def can_feed(source: Ty, target: Ty) -> bool:
    """Whether a value of type `source` is always acceptable where `target` is expected (unknown types pass)."""
    if source.kind == "any" or target.kind == "any":
        return True
    if target.kind == "object" and target.fields is None:
        return source.kind in ("object", "contract")
    if source.kind == "contract" or target.kind == "contract":
        return source.kind == target.kind and source.name == target.name
    if target.kind == "number" and source.kind == "integer":
        return True
    if source.kind != target.kind:
        return False
    if source.kind == "array":
        return can_feed(source.items or ANY, target.items or ANY)
    if source.kind == "object":
        target_fields = target.field_map
        source_fields = source.field_map
        return all(key in source_fields and can_feed(source_fields[key], ty) for key, ty in target_fields.items())
    return True


def common(types: list[Ty]) -> Ty:
    """The one type all of `types` share, or `any`."""
    if not types:
        return ANY
    first = types[0]
    return first if all(ty == first for ty in types[1:]) else ANY


def literal_ty(value: Any) -> Ty:
    """The type of a literal YAML value."""
    if isinstance(value, bool):
        return Ty("boolean")
    if isinstance(value, int):
        return Ty("integer")
    if isinstance(value, float):
        return Ty("number")
    if isinstance(value, str):
        return Ty("string")
    if value is None:
        return Ty("null")
    if isinstance(value, list):
        return Ty("array", items=common([literal_ty(item) for item in value]))
    return Ty("object")
