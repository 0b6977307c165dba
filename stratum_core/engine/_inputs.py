"""The step boundary: a call's bound inputs get their defaults and are validated against the callee's input schema.

Every call of a function or a sub-flow goes through here, whatever wrote the plan (a file, an ad-hoc plan, the
Python library), so a value the checker could not vouch for (a value of unknown type, a `pattern`, a binding built
by code) fails here with an error naming the step, the input and what it is bound to, before anything runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stratum_core.engine._validation import schema_violations
from stratum_core.errors import InvalidInput
from stratum_core.plan import Contract, TypeSpec
from stratum_core.plan._schema import fields_schema

__all__ = ["checked_inputs", "expression_inputs"]

_schemas: dict[int, tuple[Mapping[str, TypeSpec], Mapping[str, Contract], dict[str, Any]]] = {}


def _schema(fields: Mapping[str, TypeSpec], contracts: Mapping[str, Contract]) -> dict[str, Any]:
    """The input schema of `fields`, built once per (fields, contracts) pair of a loaded plan."""
    entry = _schemas.get(id(fields))
    if entry is not None and entry[0] is fields and entry[1] is contracts:
        return entry[2]
    schema = fields_schema(fields, contracts)
    if len(_schemas) > 4096:
        _schemas.clear()
    _schemas[id(fields)] = (fields, contracts, schema)
    return schema


def _shown(binding: Any) -> str:
    if isinstance(binding, str) and binding.startswith("$."):
        return binding
    text = json.dumps(binding, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def checked_inputs(
    fields: Mapping[str, TypeSpec],
    inputs: Mapping[str, Any],
    *,
    contracts: Mapping[str, Contract],
    callee: str,
    bindings: Mapping[str, Any] | None = None,
    step_id: str | None = None,
) -> dict[str, Any]:
    """`inputs` with the defaults of absent inputs filled in, checked against `fields`; raises InvalidInput."""
    full = {name: spec.default for name, spec in fields.items() if spec.default is not None and name not in inputs}
    full.update(inputs)
    violations = schema_violations(full, _schema(fields, contracts), root="input")
    if not violations:
        return full
    first = violations[0].removeprefix("schema: ")
    where, _, problem = first.partition(": ")
    field = where.removeprefix("input").lstrip(".")
    if not field and "'" in problem:  # a missing or unexpected input: its name is quoted in the message
        field = problem.split("'")[1]
    root = field.split(".", 1)[0].split("[", 1)[0]
    binding = _shown(bindings[root]) if bindings is not None and root in bindings else None
    bound = f" (bound to {binding})" if binding is not None else ""
    message = f"input '{field or root}'{bound} of {callee} is invalid: {problem}"
    if len(violations) > 1:
        message += f" (and {len(violations) - 1} more: {'; '.join(v.removeprefix('schema: ') for v in violations[1:])})"
    raise InvalidInput(message, field=field, binding=binding, violations=violations, step_id=step_id)


def expression_inputs(fields: Mapping[str, TypeSpec], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What a function's expressions see: its inputs, with an optional input nobody gave bound to None."""
    absent = {name: None for name, spec in fields.items() if name not in inputs and not spec.required}
    return {**absent, **inputs} if absent else dict(inputs)
