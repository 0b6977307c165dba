"""refine, quorum and `stable: false`: strategies built from answers of the infer validate/retry loop.

They nest in one fixed order: samples of (refine of (quorum of (answers))). Each layer only needs a way to get one
validated answer, so this module knows nothing of prompts or models. Concurrent calls share the step's budget
envelope; a budget, transport or expression error in one of them cancels the others.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import anyio

from stratum_core.engine._context import StepContext
from stratum_core.engine._python_objects import Condition, python_condition, violation_of
from stratum_core.errors import (
    ConsensusFailure,
    ConvergenceFailure,
    ExpressionError,
    PostconditionFailed,
    RunError,
    StabilityAssertionError,
)
from stratum_core.expressions import Expression, ExpressionSyntaxError, compile_expression
from stratum_core.expressions._budget import is_small, off_loop
from stratum_core.plan import InferFunction, Quorum, Refine
from stratum_core.plan._schema import canonical_json

__all__ = ["DEFAULT_SAMPLES", "Answer", "compiled", "holds", "run_strategies"]

DEFAULT_SAMPLES = 3

Failures = tuple[type[RunError], ...]


class Answer(Protocol):
    """Produces one answer that met the contract and `ensure`, or raises PostconditionFailed."""

    def __call__(self, *, feedback: str | None = ..., kind: str = ..., seed: int | None = ...) -> Awaitable[Any]: ...


@functools.lru_cache(maxsize=512)
def _compile(text: str) -> Expression:
    return compile_expression(text)


def compiled(text: str, *, step_id: str) -> Condition:
    """The compiled expression for `text`, cached; a syntax error (which the checker catches first) names the step.

    A token of the Python library names a registered Python callable instead (see `_python_objects`).
    """
    condition = python_condition(text)
    if condition is not None:
        return condition
    try:
        return _compile(text)
    except ExpressionError as e:
        e.step_id = e.step_id or step_id
        raise
    except ExpressionSyntaxError as e:  # a plan that skipped the checker
        raise ExpressionError(f"{text}: {e}", expression=text, step_id=step_id) from e


def holds(expression: Condition, env: Mapping[str, Any], *, step_id: str) -> bool:
    """Evaluate a condition; an ExpressionError propagates, naming the step."""
    try:
        return bool(expression.evaluate(env))
    except ExpressionError as e:
        e.step_id = e.step_id or step_id
        raise


async def run_strategies(fn: InferFunction, inputs: Mapping[str, Any], ctx: StepContext, answer: Answer) -> Any:
    """The step's output: samples of refine of quorum of answers, each layer only when the function asks for it."""

    async def one(feedback: str | None, kind: str, seed: int | None) -> Any:
        if fn.quorum is not None:
            return await _quorum(fn.quorum, ctx, answer, feedback=feedback, seed=seed)
        return await answer(feedback=feedback, kind=kind, seed=seed)

    async def refined(kind: str, seed: int | None) -> Any:
        if fn.refine is not None:
            return await _refine(fn.refine, inputs, ctx, one, kind=kind, seed=seed)
        return await one(None, kind, seed)

    if fn.stable:
        return await refined("infer", None)
    return await _samples(fn, ctx, refined)


async def _refine(
    spec: Refine,
    inputs: Mapping[str, Any],
    ctx: StepContext,
    one: Callable[[str | None, str, int | None], Awaitable[Any]],
    *,
    kind: str,
    seed: int | None,
) -> Any:
    """Answer again with feedback until `until` holds; ConvergenceFailure after `max_iterations`."""
    until = compiled(spec.until, step_id=ctx.step_id)
    feedback_expression = compiled(spec.feedback, step_id=ctx.step_id) if spec.feedback else None
    feedback: str | None = None
    last = spec.until
    for iteration in range(1, spec.max_iterations + 1):
        ctx.attributes["iterations"] = iteration
        result = await one(feedback, kind, seed)
        env = {**inputs, "result": result}
        try:
            violation, feedback = await off_loop(_refine_check, until, feedback_expression, env, inline=is_small(env))
        except ExpressionError as e:
            e.step_id = e.step_id or ctx.step_id
            raise
        if violation is None:
            return result
        last = violation
    count = spec.max_iterations
    raise ConvergenceFailure(
        f"refine did not converge in {count} iteration{'s' if count != 1 else ''}: until {last}",
        iterations=count,
        condition=spec.until,
        step_id=ctx.step_id,
    )


def _refine_check(until: Condition, feedback: Condition | None, env: Mapping[str, Any]) -> tuple[str | None, str]:
    """(None when `until` holds, else why not; the feedback for the next iteration)."""
    violation = violation_of(until, env)
    if violation is None or feedback is None:
        return violation, f"until: {violation}"
    value = feedback.evaluate(env)
    return violation, value if isinstance(value, str) else canonical_json(value)


async def _quorum(spec: Quorum, ctx: StepContext, answer: Answer, *, feedback: str | None, seed: int | None) -> Any:
    """Ask `n` times at once; the largest agreeing group must reach the threshold; its most confident answer wins."""
    n = spec.n
    base = (seed or 0) * n
    calls = [functools.partial(answer, feedback=feedback, kind="quorum", seed=base + i) for i in range(n)]
    outcomes = await _gather(calls, failures=(PostconditionFailed,))
    groups: dict[str, list[int]] = {}
    labels: dict[str, str] = {}
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, RunError):
            continue
        agreed = _field(outcome, spec.agree_on) if spec.agree_on else outcome
        key = canonical_json(agreed)
        groups.setdefault(key, []).append(index)
        labels[key] = agreed if isinstance(agreed, str) else key
    threshold = spec.threshold or n // 2 + 1
    votes = {labels[key]: len(members) for key, members in groups.items()}
    failed = [outcome for outcome in outcomes if isinstance(outcome, RunError)]
    best = max(groups, key=lambda key: len(groups[key]), default=None)  # ties: the group that answered first
    if best is None or len(groups[best]) < threshold:
        on = f" on {spec.agree_on}" if spec.agree_on else ""
        tally = ", ".join(f"{label}={count}" for label, count in votes.items()) or "none"
        note = f"; {len(failed)} of {n} calls did not meet the contract" if failed else ""
        first_failure = f" (first: {failed[0].message})" if failed and not votes else ""
        raise ConsensusFailure(
            f"quorum of {n} did not agree{on}: the largest group has {len(groups[best]) if best else 0} "
            f"of the {threshold} needed (votes: {tally}){note}{first_failure}",
            votes=votes,
            threshold=threshold,
            step_id=ctx.step_id,
        )
    winner = max(groups[best], key=lambda index: _confidence(outcomes[index]))  # ties: the first
    ctx.attributes["quorum"] = {"votes": votes, "winner": labels[best], "threshold": threshold, "failed": len(failed)}
    return outcomes[winner]


async def _samples(fn: InferFunction, ctx: StepContext, refined: Callable[[str, int | None], Awaitable[Any]]) -> Any:
    """Sample the function several times at once: the modal value, every sample, and how much they agree."""
    count = fn.samples or DEFAULT_SAMPLES
    calls = [functools.partial(refined, "sample", i) for i in range(count)]
    outcomes = await _gather(calls, failures=(PostconditionFailed, ConvergenceFailure, ConsensusFailure))
    values = [outcome for outcome in outcomes if not isinstance(outcome, RunError)]
    if not values:
        first = outcomes[0]
        assert isinstance(first, RunError)
        raise first
    tally: dict[str, int] = {}
    first_of: dict[str, Any] = {}
    for value in values:
        key = canonical_json(value)
        tally[key] = tally.get(key, 0) + 1
        first_of.setdefault(key, value)
    modal = max(tally, key=lambda key: tally[key])  # ties: the value seen first
    agreement = tally[modal] / count
    ctx.attributes["agreement"] = agreement
    ctx.attributes["samples"] = count
    if fn.min_agreement is not None and agreement < fn.min_agreement:
        raise StabilityAssertionError(
            f"{tally[modal]} of {count} samples agreed (agreement {agreement:.2f}), "
            f"below min_agreement {fn.min_agreement}",
            agreement=agreement,
            required=fn.min_agreement,
            step_id=ctx.step_id,
        )
    return {"value": first_of[modal], "samples": values, "agreement": agreement}


async def _gather(calls: Sequence[Callable[[], Awaitable[Any]]], *, failures: Failures) -> list[Any]:
    """Run the calls at once; each result is its value or, for the expected `failures`, the error itself.

    Any other error cancels the rest and is raised as itself (not as an exception group).
    """
    results: list[Any] = [None] * len(calls)

    async def run(index: int) -> None:
        try:
            results[index] = await calls[index]()
        except failures as e:
            results[index] = e

    try:
        async with anyio.create_task_group() as group:
            for index in range(len(calls)):
                group.start_soon(run, index)
    except BaseExceptionGroup as errors:
        first = _first_run_error(errors)
        if first is None:
            raise
        raise first from None
    return results


def _first_run_error(group: BaseExceptionGroup[BaseException]) -> RunError | None:
    for error in group.exceptions:
        if isinstance(error, RunError):
            return error
        if isinstance(error, BaseExceptionGroup):
            nested = _first_run_error(error)
            if nested is not None:
                return nested
    return None


def _field(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _confidence(value: Any) -> float:
    confidence = value.get("confidence") if isinstance(value, Mapping) else None
    if isinstance(confidence, int | float) and not isinstance(confidence, bool):
        return float(confidence)
    return float("-inf")
