"""The typed model of a loaded plan: what the loader produces and the engine runs.

Every model is frozen. Names follow the plan language (`docs/plan-language.md`); camelCase JSON Schema keywords keep
their spelling as aliases. Expressions stay text here: the checker parses them, the engine compiles them once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from stratum_core.plan._learned import LearnedContext

__all__ = [
    "PRIMITIVE_TYPES",
    "AdaptiveFunction",
    "Budget",
    "CallStep",
    "ComputeFunction",
    "Contract",
    "Debate",
    "DebateStep",
    "Flow",
    "ForEachStep",
    "Function",
    "HumanFunction",
    "InferFunction",
    "ModelPrice",
    "ParallelGroup",
    "ParallelStep",
    "Plan",
    "Quorum",
    "RaceStep",
    "Reference",
    "Refine",
    "Step",
    "StepRoute",
    "TaskDispatch",
    "TypeSpec",
    "Workflow",
    "iter_references",
    "parse_reference",
]

PRIMITIVE_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null", "any"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TypeSpec(_Model):
    """A field or input type: a JSON Schema fragment plus a few words of ours.

    `type` is a primitive name, `any`, or the name of a contract. `required` and `opaque` are ours;
    `values` (the 0.1 spelling of `enum`) is accepted by the loader and stored as `enum`.
    """

    type: str | None = None
    description: str | None = None
    enum: tuple[JsonValue, ...] | None = None
    const: JsonValue = None
    default: JsonValue = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusive_minimum: int | float | None = Field(default=None, alias="exclusiveMinimum")
    exclusive_maximum: int | float | None = Field(default=None, alias="exclusiveMaximum")
    min_length: int | None = Field(default=None, alias="minLength", ge=0)
    max_length: int | None = Field(default=None, alias="maxLength", ge=0)
    pattern: str | None = None
    format: str | None = None
    items: TypeSpec | None = None
    min_items: int | None = Field(default=None, alias="minItems", ge=0)
    max_items: int | None = Field(default=None, alias="maxItems", ge=0)
    unique_items: bool | None = Field(default=None, alias="uniqueItems")
    properties: dict[str, TypeSpec] | None = None
    required: bool = True
    opaque: bool = False

    @property
    def is_primitive(self) -> bool:
        """True when `type` names a JSON type rather than a contract."""
        return self.type is None or self.type in PRIMITIVE_TYPES


class Contract(_Model):
    """A named record type; its fields keep their declaration order."""

    name: str
    fields: dict[str, TypeSpec]
    description: str | None = None


class Budget(_Model):
    """An envelope of time (ms), money (usd) and tokens; a missing dimension is unbounded.

    `mode` is `enforce` (refuse what cannot fit, stop what overruns) or `audit` (record overruns, stop nothing);
    unset, a budget takes its parent's mode (a flow's default is enforce). `unpriced: allow` lets calls of models
    with no known price run under a cost budget (their cost is then unknown); by default they are refused.
    """

    ms: int | None = Field(default=None, gt=0)
    usd: float | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, gt=0)
    mode: Literal["enforce", "audit"] | None = None
    unpriced: Literal["refuse", "allow"] | None = None


class ModelPrice(_Model):
    """A model's price in US dollars per million input (prompt) and output (completion) tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Quorum(_Model):
    """Ask `n` times concurrently; at least `threshold` answers must agree on `agree_on`."""

    n: int = Field(ge=2)
    agree_on: str | None = None
    threshold: int | None = Field(default=None, ge=1)


class Refine(_Model):
    """Repeat the call until `until` holds, feeding `feedback` back, at most `max_iterations` times."""

    until: str
    feedback: str | None = None
    max_iterations: int = Field(default=3, ge=1, le=100)


class _FunctionBase(_Model):
    name: str
    description: str | None = None
    input: dict[str, TypeSpec] = Field(default_factory=dict)
    output: TypeSpec
    given: tuple[str, ...] = ()
    ensure: tuple[str, ...] = ()
    retries: int = Field(default=2, ge=0, le=20)
    budget: Budget | None = None
    guardrails: tuple[str, ...] = ()
    """Regexes (RE2 syntax, case-insensitive, multi-line) that the output's JSON must not match (reference plans)."""
    output_schema: dict[str, JsonValue] | None = None
    """A JSON Schema the output must also meet (a reference plan's step-level `output_schema`)."""
    file_ensure: tuple[str, ...] = ()
    """Postconditions that read project files (`file_exists`, `file_contains`): reference plans, trusted only."""


class InferFunction(_FunctionBase):
    """An LLM call with an output contract, pre- and postconditions, retries and a budget."""

    mode: Literal["infer"] = "infer"
    intent: str
    context: tuple[str, ...] = ()
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    cache: Literal["none", "session", "global"] = "none"
    stable: bool = True
    samples: int | None = Field(default=None, ge=2, le=50)
    min_agreement: float | None = Field(default=None, gt=0, le=1)
    quorum: Quorum | None = None
    refine: Refine | None = None
    executor: Literal["server", "agent"] | None = None
    learned: str | None = None
    learned_context: LearnedContext | None = Field(default=None, exclude=True, repr=False)
    """The learned-context file `learned` names, read and checked by the loader (see `_learned.py`)."""


class ComputeFunction(_FunctionBase):
    """Plain code: a `call:` import path (`pkg.module:function`) or a sandboxed `expr:`.

    A 0.1 compute function with neither is done by the calling agent, as in the reference server.
    """

    mode: Literal["compute"] = "compute"
    call: str | None = None
    expr: str | None = None
    intent: str | None = None


class HumanFunction(_FunctionBase):
    """A decision asked of a person (await_human); `output` is the decision's contract."""

    mode: Literal["human"] = "human"
    question: str
    options: tuple[JsonValue, ...] | None = None
    timeout: float | None = Field(default=None, gt=0, description="seconds; the loader reads 30s, 5m, 24h, 2d")
    on_timeout: JsonValue = "raise"
    answered_by: Literal["anyone", "person"] = Field(
        default="anyone", description="person: only a person may answer (not the calling agent via stratum_resume)"
    )


class AdaptiveFunction(_FunctionBase):
    """One signature, two implementations: `dispatch` true runs `compute`, false runs `infer`."""

    mode: Literal["adaptive"] = "adaptive"
    dispatch: str
    compute: str
    infer: str


Function: TypeAlias = Annotated[
    InferFunction | ComputeFunction | HumanFunction | AdaptiveFunction, Field(discriminator="mode")
]


@dataclass(frozen=True, slots=True)
class Reference:
    """A `$.` reference: `$.input.x`, `$.steps.ID.output.field`, `$.item`.

    `root` is 'input', 'steps' or 'item'; for steps, `step_id` names the step and `path` starts after `output`.
    """

    text: str
    root: Literal["input", "steps", "item"]
    path: tuple[str | int, ...]
    step_id: str | None = None


class _StepBase(_Model):
    id: str
    description: str | None = None
    depends_on: tuple[str, ...] = ()
    when: str | None = None


class TaskDispatch(_Model):
    """A reference `parallel_dispatch`: one call per task of the list `source`, at most `max_concurrent` at once."""

    source: str
    max_concurrent: int = Field(default=3, ge=1)
    require: Literal["all", "any"] | int = "all"
    merge: Literal["sequential_apply", "manual"] | None = None
    isolation: Literal["worktree", "branch"] | None = None
    intent_template: str = ""


class StepRoute(_Model):
    """How a step of a sequential (reference) flow routes: on failure, after success, as a gate, in iterations.

    Targets are step ids of the same flow. Every jump is bounded (see docs/plan-language.md, "Reference plans").
    """

    on_fail: str | None = None
    next: str | None = None
    gate: bool = False
    on_approve: str | None = None
    on_revise: str | None = None
    on_kill: str | None = None
    policy: Literal["gate", "flag", "skip"] | None = None
    policy_fallback: Literal["gate", "flag", "skip"] | None = None
    max_iterations: int | None = Field(default=None, ge=1)
    exit_criterion: str | None = None
    skip_if: str | None = None
    skip_reason: str | None = None
    dispatch: TaskDispatch | None = None


class CallStep(_StepBase):
    """Call a function (`function:`) or a sub-flow (`flow:`) with bound inputs."""

    kind: Literal["call"] = "call"
    function: str | None = None
    flow: str | None = None
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    budget: Budget | None = None
    route: StepRoute | None = None

    @property
    def target(self) -> str:
        """The function or flow this step calls."""
        return self.function or self.flow or ""


class ParallelGroup(_Model):
    """Branches run concurrently; `require` says how many must succeed."""

    require: Literal["all", "any"] | int = "all"
    validate_: str | None = Field(default=None, alias="validate")
    steps: tuple[CallStep, ...]


class ParallelStep(_StepBase):
    """A parallel group. Output: the successful outputs in declaration order (see the plan language doc)."""

    kind: Literal["parallel"] = "parallel"
    parallel: ParallelGroup


class RaceStep(_StepBase):
    """Branches run concurrently; the first to succeed wins and the rest are cancelled."""

    kind: Literal["race"] = "race"
    race: tuple[CallStep, ...]


class ForEachStep(_StepBase):
    """One run of `step` per item of the list `for_each`; `$.item` is the item. Output: the list of outputs."""

    kind: Literal["for_each"] = "for_each"
    for_each: str
    step: CallStep
    max_concurrency: int | None = Field(default=None, ge=1)


class Debate(_Model):
    """Agents argue a topic concurrently for `rounds` rounds, each seeing the others' last arguments."""

    agents: tuple[str, ...] = Field(min_length=2)
    topic: JsonValue
    rounds: int = Field(default=2, ge=1, le=10)
    synthesize: str | None = None
    converge_on: str | None = None
    stop_when_converged: bool = True
    """False runs every round, and `converged` says whether the last one agreed (the reference library's debate)."""


class DebateStep(_StepBase):
    """A debate between infer functions, optionally merged by a `synthesize` function."""

    kind: Literal["debate"] = "debate"
    debate: Debate


Step: TypeAlias = Annotated[CallStep | ParallelStep | RaceStep | ForEachStep | DebateStep, Field(discriminator="kind")]


class Flow(_Model):
    """A typed flow: input fields, an output type, a budget envelope and a DAG of steps."""

    name: str
    description: str | None = None
    title: str | None = None
    input: dict[str, TypeSpec] = Field(default_factory=dict)
    output: TypeSpec | None = None
    budget: Budget | None = None
    steps: tuple[Step, ...]
    result: str | tuple[str, ...] | None = None
    max_concurrency: int | None = Field(default=None, ge=1)
    sequential: bool = False
    """Run the steps one at a time in dependency order, with routing (reference plans; see `StepRoute`)."""
    max_rounds: int | None = Field(default=None, ge=1)
    """How often a gate may send the flow back (`on_revise`), and any step may be entered again by routing."""

    @property
    def results(self) -> tuple[str, ...]:
        """The `result` references, in the order they are tried (the first whose step was not skipped wins)."""
        if self.result is None:
            return ()
        return (self.result,) if isinstance(self.result, str) else self.result


class Workflow(_Model):
    """A reference plan's `workflow` block: the name, description and typed input of the tool it serves."""

    name: str
    description: str
    input: dict[str, TypeSpec] = Field(default_factory=dict)
    flow: str


class Plan(_Model):
    """A loaded, normalised plan.

    `source` is the file it came from ('<string>' for text); `text` is the plan as written (kept so that a run can
    be resumed in another process on exactly the plan it started with) and `text_hash` its content hash.
    `untrusted` marks a plan written by a client (loaded with the limits of `untrusted=True`).
    `base_dir` is the absolute folder of the plan's file (None for text), where `call:` modules are looked up first,
    then in `python_path` (folders as written in the plan, relative to `base_dir`).
    """

    version: str
    description: str | None = None
    python_path: tuple[str, ...] = ()
    base_dir: str | None = None
    contracts: dict[str, Contract] = Field(default_factory=dict)
    functions: dict[str, Function] = Field(default_factory=dict)
    flows: dict[str, Flow] = Field(default_factory=dict)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    workflow: Workflow | None = None
    source: str = "<string>"
    text: str = Field(default="", repr=False)
    text_hash: str = ""
    untrusted: bool = False

    def module_search_path(self) -> tuple[FilePath, ...]:
        """Absolute folders searched, in order, for `call:` modules before sys.path."""
        base = FilePath(self.base_dir) if self.base_dir is not None else None
        folders = [base] if base is not None else []
        folders.extend(((base or FilePath.cwd()) / entry).resolve() for entry in self.python_path)
        return tuple(dict.fromkeys(folders))


_ROOTS = ("input", "steps", "item")
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]")


@functools.lru_cache(maxsize=8192)
def parse_reference(text: str) -> Reference | None:
    """Parse a `$.` reference, or None when `text` is not one (or is malformed: the checker reports those).

    Accepts `$.input.a.b`, `$.steps.ID.output`, `$.steps.ID.output.field[0]`, `$.item`, `$.item.field`.
    """
    if not text.startswith("$."):
        return None
    parts: list[str | int] = []
    position = 1
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if match is None:
            return None
        name, index = match.groups()
        parts.append(name if name is not None else int(index))
        position = match.end()
    if not parts or parts[0] not in _ROOTS:
        return None
    if parts[0] == "steps":
        if len(parts) < 3 or not isinstance(parts[1], str) or parts[2] != "output":
            return None
        return Reference(text=text, root="steps", step_id=parts[1], path=tuple(parts[3:]))
    root: Literal["input", "item"] = "input" if parts[0] == "input" else "item"
    return Reference(text=text, root=root, path=tuple(parts[1:]))


def iter_references(value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Yield (path inside `value`, reference text) for every `$.` string in a binding, nested or not."""
    if isinstance(value, str):
        if value.startswith("$."):
            yield (), value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            for sub, text in iter_references(item):
                yield (str(key), *sub), text
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            for sub, text in iter_references(item):
                yield (index, *sub), text
