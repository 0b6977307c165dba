"""Resolving `$.` references and building the names an expression sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratum_core.errors import RunError
from stratum_core.plan import Reference, parse_reference

__all__ = ["MISSING", "Scope", "SkippedInput", "resolve_binding"]


class _Missing:
    """An optional flow input the caller left out: the binding that reads it is left out too."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class SkippedInput(Exception):
    """A binding reads the output of a step that was skipped, so the reading step is skipped too."""

    def __init__(self, step_id: str) -> None:
        super().__init__(step_id)
        self.step_id = step_id


@dataclass
class Scope:
    """The data one flow execution can reference: its input, its finished steps, the current `$.item`."""

    inputs: Mapping[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    item: Any = None

    def with_item(self, item: Any) -> Scope:
        """The same scope, with `$.item` bound (for_each)."""
        return Scope(inputs=self.inputs, outputs=self.outputs, skipped=self.skipped, item=item)

    def expression_env(self, **extra: Any) -> dict[str, Any]:
        """Names for flow-level expressions (`when`, `validate`): `input` and `steps.ID.output`."""
        steps = {step_id: {"output": output} for step_id, output in self.outputs.items()}
        return {"input": dict(self.inputs), "steps": steps, **extra}


def _follow(value: Any, path: tuple[str | int, ...], reference: Reference, *, step_id: str) -> Any:
    for part in path:
        if isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, Mapping):
            if part not in value:
                return MISSING  # an optional field the producer left out: the binding that reads it is left out
            value = value[part]
        else:
            raise RunError(f"{reference.text}: no {part!r} in {_describe(value)}", step_id=step_id)
    return value


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a record with fields {', '.join(map(str, value)) or '(none)'}"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return f"a value of type {type(value).__name__}"


def _resolve_reference(text: str, scope: Scope, *, step_id: str) -> Any:
    reference = parse_reference(text)
    if reference is None:
        raise RunError(f"malformed reference {text!r}", step_id=step_id)
    if reference.root == "input":
        if reference.path and isinstance(reference.path[0], str) and reference.path[0] not in scope.inputs:
            return MISSING  # an optional input nobody gave (required ones are checked when the run starts)
        return _follow(scope.inputs, reference.path, reference, step_id=step_id)
    if reference.root == "item":
        return _follow(scope.item, reference.path, reference, step_id=step_id)
    assert reference.step_id is not None
    if reference.step_id in scope.skipped:
        raise SkippedInput(reference.step_id)
    if reference.step_id not in scope.outputs:
        raise RunError(f"{text}: step '{reference.step_id}' has no output yet", step_id=step_id)
    return _follow(scope.outputs[reference.step_id], reference.path, reference, step_id=step_id)


def resolve_binding(value: Any, scope: Scope, *, step_id: str) -> Any:
    """A step input's value: literals as written, `$.` strings replaced by what they reference, at any depth."""
    if isinstance(value, str):
        return _resolve_reference(value, scope, step_id=step_id) if value.startswith("$.") else value
    if isinstance(value, Mapping):
        resolved = {key: resolve_binding(item, scope, step_id=step_id) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not MISSING}
    if isinstance(value, list | tuple):
        items = [resolve_binding(item, scope, step_id=step_id) for item in value]
        if any(item is MISSING for item in items):
            absent = next(item for item, got in zip(value, items, strict=True) if got is MISSING)
            raise RunError(f"{absent} is absent, and a list cannot hold an absent value", step_id=step_id)
        return items
    return value
