"""Flows written in Python (the library's `@flow`): the steps are the calls the flow's code makes.

A plan's flow is a DAG the scheduler walks; a Python flow is a coroutine that calls functions one by one. Both run
in the same engine: a `PythonFlowExecution` is a `FlowExecution` whose `execute` runs the coroutine, and each call
the coroutine makes goes through the scheduler's own step machinery (`call_function_at`, `run_step`, `_tracked`),
so steps, attempts, reviews, budgets and errors are recorded exactly as for a plan.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from stratum_core.engine._budget import Envelope
from stratum_core.engine._pending import Pending
from stratum_core.engine._scheduler import FlowExecution, RunContext
from stratum_core.engine._types import ReviewSink, RunObserver, RunResult
from stratum_core.engine._validation import schema_violations
from stratum_core.engine._values import Scope
from stratum_core.errors import (
    ComputeError,
    ConfigurationError,
    ParallelValidationFailed,
    PostconditionFailed,
    RunError,
)
from stratum_core.plan import Contract, Flow, Function, ParallelStep, Plan, Step
from stratum_core.plan._schema import type_schema

if TYPE_CHECKING:
    from stratum_core.engine._engine import Engine

__all__ = ["Body", "PythonFlowExecution", "run_python_flow"]

Body = Callable[["PythonFlowExecution"], Awaitable[Any]]
"""The flow's code: given its execution, returns the flow's output as JSON."""


class PythonFlowExecution(FlowExecution):
    """Runs a flow whose steps are the calls its Python code makes (see the module docstring).

    Step ids come from the caller (the library names a step after the variable its result is bound to); a second
    step with the same id in one flow gets `#2`, `#3`, ... appended.
    """

    def __init__(
        self,
        run: RunContext,
        flow: Flow,
        inputs: Mapping[str, Any],
        envelope: Envelope,
        *,
        body: Body,
        prefix: str = "",
    ) -> None:
        super().__init__(run, flow, inputs, envelope, prefix=prefix)
        self._body = body
        self._seen: dict[str, int] = {}
        self.body_error: BaseException | None = None
        """The exception the flow's own code raised (not a step's error), kept so the library can re-raise it."""

    @property
    def where(self) -> str:
        """The step id of this (sub-)flow, or the flow's name at the top."""
        return self.prefix.rstrip(".") or self.flow.name

    async def execute(self) -> Any:
        """Run the flow's code; return its output (checked against the flow's output type)."""
        with anyio.CancelScope(deadline=self.envelope.deadline) as deadline_scope:
            try:
                output = await self._body(self)
            except (RunError, Pending):
                raise
            except Exception as error:  # the flow's own code failed: the run fails, the error is kept
                self.body_error = error
                raise ComputeError(
                    f"the code of flow '{self.flow.name}' raised {type(error).__name__}: {error}",
                    traceback=traceback.format_exc(),
                    step_id=self.prefix.rstrip(".") or None,
                ) from error
        if deadline_scope.cancelled_caught:
            raise self.envelope.timeout_error(step_id=self.where)
        if self.flow.output is not None:
            violations = schema_violations(output, type_schema(self.flow.output, self.run.plan.contracts))
            if violations:
                raise PostconditionFailed(
                    f"the output of flow '{self.flow.name}' does not match its type: {'; '.join(violations)}",
                    history=[violations],
                    step_id=self.prefix.rstrip(".") or None,
                )
        return output

    # -- what the flow's code calls ------------------------------------------------------------------------------

    def path_for(self, step_id: str) -> str:
        """The path of the next step with this id (`id`, then `id#2`, ...), under this flow's prefix."""
        count = self._seen.get(step_id, 0) + 1
        self._seen[step_id] = count
        return self.prefix + (step_id if count == 1 else f"{step_id}#{count}")

    def include(self, functions: Mapping[str, Function], contracts: Mapping[str, Contract]) -> None:
        """Add functions and contracts to the run's plan; a different definition under a taken name is an error."""
        plan = self.run.plan
        for kind, have, new in (("function", plan.functions, functions), ("contract", plan.contracts, contracts)):
            for name, definition in new.items():
                if name in have and have[name] != definition:
                    raise ConfigurationError(
                        f"two different {kind}s named '{name}' in one run of flow '{self.flow.name}': "
                        f"give one another name"
                    )
        if set(functions) <= set(plan.functions) and set(contracts) <= set(plan.contracts):
            return
        self.run.plan = plan.model_copy(
            update={"functions": {**functions, **plan.functions}, "contracts": {**contracts, **plan.contracts}}
        )

    async def call(self, path: str, function: str, inputs: Mapping[str, Any]) -> Any:
        """Call a function of the run's plan as the step at `path` (see `path_for`); returns its (JSON) output."""
        return await self._reported(path, self.call_function_at(path, function, inputs))

    async def group(
        self, path: str, step: Step, inputs: Mapping[str, Any], *, validate: Callable[[Any], str | None] | None = None
    ) -> Any:
        """Run a parallel, race or debate step at `path` whose bindings read `$.input.*` from `inputs`.

        `validate` (parallel only) checks the group's output in Python; it returns why the output is refused, or
        None, and a refusal fails the step with ParallelValidationFailed.
        """
        scope = Scope(inputs=inputs)
        if validate is None or not isinstance(step, ParallelStep):
            return await self._reported(path, self.run_step(step, path, scope=scope))
        envelope = self.envelope.child(None, label=f"step '{path}'")
        attributes: dict[str, Any] = {}
        branches = [(f"{path}.{branch.id}", branch, scope) for branch in step.parallel.steps]

        async def work() -> Any:
            output = await self._parallel(step, path, branches, scope, attributes)
            problem = validate(output)
            if problem is not None:
                raise ParallelValidationFailed(f"validate: {problem} for group '{path}'", step_id=path)
            return output

        return await self._reported(path, self._tracked(path, step.kind, None, None, envelope, work, attributes))

    async def subflow(self, path: str, flow: Flow, inputs: Mapping[str, Any], body: Body) -> Any:
        """Run another Python flow as the step at `path`, its steps recorded under `path.`."""
        envelope = self.envelope.child(flow.budget, label=f"sub-flow '{path}'")
        child = PythonFlowExecution(self.run, flow, inputs, envelope, body=body, prefix=path + ".")
        return await self._reported(
            path, self._tracked(path, "flow", flow.name, dict(inputs), envelope, child.execute, {})
        )

    async def _reported(self, path: str, work: Awaitable[Any]) -> Any:
        """Await a step; a top-level one is reported to the observers when it ends, as the scheduler does."""
        status = "failed"
        try:
            output = await work
            status = "succeeded"
            return output
        except Pending:
            status = "waiting"
            raise
        finally:
            if not self.prefix:
                self.done += 1
                with anyio.CancelScope(shield=True):
                    await self.run.observer.step_finished(self.run.run_id, path, status, self.done, self.done)


async def run_python_flow(
    engine: Engine,
    plan: Plan,
    flow: str,
    inputs: Mapping[str, Any],
    body: Body,
    *,
    observer: RunObserver | None = None,
    review_sink: ReviewSink | None = None,
    run_id: str | None = None,
) -> tuple[RunResult, PythonFlowExecution]:
    """Run a Python flow as `Engine.run` runs a plan's flow: recorded, within budget, failures returned.

    Returns the result and the execution (whose `body_error` holds an exception the flow's own code raised).
    Invalid inputs raise ValueError.
    """
    made: list[PythonFlowExecution] = []

    def make(context: RunContext, flow: Flow, flow_inputs: Mapping[str, Any], envelope: Envelope) -> FlowExecution:
        execution = PythonFlowExecution(context, flow, flow_inputs, envelope, body=body)
        made.append(execution)
        return execution

    result = await engine.run(
        plan, flow, inputs, observer=observer, review_sink=review_sink, run_id=run_id, execution=make
    )
    return result, made[0]
