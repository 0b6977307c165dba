"""Calling one function of a plan, whatever its mode: infer, compute, human or adaptive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, assert_never

from stratum_core.engine._agent import AwaitingAgent, adaptive_infer, agent_function, agent_task, wants_agent
from stratum_core.engine._compute import run_compute
from stratum_core.engine._context import StepContext
from stratum_core.engine._human import run_human
from stratum_core.engine._infer import run_infer
from stratum_core.engine._inputs import expression_inputs
from stratum_core.engine._output_checks import output_violations
from stratum_core.engine._python_objects import python_condition, violation_of
from stratum_core.engine._types import ReviewSink
from stratum_core.engine._validation import schema_violations
from stratum_core.errors import ExpressionError, PostconditionFailed, PreconditionFailed
from stratum_core.expressions import compile_expression
from stratum_core.expressions._budget import is_small, off_loop
from stratum_core.plan import AdaptiveFunction, ComputeFunction, Function, HumanFunction, InferFunction
from stratum_core.plan._schema import type_schema

__all__ = ["call_function"]


def _given_failure(conditions: Sequence[str], inputs: Mapping[str, Any], step_id: str) -> PreconditionFailed | None:
    for condition in conditions:
        expression = python_condition(condition) or compile_expression(condition)
        actual = violation_of(expression, inputs)
        if actual is not None:
            return PreconditionFailed(f"given: {actual}", condition=condition, actual=actual, step_id=step_id)
    return None


async def _check_given(conditions: Sequence[str], inputs: Mapping[str, Any], step_id: str) -> None:
    if conditions:
        failure = await off_loop(_given_failure, conditions, inputs, step_id, inline=is_small(inputs))
        if failure is not None:
            raise failure


def _ensure_violations(conditions: Sequence[str], env: Mapping[str, Any]) -> list[str]:
    violations = []
    for condition in conditions:
        expression = python_condition(condition) or compile_expression(condition)
        try:
            violation = violation_of(expression, env)
        except ExpressionError as error:
            violations.append(f"ensure: {condition} could not be evaluated: {error.message}")
            continue
        if violation is not None:
            violations.append(f"ensure: {violation}")
    return violations


async def _check_result(fn: Function, inputs: Mapping[str, Any], result: Any, ctx: StepContext) -> None:
    """A deterministic step's output is checked once, off the event loop when it is large (see `off_loop`)."""
    failure = await off_loop(_result_failure, fn, inputs, result, ctx, inline=is_small(result))
    if failure is not None:
        raise failure


def _result_failure(
    fn: Function, inputs: Mapping[str, Any], result: Any, ctx: StepContext
) -> PostconditionFailed | None:
    """A deterministic step's output is checked once against its type and `ensure`: no retry would change it."""
    violations = schema_violations(result, type_schema(fn.output, ctx.plan.contracts))
    violations += output_violations(fn, result, inputs, ctx.config.project_dir) if not violations else []
    violations += _ensure_violations(fn.ensure, {**inputs, "result": result})
    if violations:
        return PostconditionFailed(
            f"{fn.mode} function '{fn.name}' returned a result that breaks its contract: {'; '.join(violations)}",
            history=[violations],
            step_id=ctx.step_id,
        )
    return None


async def call_function(
    fn: Function, inputs: Mapping[str, Any], ctx: StepContext, *, review_sink: ReviewSink | None
) -> Any:
    """Run `fn` on `inputs` within `ctx` and return its output; raises the RunError that explains a failure.

    Expressions (and the model's prompt) see an optional input nobody gave as None; `call:` targets get the inputs
    as given.
    """
    given = inputs
    inputs = expression_inputs(fn.input, inputs)
    if isinstance(fn, InferFunction | ComputeFunction) and wants_agent(fn, ctx):
        ctx.attributes["backend"] = "agent"
        agent_fn = agent_function(fn)
        await _check_given(agent_fn.given, inputs, ctx.step_id)
        raise AwaitingAgent(agent_task(agent_fn, inputs, ctx, violations=ctx.previous_violations))
    if isinstance(fn, InferFunction):
        ctx.attributes.setdefault("backend", "server")
        return await run_infer(fn, inputs, ctx)
    if isinstance(fn, ComputeFunction):
        await _check_given(fn.given, inputs, ctx.step_id)
        result = await run_compute(fn, given if fn.call else inputs, plan=ctx.plan, step_id=ctx.step_id)
        await _check_result(fn, inputs, result, ctx)
        return result
    if isinstance(fn, HumanFunction):
        await _check_given(fn.given, inputs, ctx.step_id)
        result = await run_human(
            fn,
            inputs,
            plan=ctx.plan,
            run_id=ctx.run_id,
            step_id=ctx.step_id,
            store=ctx.store,
            sink=review_sink,
            attributes=ctx.attributes,
        )
        if fn.ensure:
            await _check_result(fn, inputs, result, ctx)
        return result
    if isinstance(fn, AdaptiveFunction):
        return await _call_adaptive(fn, inputs, ctx, review_sink=review_sink)
    assert_never(fn)


async def _call_adaptive(
    fn: AdaptiveFunction, inputs: Mapping[str, Any], ctx: StepContext, *, review_sink: ReviewSink | None
) -> Any:
    await _check_given(fn.given, inputs, ctx.step_id)
    try:
        dispatch = bool(await off_loop(compile_expression(fn.dispatch).evaluate, inputs, inline=is_small(inputs)))
    except ExpressionError as error:
        error.step_id = ctx.step_id
        raise
    path = fn.compute if dispatch else fn.infer
    ctx.attributes.update(
        {"dispatch_result": dispatch, "path_taken": "compute" if dispatch else "infer", "implementation": path}
    )
    target = ctx.plan.functions[path]
    if isinstance(target, InferFunction):
        # The adaptive function's ensure joins the infer path's retry loop, so a violation is fed back.
        merged = adaptive_infer(fn, target)
        if wants_agent(merged, ctx):
            ctx.attributes["backend"] = "agent"
            raise AwaitingAgent(agent_task(merged, inputs, ctx, violations=ctx.previous_violations))
        ctx.attributes.setdefault("backend", "server")
        return await run_infer(merged, inputs, ctx)
    result = await call_function(target, inputs, ctx, review_sink=review_sink)
    await _check_result(fn, inputs, result, ctx)
    return result
