"""The types of the values plans pass around and expressions compute: what the checker reasons with.

A `Ty` is a JSON type (string, number, integer, boolean, null, array, object), a contract (by name, its fields looked
up through a resolver), or one of the shapes only expressions build (a tuple with typed elements, a set). It carries
the constraints a producer guarantees (range, length, enum, item count) and whether the value may be absent
(`optional`: `T | None`). `any` stands for "not known here": it never causes a static problem, and where a typed
value is expected it becomes a run-time check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

Fields = Callable[["Ty"], "Mapping[str, Ty] | None"]
"""The fields of a record type (a contract, an inline record), or None when they are not known."""


@dataclass(frozen=True)
class Ty:
    """A resolved type. kind: any, string, number, integer, boolean, null, array, object, contract, tuple, set.

    `fields` lists a record's fields (an object without fields is any record, or a map whose values are `items`);
    a field's own `optional` says it may be absent. Constraints are those of JSON Schema, inclusive unless named
    exclusive; None means unconstrained.
    """

    kind: str
    name: str | None = None
    items: Ty | None = None
    fields: tuple[tuple[str, Ty], ...] | None = None
    elements: tuple[Ty, ...] | None = None
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    unique: bool = False

    @functools.cached_property
    def field_map(self) -> dict[str, Ty]:
        """The fields by name (built once: records of a flow's steps can be large)."""
        return dict(self.fields or ())

    def present(self) -> Ty:
        """The same type, known not to be None."""
        return replace(self, optional=False) if self.optional else self

    def maybe(self) -> Ty:
        """The same type, possibly None."""
        return self if self.optional or self.kind in ("any", "null") else replace(self, optional=True)

    def bare(self) -> Ty:
        """The kind and shape without the constraints (what an operation on the value keeps)."""
        return Ty(self.kind, name=self.name, items=self.items, fields=self.fields, elements=self.elements)


ANY = Ty("any")
STRING = Ty("string")
NUMBER = Ty("number")
INTEGER = Ty("integer")
BOOLEAN = Ty("boolean")
NULL = Ty("null")
NUMERIC = frozenset({"number", "integer", "boolean"})
"""Kinds arithmetic accepts (a boolean is an integer in Python)."""


def array(items: Ty = ANY, **constraints: Any) -> Ty:
    """A list of `items`."""
    return Ty("array", items=items, **constraints)


def record(**fields: Ty) -> Ty:
    """A record type with the given fields."""
    return Ty("object", fields=tuple(fields.items()))


def ty_text(ty: Ty) -> str:
    """How a type reads in a message: string, Sentiment, a list of Reply, a record."""
    text = _text(ty)
    return f"{text} or None" if ty.optional else text


def _text(ty: Ty) -> str:
    if ty.kind == "contract":
        return str(ty.name)
    if ty.kind in ("array", "set"):
        word = "list" if ty.kind == "array" else "set"
        items = ty.items or ANY
        if items.kind in ("string", "number", "integer", "boolean") and not items.optional:
            return f"a {word} of {items.kind}s"
        if items.kind == "array":
            return f"a {word} of lists"
        return f"a {word} of {_text(items)}" if items.kind != "any" else f"a {word}"
    if ty.kind == "tuple":
        return "a tuple (" + ", ".join(ty_text(item) for item in ty.elements or ()) + ")"
    if ty.kind == "object":
        if ty.fields:
            return "a record {" + ", ".join(name for name, _ in ty.fields) + "}"
        return "an object"
    if ty.kind == "any":
        return "any value"
    if ty.kind == "null":
        return "None"
    return {"integer": "an integer", "boolean": "a boolean"}.get(ty.kind, f"a {ty.kind}")


def literal_ty(value: Any) -> Ty:
    """The type of a literal value (YAML or an expression's constant), constrained to that very value."""
    if isinstance(value, bool):
        return Ty("boolean", enum=(value,))
    if isinstance(value, int):
        return Ty("integer", minimum=value, maximum=value)
    if isinstance(value, float):
        return Ty("number", minimum=value, maximum=value)
    if isinstance(value, str):
        return Ty("string", min_length=len(value), max_length=len(value), enum=(value,))
    if value is None:
        return NULL
    if isinstance(value, list | tuple):
        return array(join([literal_ty(item) for item in value]), min_items=len(value), max_items=len(value))
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return Ty("object", fields=tuple((key, literal_ty(item)) for key, item in value.items()))
    return Ty("object")


def join(types: list[Ty]) -> Ty:
    """The narrowest type that holds every value of each of `types` (constraints widened, `any` if kinds differ)."""
    if not types:
        return ANY
    first = types[0]
    if all(ty == first for ty in types[1:]):
        return first
    optional = any(ty.optional or ty.kind == "null" for ty in types)
    values = [ty.present() for ty in types if ty.kind != "null"]
    if not values:
        return NULL
    kinds = {ty.kind for ty in values}
    if kinds == {"integer", "number"}:
        kinds = {"number"}
        values = [replace(ty, kind="number") for ty in values]
    if len(kinds) != 1 or "any" in kinds:
        return ANY
    kind = kinds.pop()
    base = values[0]
    if any(ty.bare() != base.bare() for ty in values[1:]):
        if kind == "array":
            base = array(join([ty.items or ANY for ty in values]))
        elif kind in ("object", "contract", "tuple"):
            return ANY
        else:
            base = Ty(kind)
    joined = Ty(
        kind,
        name=base.name,
        items=base.items,
        fields=base.fields,
        elements=base.elements,
        optional=optional,
        minimum=_wider(values, "minimum", min),
        maximum=_wider(values, "maximum", max),
        min_length=_wider(values, "min_length", min),
        max_length=_wider(values, "max_length", max),
        min_items=_wider(values, "min_items", min),
        max_items=_wider(values, "max_items", max),
        enum=_enum_union(values),
    )
    return joined


def _wider(types: list[Ty], attribute: str, pick: Callable[..., Any]) -> Any:
    found = [getattr(ty, attribute) for ty in types]
    return None if any(value is None for value in found) else pick(found)


def _enum_union(types: list[Ty]) -> tuple[Any, ...] | None:
    if any(ty.enum is None for ty in types):
        return None
    union: list[Any] = []
    for ty in types:
        union.extend(value for value in ty.enum or () if value not in union)
    return tuple(union)
