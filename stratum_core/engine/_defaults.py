"""JSON Schema `default`, applied: an answer's absent fields take the defaults their contract declares.

JSON Schema leaves `default` to the application; ours fills it in, so a contract field declared
`{type: string, required: false, default: normal}` reads `normal` in `ensure`, in the next step and in the
flow's output when a model leaves it out. Nested contracts (`$ref`) and list items are filled the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["with_defaults"]

_MAX_DEPTH = 64  # a contract that contains itself (a tree) is filled only as deep as the value goes, and no deeper


def with_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` with the `default` of every absent object property filled in, at any depth (`value` is not changed)."""
    return _fill(value, schema, schema, 0)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if ref == "#":
        return root
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        return found if isinstance(found, Mapping) else schema
    return schema


def _fill(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return value
    resolved = _resolve(schema, root)
    properties = resolved.get("properties")
    if isinstance(value, dict) and isinstance(properties, Mapping):
        filled = dict(value)
        for key, field in properties.items():
            if key not in filled:
                declared = field if "default" in field else _resolve(field, root)
                if "default" not in declared:
                    continue
                filled[key] = copy.deepcopy(declared["default"])
            filled[key] = _fill(filled[key], field, root, depth + 1)
        return filled
    items = resolved.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        return [_fill(item, items, root, depth + 1) for item in value]
    return value
