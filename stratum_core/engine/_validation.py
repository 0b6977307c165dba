"""Checking values against JSON Schemas, with messages a person (or a model) can act on."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from stratum_core._capped import first_errors, more_line
from stratum_core.plan._patterns import SchemaValidator
from stratum_core.plan._schema import canonical_json

__all__ = ["schema_violations"]

_MAX_VIOLATIONS = 10


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Draft202012Validator:
    validator: Draft202012Validator = SchemaValidator(json.loads(schema_json))  # patterns run by RE2
    return validator


def _where(error: ValidationError, root: str) -> str:
    return root + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(error: ValidationError) -> str:
    keyword = str(error.validator)
    expected: Any = error.validator_value
    schema: Any = error.schema
    if keyword == "required":
        missing = [name for name in expected if isinstance(error.instance, Mapping) and name not in error.instance]
        return f"missing required field{'s' if len(missing) != 1 else ''} {', '.join(map(repr, missing))}"
    if keyword == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(schema.get("properties", {})) if isinstance(schema, Mapping) else set()
        extra = sorted(str(key) for key in error.instance if key not in allowed)
        return f"unexpected field{'s' if len(extra) != 1 else ''} {', '.join(map(repr, extra))}"
    if keyword == "type":
        return f"expected {expected}, got {_short(error.instance)}"
    if keyword == "enum":
        return f"{_short(error.instance)} is not one of {_short(expected)}"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {
            "minimum": "less than the minimum of",
            "maximum": "greater than the maximum of",
            "exclusiveMinimum": "not greater than",
            "exclusiveMaximum": "not less than",
        }[keyword]
        return f"{_short(error.instance)} is {words} {expected}"
    if keyword in ("minLength", "maxLength", "minItems", "maxItems"):
        size = len(error.instance) if isinstance(error.instance, str | list) else "?"
        bound = "at least" if keyword.startswith("min") else "at most"
        unit = "characters" if keyword.endswith("Length") else "items"
        return f"has {size} {unit}, expected {bound} {expected}"
    return error.message


def _rule(error: ValidationError) -> str:
    """What rule an opaque value breaks, without the value."""
    return f"does not meet '{error.validator}' (the field is opaque: its value is not shown)"


def _is_hidden(path: Sequence[str], hidden: Collection[Sequence[str]]) -> bool:
    """True when `path` lies inside (or holds) a hidden path."""
    for secret in hidden:
        common = min(len(path), len(secret))
        if all(
            secret[i] == "*" or secret[i] == path[i] or (path[i].isdigit() and secret[i] == "*") for i in range(common)
        ):
            return True
    return False


_by_identity: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}


def _validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """The validator of `schema`: by identity first (schemas cached by the plan are the same objects each call)."""
    entry = _by_identity.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    validator = _validator(canonical_json(schema))
    if len(_by_identity) > 4096:
        _by_identity.clear()
    _by_identity[id(schema)] = (schema, validator)
    return validator


def schema_violations(
    value: Any, schema: Mapping[str, Any], *, root: str = "result", hidden: Collection[Sequence[str]] = ()
) -> list[str]:
    """How `value` breaks `schema`, as `schema: result.field: what is wrong` lines.

    At most 10 lines, then `schema: ... and K more`: the rest are counted, not built into messages. Under a
    `hidden` path (opaque fields, rooted at `root`; "*" for any list item) a line names the rule, not the value.
    """
    validator = _validator_for(schema)
    first, more = first_errors(validator.iter_errors(value), shown=_MAX_VIOLATIONS)
    errors = sorted(first, key=lambda e: (list(map(str, e.absolute_path)), str(e.validator)))
    lines = [
        f"schema: {_where(error, root)}: "
        + (_rule(error) if _is_hidden((root, *map(str, error.absolute_path)), hidden) else _message(error))
        for error in errors
    ]
    return [*lines, f"schema: {more_line(more)}"] if more else lines
