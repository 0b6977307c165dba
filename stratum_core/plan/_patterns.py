"""JSON Schema `pattern` and `patternProperties`, run by RE2: linear time, so no pattern can backtrack forever.

jsonschema runs these keywords with Python's `re`, which backtracks: `^(a+)+$` against a long run of `a` followed by
`!` takes exponential time, inside one C call no budget can stop. `SchemaValidator` is Draft 2020-12 with the two
keywords (and `additionalProperties`, which reads `patternProperties`) evaluated by RE2 instead. A plan sent by a
client (untrusted) may only use patterns RE2 can run: the loader refuses the others (`pattern_problem`), so for such
plans no value is ever matched by `re`. A pattern of a trusted plan that RE2 cannot run (a back-reference, a
lookaround) still works, through `re`: its author chose it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, validators
from jsonschema import _keywords as keywords
from jsonschema.exceptions import ValidationError

__all__ = ["SchemaValidator", "pattern_problem", "pattern_search", "re2_problem"]

_MAX_PROGRAM = 8 << 20
"""Bytes of memory RE2 may use to compile one pattern."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_PROGRAM
    return options


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, options=_options())


def re2_problem(compile_pattern: Callable[[str], Any], pattern: str) -> str | None:
    """Why `compile_pattern` (an RE2 compile) refuses `pattern` (a back-reference, a lookaround, too large), or None."""
    try:
        compile_pattern(pattern)
    except re2.error as error:
        message = error.args[0] if error.args else error
        return message.decode() if isinstance(message, bytes) else str(message)
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 cannot run `pattern` as a JSON Schema pattern, or None when it can."""
    return re2_problem(_compiled, pattern)


def pattern_search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text`: by RE2, or by `re` for a pattern RE2 cannot run."""
    try:
        compiled = _compiled(pattern)
    except re2.error:
        return re.search(pattern, text) is not None
    return compiled.search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not pattern_search(pattern, instance):
        shown = repr(instance) if len(instance) <= 60 else repr(instance[:57]) + "..."
        yield ValidationError(f"{shown} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if pattern_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    patterns = schema.get("patternProperties")
    if not patterns or not validator.is_type(instance, "object"):
        original: Any = keywords.additionalProperties
        yield from original(validator, additional, instance, schema)
        return
    known = schema.get("properties", {})
    extras = [key for key in instance if key not in known and not any(pattern_search(p, key) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        joined = ", ".join(repr(extra) for extra in sorted(extras))
        listed = ", ".join(repr(pattern) for pattern in sorted(patterns))
        verb = "does" if len(extras) == 1 else "do"
        yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")


SchemaValidator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties},
)
"""Draft 2020-12 with `pattern`, `patternProperties` and `additionalProperties` matched by RE2."""
