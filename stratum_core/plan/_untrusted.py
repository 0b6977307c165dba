"""Limits for plans written by an agent or a client (`stratum_run`, `stratum_validate` over MCP).

Such a plan is untrusted text: it may use expressions (sandboxed) but never `call:` a Python function, and its size
is bounded so that it cannot ask the server for unbounded work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from stratum_core.errors import PlanError, Problem
from stratum_core.plan._check_context import CheckContext
from stratum_core.plan._model import (
    CallStep,
    ComputeFunction,
    DebateStep,
    Flow,
    ForEachStep,
    InferFunction,
    ParallelStep,
    RaceStep,
)
from stratum_core.plan._patterns import pattern_problem

__all__ = [
    "MAX_EXPANDED_CHARS",
    "MAX_FAN_OUT",
    "MAX_FLOWS",
    "MAX_FUNCTIONS",
    "MAX_NESTING",
    "MAX_RUN_STEPS",
    "MAX_STEPS",
    "MAX_TEXT",
    "check_size",
    "check_untrusted",
]

MAX_TEXT = 64_000
MAX_EXPANDED_CHARS = 1_000_000  # characters once YAML aliases are expanded
MAX_FUNCTIONS = 50
MAX_FLOWS = 10
MAX_STEPS = 100
MAX_CALLS_PER_STEP = 10  # quorum n, samples, refine iterations, debate rounds x agents, retries
MAX_RUN_STEPS = 1_000  # steps one advance of a run may start, sub-flows and for_each items included
MAX_FAN_OUT = 100  # items one for_each may run over
MAX_NESTING = 3  # flows calling flows: a flow, a sub-flow, and its sub-flow


def check_size(text: str, *, source: str) -> None:
    """Refuse an untrusted plan text longer than MAX_TEXT characters, before parsing it."""
    if len(text) > MAX_TEXT:
        raise PlanError(
            [
                Problem(
                    source,
                    1,
                    1,
                    "",
                    f"a plan sent by a client may have at most {MAX_TEXT} characters; this one has {len(text)}",
                )
            ]
        )


def _step_count(step: object) -> int:
    if isinstance(step, ParallelStep):
        return 1 + len(step.parallel.steps)
    if isinstance(step, RaceStep):
        return 1 + len(step.race)
    if isinstance(step, ForEachStep | DebateStep):
        return 2
    return 1


def _called_flows(step: object) -> Iterator[str]:
    """The flows a step calls: itself, its branches, or the step of its for_each."""
    if isinstance(step, ParallelStep):
        calls: list[object] = list(step.parallel.steps)
    elif isinstance(step, RaceStep):
        calls = list(step.race)
    elif isinstance(step, ForEachStep):
        calls = [step.step]
    else:
        calls = [step]
    for call in calls:
        if isinstance(call, CallStep) and call.flow is not None:
            yield call.flow


def _deepest_chain(flows: Mapping[str, Flow], start: str) -> list[str]:
    """The longest chain of flows calling flows from `start` (a cycle, reported elsewhere, is followed once)."""
    best: list[str] = [start]
    stack: list[list[str]] = [[start]]
    while stack:
        chain = stack.pop()
        if len(chain) > len(best):
            best = chain
        if len(chain) > MAX_NESTING + 1:
            continue  # long enough to refuse
        flow = flows.get(chain[-1])
        called = {name for step in (flow.steps if flow is not None else ()) for name in _called_flows(step)}
        stack.extend([*chain, name] for name in sorted(called) if name not in chain)
    return best


def _patterns(value: object, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every `pattern` (and `patternProperties` key) in the plan's data, with its path."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if key == "pattern" and isinstance(child, str):
                    yield (*where, key), child
                elif key == "patternProperties" and isinstance(child, Mapping):
                    yield from (((*where, key, str(p)), str(p)) for p in child)
                stack.append((child, (*where, str(key))))
        elif isinstance(item, list):
            stack.extend((child, (*where, index)) for index, child in enumerate(item))


def check_untrusted(ctx: CheckContext) -> None:
    """Report `call:` targets, patterns RE2 cannot run, models the server does not offer, and what is over limits."""
    plan = ctx.plan
    for path, pattern in _patterns(ctx.data, ()):
        problem = pattern_problem(pattern)
        if problem is not None:
            ctx.report(
                path,
                f"a plan sent by a client may only use patterns RE2 can run (linear time): {problem}",
                "no back-references or lookarounds",
            )
    for name, fn in plan.functions.items():
        if ctx.allowed_models is not None and isinstance(fn, InferFunction) and fn.model is not None:
            if fn.model not in ctx.allowed_models:
                offered = ", ".join(sorted(ctx.allowed_models)) or "none"
                ctx.report(
                    ("functions", name, "model"),
                    f"the model '{fn.model}' is not one of the server's configured models ({offered}), the only ones "
                    "a plan sent by a client may use",
                    "leave `model:` out to use the server's default",
                )
        if isinstance(fn, ComputeFunction) and fn.call is not None:
            ctx.report(
                ("functions", name, "call"),
                "a plan sent by a client cannot call Python code",
                "use `expr:` (a sandboxed expression) instead of `call:`",
            )
        if isinstance(fn, InferFunction):
            calls = max(fn.quorum.n if fn.quorum else 1, fn.samples or 1, fn.refine.max_iterations if fn.refine else 1)
            if calls > MAX_CALLS_PER_STEP or fn.retries > MAX_CALLS_PER_STEP:
                ctx.report(
                    ("functions", name),
                    f"a plan sent by a client may ask at most {MAX_CALLS_PER_STEP} calls or retries of one function",
                )
    if len(plan.functions) > MAX_FUNCTIONS:
        ctx.report(("functions",), f"a plan sent by a client may declare at most {MAX_FUNCTIONS} functions", key=True)
    if len(plan.flows) > MAX_FLOWS:
        ctx.report(("flows",), f"a plan sent by a client may declare at most {MAX_FLOWS} flows", key=True)
    for name, flow in plan.flows.items():
        steps = sum(_step_count(step) for step in flow.steps)
        if steps > MAX_STEPS:
            ctx.report(
                ("flows", name, "steps"),
                f"a plan sent by a client may have at most {MAX_STEPS} steps in a flow; this one has {steps}",
                key=True,
            )
        chain = _deepest_chain(plan.flows, name)
        if len(chain) > MAX_NESTING:
            ctx.report(
                ("flows", name),
                f"a plan sent by a client may nest flows at most {MAX_NESTING} deep; this one calls "
                f"{' -> '.join(chain[: MAX_NESTING + 1])}",
                key=True,
            )
        for index, step in enumerate(flow.steps):
            if isinstance(step, DebateStep) and step.debate.rounds * len(step.debate.agents) > MAX_CALLS_PER_STEP:
                ctx.report(
                    ("flows", name, "steps", index, "debate"),
                    f"a debate in a plan sent by a client may make at most {MAX_CALLS_PER_STEP} turns",
                )
