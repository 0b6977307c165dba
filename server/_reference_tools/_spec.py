"""A reference run's plan as the reference sees it: step order, modes, agents, contracts, attempts.

The reference's replies describe steps in the plan's own terms (`agent`, `output_contract`, `output_fields`, the
function's `mode`, a gate's `on_*` targets), which our plan model does not keep after translation. The run's stored
plan text is the reference YAML as written (it loaded once, so it is a mapping of known shape); this module reads
those fields back from it. Step order is the reference's: dependencies first, YAML order breaking ties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from stratum_core.plan._reference import step_order

__all__ = ["DEFAULT_ATTEMPTS", "RawStep", "ReferenceSpec", "spec_of"]

DEFAULT_ATTEMPTS = {"function": 3, "inline": 1, "decompose": 2, "parallel_dispatch": 2}
"""The reference's default `retries` (total attempts) per kind of step."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class RawStep:
    """One step of a reference flow, as written, with its place in the run order (1-based `number`)."""

    raw: Mapping[str, Any]
    number: int
    function: Mapping[str, Any]
    """The step's function as written ({} for inline, flow and parallel steps)."""

    @property
    def id(self) -> str:
        """The step id."""
        return str(self.raw.get("id"))

    @property
    def mode(self) -> str:
        """The reference's step_mode: function, inline, flow, decompose or parallel_dispatch."""
        kind = self.raw.get("type")
        if kind in ("decompose", "parallel_dispatch"):
            return str(kind)
        if "function" in self.raw:
            return "function"
        return "flow" if "flow" in self.raw else "inline"

    @property
    def is_gate(self) -> bool:
        """Whether the step calls a `mode: gate` function."""
        return self.function.get("mode") == "gate"

    @property
    def output_contract(self) -> str | None:
        """The contract the step's output is checked against (the function's `output`, or the step's)."""
        named = self.function.get("output") if self.mode == "function" else self.raw.get("output_contract")
        return named if isinstance(named, str) else None

    @property
    def intent(self) -> str | None:
        """What the step asks for: the function's intent, or the step's own (inline, decompose)."""
        text = self.function.get("intent") if self.mode == "function" else self.raw.get("intent")
        return text if isinstance(text, str) else None

    @property
    def ensure(self) -> list[str]:
        """The step's postconditions as written."""
        found = self.function.get("ensure") if self.mode == "function" else self.raw.get("ensure")
        return [str(text) for text in found] if isinstance(found, list) else []

    @property
    def attempts(self) -> int:
        """How many attempts the step has in all (the reference's `retries`)."""
        written = self.function.get("retries") if self.mode == "function" else self.raw.get("retries")
        if isinstance(written, int) and not isinstance(written, bool) and written >= 1:
            return written
        return DEFAULT_ATTEMPTS.get(self.mode, 3)


@dataclass(frozen=True)
class ReferenceSpec:
    """The reference view of one flow of a stored plan."""

    data: Mapping[str, Any]
    flow: str
    steps: tuple[RawStep, ...]

    @property
    def total_steps(self) -> int:
        """The number of steps of the flow."""
        return len(self.steps)

    def step(self, step_id: str) -> RawStep | None:
        """The step with this id, or None."""
        return next((step for step in self.steps if step.id == step_id), None)

    def find(self, path: str) -> RawStep | None:
        """The step at `path` (an id, or a path through sub-flows), or None."""
        located = self.locate(path)
        return located[1] if located is not None else None

    def locate(self, path: str) -> tuple[ReferenceSpec, RawStep] | None:
        """The flow and step of a path through sub-flows (`sub.inner`: step `inner` of the flow step `sub` calls)."""
        head, _, rest = path.partition(".")
        step = self.step(head)
        if step is None or not rest:
            return (self, step) if step is not None else None
        child = step.raw.get("flow")
        if step.mode != "flow" or not isinstance(child, str):
            return None
        return _spec(self.data, child).locate(rest)

    def output_fields(self, contract: str | None) -> dict[str, str]:
        """`{field: type}` of a contract, as the reference hints it to the agent."""
        fields = _mapping(_mapping(self.data.get("contracts")).get(contract or ""))
        return {str(name): str(_mapping(spec).get("type", spec)) for name, spec in fields.items()}

    @property
    def max_rounds(self) -> int | None:
        """The flow's `max_rounds`, if written."""
        value = _mapping(_mapping(self.data.get("flows")).get(self.flow)).get("max_rounds")
        return value if isinstance(value, int) else None


@lru_cache(maxsize=64)
def _parsed(text: str) -> Mapping[str, Any]:
    data = yaml.safe_load(text)
    return data if isinstance(data, Mapping) else {}


def spec_of(plan_text: str, flow: str) -> ReferenceSpec:
    """The reference view of `flow` in a run's stored plan text."""
    return _spec(_parsed(plan_text), flow)


def _spec(data: Mapping[str, Any], flow: str) -> ReferenceSpec:
    raw_steps = _mapping(_mapping(data.get("flows")).get(flow)).get("steps")
    steps = [step for step in raw_steps if isinstance(step, Mapping)] if isinstance(raw_steps, list) else []
    functions = _mapping(data.get("functions"))
    ordered = tuple(
        RawStep(
            raw=steps[index],
            number=number,
            function=_mapping(functions.get(str(steps[index].get("function")))) if "function" in steps[index] else {},
        )
        for number, index in enumerate(step_order(steps), start=1)
    )
    return ReferenceSpec(data=data, flow=flow, steps=ordered)
