"""The first pass of the loader: the plan's JSON Schema (plan.schema.json), with its errors said in our words.

jsonschema messages never reach the user: each error is translated into a located Problem ("unknown key 'retires'
(did you mean 'retries'?)", "expected a number, got 'abc'", "missing required key 'intent'").
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

from stratum_core._capped import first_errors, more_line
from stratum_core.errors import Problem
from stratum_core.plan._yaml import Path, SourceMap, format_path

__all__ = ["describe", "did_you_mean", "plan_schema", "schema_problems"]

_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
MAX_SCHEMA_PROBLEMS = 200
"""Schema errors of one plan turned into problems; the rest are counted in one line."""
_STEP_KEYS = ("function", "flow", "parallel", "race", "for_each", "debate")


@cache
def plan_schema() -> dict[str, Any]:
    """The plan language's JSON Schema (draft 2020-12), as checked in beside this module."""
    text = resources.files("stratum_core.plan").joinpath("plan.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_inline_refs(plan_schema()))


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every `$ref` to a non-recursive definition replaced by the definition itself.

    Same meaning, fewer reference lookups: jsonschema resolves each `$ref` on every visit, which made up most of the
    time to check a plan. Definitions that refer to themselves (types nest) keep their `$ref`.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
            return found.union(*(refs(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(value) for value in node))
        return set()

    direct = {name: refs(body) for name, body in defs.items()}
    recursive: set[str] = set()
    for name in defs:
        seen, stack = set(), list(direct[name])
        while stack:
            current = stack.pop()
            if current == name:
                recursive.add(name)
                break
            if current not in seen and current in direct:
                seen.add(current)
                stack.extend(direct[current])

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and target.startswith("#/$defs/"):
                name = target.rsplit("/", 1)[-1]
                if name not in recursive:
                    merged = dict(inline(defs[name]))
                    siblings = {key: value for key, value in node.items() if key != "$ref"}
                    if all(key not in merged or key == "description" for key in siblings):
                        merged.update({key: inline(value) for key, value in siblings.items()})
                        return merged
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    inlined = {key: inline(value) for key, value in schema.items() if key != "$defs"}
    inlined["$defs"] = {name: inline(body) for name, body in defs.items()}
    return inlined


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint when a candidate is close to `name`."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def describe(value: Any) -> str:
    """A value as the user wrote it, short: 'abc', 3, true, null, a mapping, a list."""
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return "'" + shown.replace("\n", "\\n") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__  # pragma: no cover - YAML gives only the kinds above


def _type_words(expected: str | Sequence[str]) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    words = [_TYPE_WORDS.get(name, name) for name in names]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _custom(error: ValidationError, keyword: str) -> tuple[str, str | None] | None:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    custom = schema.get("x-errors", {}).get(keyword)
    if custom is None:
        return None
    message, _, hint = str(custom).partition(" (")
    return message, hint.removesuffix(")") or None


class _Translator:
    def __init__(self, source: str, source_map: SourceMap) -> None:
        self.source = source
        self.map = source_map
        self.problems: dict[tuple[Path, str], Problem] = {}

    def add(self, where: tuple[int, int], path: Path, message: str, hint: str | None = None) -> None:
        self.problems.setdefault(
            (path, message), Problem(self.source, where[0], where[1], format_path(path), message, hint)
        )

    def translate(self, error: ValidationError) -> None:
        path: Path = tuple(error.absolute_path)
        keyword = str(error.validator)
        bound: Any = error.validator_value
        instance = error.instance
        if "propertyNames" in error.absolute_schema_path:
            self.add(
                self.map.key((*path, str(instance))),
                path,
                f"invalid name {describe(instance)}",
                "use letters, digits, _ and -, starting with a letter or _",
            )
            return
        if keyword in ("oneOf", "anyOf") and error.context and _custom(error, keyword) is None:
            # A value that may take several forms (a reference or a list of them): report what is wrong with the
            # form of the value's own kind, not that it is not one of the other kinds.
            fitting = [sub for sub in error.context if sub.validator != "type" and not sub.relative_path]
            if fitting:
                self.translate(best_match(fitting))
                return
        custom = _custom(error, keyword)
        schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
        if keyword == "additionalProperties" and isinstance(instance, Mapping):
            known = set(schema.get("properties", {}))
            for key in instance:
                if key not in known:
                    self.add(self.map.key((*path, key)), path, f"unknown key '{key}'", self.key_hint(key, known))
            return
        if keyword == "required" and isinstance(instance, Mapping):
            for key in schema.get("required", ()):
                if key not in instance:
                    self.add(self.map.key(path), path, f"missing required key '{key}'")
            return
        where = self.map.value(path)
        if custom is not None:
            message, hint = custom
            if keyword in ("pattern", "enum"):
                message = f"{message}, got {describe(instance)}"
            self.add(where, path, message, hint)
        elif keyword == "type":
            self.add(where, path, f"expected {_type_words(bound)}, got {describe(instance)}")
        elif keyword == "enum":
            options = list(bound)
            shown = ", ".join(describe(option) for option in options)
            hint = did_you_mean(instance, [str(o) for o in options]) if isinstance(instance, str) else None
            self.add(where, path, f"expected one of {shown}, got {describe(instance)}", hint)
        elif keyword in _BOUNDS:
            self.add(where, path, f"{_BOUNDS[keyword]} {bound!r}, got {describe(instance)}")
        elif keyword == "minLength" and bound == 1:
            self.add(where, path, "must not be empty")
        elif keyword == "minLength":
            self.add(where, path, f"must be at least {bound} characters long")
        elif keyword == "minItems":
            count = len(instance) if isinstance(instance, list) else 0
            self.add(where, path, f"needs at least {bound} items, got {count}")
        elif keyword == "pattern":
            self.add(where, path, f"{describe(instance)} does not have the expected form")
        else:
            self.add(where, path, f"invalid value {describe(instance)}")

    def key_hint(self, key: str, known: set[str]) -> str | None:
        if "mode" in known:
            modes = [mode for mode, keys in _mode_keys().items() if key in keys]
            if modes:
                return f"'{key}' is a key of {' and '.join(modes)} functions"
        hint = did_you_mean(key, known)
        if hint:
            return hint
        if key in _STEP_KEYS and "id" in known:
            return "a step has only one of 'function', 'flow', 'parallel', 'race', 'for_each' and 'debate'"
        return did_you_mean(key, [*known, *_STEP_KEYS]) if "id" in known else None


_BOUNDS = {
    "minimum": "must be at least",
    "maximum": "must be at most",
    "exclusiveMinimum": "must be greater than",
    "exclusiveMaximum": "must be less than",
}


@cache
def _mode_keys() -> dict[str, frozenset[str]]:
    defs = plan_schema()["$defs"]
    return {
        mode: frozenset(defs[f"{mode}Function"]["properties"]) for mode in ("infer", "compute", "human", "adaptive")
    }


def schema_problems(data: Any, source_map: SourceMap, source: str) -> list[Problem]:
    """Every way `data` breaks the plan schema, as located problems."""
    translator = _Translator(source, source_map)
    first, more = first_errors(_validator().iter_errors(data), shown=MAX_SCHEMA_PROBLEMS)
    for error in first:
        translator.translate(error)
    problems = sorted(translator.problems.values())
    if more:
        problems.append(
            Problem(source, 1, 1, "", f"{more_line(more)} problems with the plan's structure", "fix these first")
        )
    return problems
