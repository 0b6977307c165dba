"""Agent steps: infer steps done by the calling agent (Claude Code, ...) instead of a model of the server's.

The engine hands the step out (the compiled intent, the inputs, the output schema, the postconditions, the retries
left) and the run pauses, durably. The agent reports an output; the engine checks it exactly as it checks a
model's answer (parse, schema, `ensure`), records it as an attempt, and either answers with the violations (the
step stays handed out, one retry fewer) or marks the step done and resumes the run. Contracts, retries and budgets
stay the engine's: the agent only supplies answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stratum_core.engine._context import StepContext
from stratum_core.engine._infer import _InferCall
from stratum_core.engine._infer_strategies import compiled, holds
from stratum_core.engine._pending import Pending
from stratum_core.engine._python_objects import describe
from stratum_core.engine._types import AgentTask
from stratum_core.errors import AgentStepRequired, ExpressionError
from stratum_core.plan import AdaptiveFunction, ComputeFunction, Function, InferFunction, Plan

__all__ = [
    "AwaitingAgent",
    "adaptive_infer",
    "agent_function",
    "agent_function_of",
    "agent_task",
    "check_agent_output",
    "wants_agent",
]


class AwaitingAgent(Pending):
    """The step waits for the calling agent's output."""

    def __init__(self, task: AgentTask) -> None:
        super().__init__([task])
        self.task = task


def agent_function(fn: InferFunction | ComputeFunction) -> InferFunction:
    """The infer function an agent step is checked as (a 0.1 compute function without code becomes one)."""
    if isinstance(fn, InferFunction):
        return fn
    return InferFunction(
        name=fn.name,
        description=fn.description,
        input=fn.input,
        output=fn.output,
        given=fn.given,
        ensure=fn.ensure,
        retries=fn.retries,
        budget=fn.budget,
        intent=fn.intent or fn.description or f"Compute {fn.name}.",
        executor="agent",
    )


def adaptive_infer(fn: AdaptiveFunction, target: InferFunction) -> InferFunction:
    """An adaptive function's infer path, with the adaptive function's `ensure` added to its own."""
    return target.model_copy(update={"ensure": (*target.ensure, *fn.ensure)})


def agent_function_of(fn: Function, plan: Plan) -> InferFunction | None:
    """The infer function an agent step of `fn` is checked as, or None when `fn` has no agent steps."""
    if isinstance(fn, InferFunction):
        return fn
    if isinstance(fn, ComputeFunction):
        return agent_function(fn) if fn.call is None and fn.expr is None else None
    if isinstance(fn, AdaptiveFunction):
        target = plan.functions.get(fn.infer)
        return adaptive_infer(fn, target) if isinstance(target, InferFunction) else None
    return None


def wants_agent(fn: InferFunction | ComputeFunction, ctx: StepContext) -> bool:
    """True when this step is for the calling agent: `executor: agent`, code-less compute, or the server's default."""
    if isinstance(fn, ComputeFunction):
        return fn.call is None and fn.expr is None
    executor = fn.executor or ctx.config.infer_via
    if executor != "agent":
        return False
    if ctx.agent_available:
        return True
    if ctx.config.model_for(fn.model):
        ctx.attributes["executor_fallback"] = "no calling agent: done by the server's model"
        return False
    raise AgentStepRequired(
        f"infer step '{ctx.step_id}' is done by the calling agent (executor: agent), and there is none here: "
        "run the flow through the MCP server, or configure a model (--model / STRATUM_MODEL)",
        step_id=ctx.step_id,
    )


def _call(fn: InferFunction, inputs: Mapping[str, Any], ctx: StepContext) -> _InferCall:
    return _InferCall.prepare(fn, inputs, ctx, model="agent")


def agent_task(
    fn: InferFunction, inputs: Mapping[str, Any], ctx: StepContext, *, violations: tuple[str, ...] = ()
) -> AgentTask:
    """What the agent is handed for this step, on its next attempt."""
    if not ctx.agent_available:
        raise AgentStepRequired(
            f"step '{ctx.step_id}' ({fn.name}) is done by the calling agent, and there is none here: "
            "run the flow through the MCP server",
            step_id=ctx.step_id,
        )
    call = _call(fn, inputs, ctx)
    attempt = ctx.attempts + 1
    return AgentTask(
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        function=fn.name,
        intent=fn.intent,
        context=(call.instructions,) if call.instructions else fn.context,
        inputs=call.visible,
        attachment=call.attachment,
        output_schema=call.output.schema,
        wrapped=call.output.wrapped,
        ensure=fn.ensure,
        retries_left=max(0, 1 + fn.retries - attempt),
        attempt=attempt,
        violations=violations,
    )


def check_agent_output(
    fn: InferFunction, inputs: Mapping[str, Any], ctx: StepContext, output: Any
) -> tuple[Any, list[str], str]:
    """(the step's output, the violations, the raw text) of what the agent reported, checked like a model answer.

    A string is parsed as JSON; anything else is taken as the value. For a primitive output (wrapped), the bare
    value and `{"value": ...}` are both accepted.
    """
    call = _call(fn, inputs, ctx)
    if isinstance(output, str):
        raw = output
    else:
        if call.output.wrapped and not (isinstance(output, Mapping) and set(output) == {"value"}):
            output = {"value": output}
        raw = json.dumps(output, ensure_ascii=False)
    checked = call.check(raw)
    violations = list(checked.violations)
    if not violations and fn.refine is not None:
        violations = _refine_violations(fn, inputs, checked.value, ctx.step_id)
    value = checked.value
    if not violations and not fn.stable:
        # The agent gives one answer: a Probabilistic of one sample (quorum, likewise, is one voter).
        value = {"value": value, "samples": [value], "agreement": 1.0}
    return value, violations, raw


def _refine_violations(fn: InferFunction, inputs: Mapping[str, Any], value: Any, step_id: str) -> list[str]:
    """A refine loop's `until`, checked on the agent's answer; its feedback is fed back like a violation."""
    assert fn.refine is not None
    env = {**inputs, "result": value}
    until = compiled(fn.refine.until, step_id=step_id)
    if holds(until, env, step_id=step_id):
        return []
    if fn.refine.feedback:
        try:
            return [f"refine: {compiled(fn.refine.feedback, step_id=step_id).evaluate(env)}"]
        except ExpressionError as error:
            return [f"refine: until: {fn.refine.until} is false (feedback failed: {error.message})"]
    return [f"refine: until: {describe(until, env)}"]
