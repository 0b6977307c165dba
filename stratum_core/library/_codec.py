"""Python values <-> the JSON the engine works on, through pydantic, one annotation at a time.

Objects go to the engine as JSON (contract instances dumped, `None` fields left out: a plan field is absent rather
than null) and come back as the annotation's type (a JSON object becomes the contract class).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

__all__ = ["Codec", "codec", "describe_validation", "to_json"]

_cache: dict[Any, Codec] = {}
_lock = threading.Lock()


class Codec:
    """Converts values of one annotation: `to_python` from JSON, `to_json` to JSON; bad values raise ValueError."""

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self._adapter: TypeAdapter[Any] | None = None

    @property
    def adapter(self) -> TypeAdapter[Any]:
        if self._adapter is None:
            self._adapter = TypeAdapter(self.annotation)
        return self._adapter

    def to_python(self, value: Any, *, where: str = "value") -> Any:
        """The Python value of `value` (JSON, or already a Python value of the type)."""
        try:
            return self.adapter.validate_python(value)
        except ValidationError as error:
            raise ValueError(describe_validation(error, where)) from None

    def to_json(self, value: Any, *, where: str = "value") -> Any:
        """The JSON of `value`, checked against the annotation first."""
        checked = self.to_python(value, where=where)
        return self.adapter.dump_python(checked, mode="json", exclude_none=True)


def codec(annotation: Any) -> Codec:
    """The (cached) codec of an annotation."""
    try:
        with _lock:
            found = _cache.get(annotation)
            if found is None:
                found = _cache[annotation] = Codec(annotation)
            return found
    except TypeError:  # an unhashable annotation
        return Codec(annotation)


def to_json(value: Any) -> Any:
    """The JSON of a value whose type is not declared (a debate topic, the context shown to a person)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return codec(type(value)).to_json(value)
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return codec(Any).adapter.dump_python(value, mode="json")


def describe_validation(error: ValidationError, where: str) -> str:
    """A pydantic error as `where.field: what is wrong (got X)` lines joined by '; '."""
    lines = []
    for item in error.errors(include_url=False):
        location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"])
        shown = json.dumps(item.get("input"), default=repr)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        lines.append(f"{where}{location}: {item['msg'].lower()} (got {shown})")
    return "; ".join(lines)
