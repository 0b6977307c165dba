"""The scheduler: a flow is a DAG, and every step whose inputs are ready starts at once.

One `FlowExecution` runs one flow (a sub-flow gets its own, with its step ids prefixed). Steps wait on the events
of the steps they depend on (`depends_on`, the `$.steps` references in their inputs, the steps their `when`
reads), so independent steps overlap; a CapacityLimiter bounds how many leaf steps of a run execute at once.

Outcomes of a step: succeeded, skipped (its `when` was false, or it reads a skipped step), failed (the first
failure cancels the rest of the flow and becomes the flow's error), waiting (a person has to answer: the steps
that need it are not started, the others run to the end, and the run pauses).
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, assert_never

import anyio

from stratum_core.engine._budget import Envelope, Usage
from stratum_core.engine._context import StepContext
from stratum_core.engine._functions import call_function
from stratum_core.engine._inputs import checked_inputs
from stratum_core.engine._ledger import STEP_MS_USED
from stratum_core.engine._pending import AgentTask, Pending
from stratum_core.engine._types import EngineConfig, ReviewSink, RunObserver
from stratum_core.engine._validation import schema_violations
from stratum_core.engine._values import MISSING, Scope, SkippedInput, resolve_binding
from stratum_core.errors import (
    BudgetExceeded,
    ComputeError,
    ExpressionError,
    ParallelValidationFailed,
    PostconditionFailed,
    RunCancelled,
    RunError,
)
from stratum_core.expressions import compile_expression
from stratum_core.expressions._budget import off_loop
from stratum_core.plan import (
    Budget,
    CallStep,
    DebateStep,
    Flow,
    ForEachStep,
    Function,
    HumanFunction,
    ParallelStep,
    Plan,
    RaceStep,
    Step,
    iter_references,
    parse_reference,
)
from stratum_core.plan._schema import type_schema
from stratum_core.store import StepRecord

if TYPE_CHECKING:
    from stratum_core.llm import LLMClient
    from stratum_core.store import RunStore

__all__ = ["FlowExecution", "FunctionCaller", "RunContext", "execution_class", "innermost"]


class FunctionCaller(Protocol):
    """Where one function call of a step runs: `call_function` here, or an activity of a durable backend."""

    async def __call__(
        self, fn: Function, inputs: Mapping[str, Any], ctx: StepContext, *, review_sink: ReviewSink | None
    ) -> Any: ...


@dataclass(kw_only=True)
class RunContext:
    """What every step of one run shares."""

    run_id: str
    plan: Plan
    store: RunStore
    config: EngineConfig
    llm_factory: Callable[[], LLMClient]
    session_cache: MutableMapping[str, Any]
    review_sink: ReviewSink | None
    observer: RunObserver
    limiter: anyio.CapacityLimiter
    completed: dict[str, StepRecord] = field(default_factory=dict)
    previous_attempts: dict[str, int] = field(default_factory=dict)
    agent_available: bool = False
    previous_violations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    spent_under: Callable[[str], Usage] = lambda path: Usage()
    """What earlier processes spent in the step at a path (a resumed run keeps counting)."""
    elapsed_under: Callable[[str], float] = lambda path: 0.0
    """Milliseconds earlier processes used of the own `ms` budget of the step at a path."""
    max_steps: int | None = None
    """Steps one advance of the run may start (an untrusted plan's bound); None: no bound."""
    max_fan_out: int | None = None
    """Items one for_each may run over (an untrusted plan's bound); None: no bound."""
    steps_started: int = 0
    call_function: FunctionCaller = call_function
    """Runs one function call of a step (the backend's choice: in this process, or an activity elsewhere)."""

    def start_step(self, path: str) -> None:
        """Count a step about to start; refuse it past `max_steps`."""
        self.steps_started += 1
        if self.max_steps is not None and self.steps_started > self.max_steps:
            raise RunError(
                f"the run would start more than {self.max_steps} steps, the limit for a plan sent by a client",
                step_id=path,
            )


def _step_dependencies(step: Step) -> set[str]:
    """The ids of the steps (of the same flow) that `step` must wait for."""
    found = set(step.depends_on)
    bindings: list[Any] = []
    if isinstance(step, CallStep):
        bindings.append(step.inputs)
    elif isinstance(step, ParallelStep):
        bindings.extend(branch.inputs for branch in step.parallel.steps)
    elif isinstance(step, RaceStep):
        bindings.extend(branch.inputs for branch in step.race)
    elif isinstance(step, ForEachStep):
        bindings.extend([step.for_each, step.step.inputs])
    elif isinstance(step, DebateStep):
        bindings.append(step.debate.topic)
    else:
        assert_never(step)
    for binding in bindings:
        for _, text in iter_references(binding):
            reference = parse_reference(text)
            if reference is not None and reference.step_id is not None:
                found.add(reference.step_id)
    conditions = [step.when] if step.when else []
    if isinstance(step, ParallelStep) and step.parallel.validate_:
        conditions.append(step.parallel.validate_)
    for condition in conditions:
        reads = compile_expression(condition).reads
        found.update(read.fields[0] for read in reads if read.root == "steps" and read.fields)
    return found


def _time_used(envelope: Envelope, timed: bool, *, before: bool = False) -> dict[str, Any]:
    """The step-record fields that keep a timed step's clock: the time used before this execution, or so far."""
    if not timed:
        return {}
    used = envelope.elapsed_before_ms if before else envelope.elapsed_ms()
    return {"attributes": {STEP_MS_USED: round(used, 3)}}


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class FlowExecution:
    """Runs the steps of one flow (or sub-flow) inside an envelope, and returns the flow's output."""

    def __init__(self, run: RunContext, flow: Flow, inputs: Mapping[str, Any], envelope: Envelope, *, prefix: str = ""):
        self.run = run
        self.flow = flow
        self.scope = Scope(inputs=inputs)
        self.envelope = envelope
        self.prefix = prefix
        self.done = 0

    # -- the DAG -----------------------------------------------------------------------------------------------

    async def execute(self) -> Any:
        """Run every step; return the flow's output, or raise its first failure (or Pending, to pause).

        A step's task is created when the steps it depends on have finished, and a step that will take a slot of
        the run's concurrency limiter only when one is free: a flow of 10,000 independent steps holds about as many
        tasks as it has slots, not 10,000 (whose frames the cyclic GC would walk again and again).
        """
        steps = {step.id: step for step in self.flow.steps}
        dependencies = {step_id: _step_dependencies(step) & steps.keys() for step_id, step in steps.items()}
        dependents: dict[str, list[str]] = {step_id: [] for step_id in steps}
        for step_id, needs in dependencies.items():
            for dependency in needs:
                dependents[dependency].append(step_id)
        unmet = {step_id: len(needs) for step_id, needs in dependencies.items()}
        ready = deque(step_id for step_id in steps if not unmet[step_id])
        queued: deque[str] = deque()
        # A resumed run's finished steps: read back at once (they take no slot), and counted from the start
        replayed = {s for s in steps if self.prefix + s in self.run.completed} if self.run.completed else set()
        leaves = {step_id for step_id, step in steps.items() if self._takes_a_slot(step) and step_id not in replayed}
        if not self.prefix:
            self.done = len(replayed)
        slots = max(1, int(self.run.limiter.total_tokens))
        outcome: dict[str, str] = {}
        failures: list[RunError] = []
        waiting: list[Pending] = []
        in_flight = 0  # started steps that take a slot, not finished yet

        async def run_one(step: Step, group: anyio.CancelScope) -> None:
            try:
                if any(outcome.get(d) in ("failed", "waiting", "blocked") for d in dependencies[step.id]):
                    outcome[step.id] = "blocked"
                    return
                try:
                    self.scope.outputs[step.id] = await self.run_step(step, self.prefix + step.id)
                    outcome[step.id] = "succeeded"
                except SkippedInput:
                    self.scope.skipped.add(step.id)
                    outcome[step.id] = "skipped"
                except Pending as pause:
                    waiting.append(pause)
                    outcome[step.id] = "waiting"
                except RunError as error:
                    failures.append(error)
                    outcome[step.id] = "failed"
                    group.cancel()
            finally:
                ended(step.id, group)  # its dependents start before anyone hears that it ended
                if not self.prefix and step.id in outcome:
                    if step.id not in replayed:
                        self.done += 1
                    await self.run.observer.step_finished(
                        self.run.run_id, step.id, outcome[step.id], self.done, len(steps)
                    )

        def start_ready(group: anyio.CancelScope) -> None:
            nonlocal in_flight
            if group.cancel_called:  # the flow stops: nothing more starts
                return
            while ready:  # steps that take no slot start at once; the others wait in `queued`
                step_id = ready.popleft()
                if step_id in leaves:
                    queued.append(step_id)
                else:
                    tasks.start_soon(run_one, steps[step_id], group)
            while queued and in_flight < slots:
                in_flight += 1
                tasks.start_soon(run_one, steps[queued.popleft()], group)

        def ended(step_id: str, group: anyio.CancelScope) -> None:
            nonlocal in_flight
            if step_id in leaves:
                in_flight -= 1
            for dependent in dependents[step_id]:
                unmet[dependent] -= 1
                if not unmet[dependent]:
                    ready.append(dependent)
            start_ready(group)

        with anyio.CancelScope(deadline=self.envelope.deadline) as deadline_scope:
            async with anyio.create_task_group() as group:  # it ends when the last started step ends

                def overspent(error: BudgetExceeded) -> None:  # cost or tokens ran out: stop what is in flight
                    error.step_id = self.prefix.rstrip(".") or self.flow.name
                    failures.insert(0, error)
                    group.cancel_scope.cancel()

                self.envelope.watch(overspent)
                tasks = group
                start_ready(group.cancel_scope)
        if failures:
            raise failures[0]
        if deadline_scope.cancelled_caught:
            raise self.envelope.timeout_error(step_id=self.prefix.rstrip(".") or self.flow.name)
        if waiting:
            raise Pending.merge(waiting)
        return self._flow_output()

    def _takes_a_slot(self, step: Step) -> bool:
        """Whether running `step` takes a slot of the run's limiter (a function call that is not a person's)."""
        if not isinstance(step, CallStep) or step.flow is not None:
            return False
        return not isinstance(self.run.plan.functions.get(step.target), HumanFunction)

    def _flow_output(self) -> Any:
        where = self.prefix.rstrip(".") or self.flow.name
        candidates = self.flow.results or (f"$.steps.{self.flow.steps[-1].id}.output",)
        skipped: list[str] = []
        for reference in candidates:
            try:
                output = resolve_binding(reference, self.scope, step_id=where)
                output = None if output is MISSING else output
                break
            except SkippedInput as skip:
                skipped.append(skip.step_id)
        else:
            steps = ", ".join(f"'{step}'" for step in skipped)
            raise RunError(
                f"flow '{self.flow.name}' has no result: the step{'s' if len(skipped) > 1 else ''} it returns "
                f"({steps}) {'were' if len(skipped) > 1 else 'was'} skipped",
                step_id=where,
            )
        if self.flow.output is not None:
            violations = schema_violations(output, type_schema(self.flow.output, self.run.plan.contracts))
            if violations:
                raise PostconditionFailed(
                    f"the output of flow '{self.flow.name}' does not match its type: {'; '.join(violations)}",
                    history=[violations],
                    step_id=self.prefix.rstrip(".") or None,
                )
        return output

    # -- one step ---------------------------------------------------------------------------------------------

    async def run_step(self, step: Step | CallStep, path: str, *, scope: Scope | None = None) -> Any:
        """Run one step at `path` (reusing its recorded output when resuming) and record it in the store."""
        scope = scope or self.scope
        completed = self.run.completed.get(path)
        if completed is not None:
            if completed.status == "skipped":
                raise SkippedInput(step.id)
            return completed.output
        if step.when:
            for read in compile_expression(step.when).reads:
                if read.root == "steps" and read.fields and read.fields[0] in scope.skipped:
                    await self._skip(path, step, when=step.when, reads_skipped=read.fields[0])
                    raise SkippedInput(step.id)
            env = scope.expression_env()
            try:
                run_it = bool(await off_loop(compile_expression(step.when).evaluate, env))
            except ExpressionError as error:
                error.step_id = path
                raise
            if not run_it:
                await self._skip(path, step, when=step.when)
                raise SkippedInput(step.id)
        if isinstance(step, CallStep):
            return await self._run_call(step, path, scope)
        return await self._run_group(step, path, scope)

    def step_envelope(self, budget: Budget | None, *, path: str, label: str) -> Envelope:
        """The envelope of the step at `path`, inside this flow's, counting what earlier processes used of it."""
        return self.envelope.child(
            budget, label=label, spent=self.run.spent_under(path), elapsed_ms=self.run.elapsed_under(path)
        )

    def _record(self, record: StepRecord) -> None:
        self.run.store.upsert_step(record)

    async def _skip(self, path: str, step: Step | CallStep, **why: Any) -> None:
        """Record that the step at `path` did not run, and why (its `when`, or the skipped step it reads)."""
        now = time.time()
        function: str | None = None
        kind: str = step.kind
        if isinstance(step, CallStep):  # the kind it would have run as, as a step that ran is recorded
            function = step.flow or step.target
            target = self.run.plan.functions.get(step.target)
            kind = "flow" if step.flow is not None else target.mode if target is not None else step.kind
        self._record(
            StepRecord(
                run_id=self.run.run_id,
                step_id=path,
                kind=kind,
                function=function,
                status="skipped",
                started_at=now,
                finished_at=now,
                duration_ms=0.0,
                attributes=why,
            )
        )
        await self.run.observer.step_ended(self.run.run_id, path, "skipped")

    async def _run_call(self, step: CallStep, path: str, scope: Scope) -> Any:
        try:
            inputs = resolve_binding(step.inputs, scope, step_id=path)
        except SkippedInput as skipped:
            await self._skip(path, step, reads_skipped=skipped.step_id)
            raise
        if step.flow is not None:
            subflow = self.run.plan.flows[step.flow]
            inputs = checked_inputs(
                subflow.input,
                inputs,
                contracts=self.run.plan.contracts,
                callee=f"flow '{step.flow}'",
                bindings=step.inputs,
                step_id=path,
            )
            envelope = self.step_envelope(step.budget or subflow.budget, path=path, label=f"sub-flow '{path}'")
            child = execution_class(subflow)(self.run, subflow, inputs, envelope, prefix=path + ".")
            return await self._tracked(path, "flow", step.flow, inputs, envelope, child.execute, {})
        return await self.call_function_at(path, step.target, inputs, budget=step.budget, bindings=step.inputs)

    async def call_function_at(
        self,
        path: str,
        name: str,
        inputs: Mapping[str, Any],
        *,
        budget: Any = None,
        bindings: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call function `name` on already-resolved `inputs` as the step at `path` (reused when resuming).

        The inputs are checked against the function's input schema first (`bindings`, what the step bound to each
        input, names the culprit in the error).
        """
        completed = self.run.completed.get(path)
        if completed is not None and completed.status == "succeeded":
            return completed.output
        fn = self.run.plan.functions[name]
        envelope = self.step_envelope(budget or fn.budget, path=path, label=f"step '{path}'")
        ctx = StepContext(
            run_id=self.run.run_id,
            step_id=path,
            plan=self.run.plan,
            envelope=envelope,
            config=self.run.config,
            store=self.run.store,
            llm_factory=self.run.llm_factory,
            session_cache=self.run.session_cache,
            attempts=self.run.previous_attempts.get(path, 0),
            agent_available=self.run.agent_available,
            previous_violations=self.run.previous_violations.get(path, ()),
        )

        async def call() -> Any:
            checked = checked_inputs(
                fn.input,
                inputs,
                contracts=self.run.plan.contracts,
                callee=f"function '{name}'",
                bindings=bindings,
                step_id=path,
            )
            if isinstance(fn, HumanFunction):  # a person's wait does not hold a concurrency slot
                return await self.run.call_function(fn, checked, ctx, review_sink=self.run.review_sink)
            async with self.run.limiter:
                return await self.run.call_function(fn, checked, ctx, review_sink=self.run.review_sink)

        return await self._tracked(path, fn.mode, fn.name, dict(inputs), envelope, call, ctx.attributes, ctx)

    async def _tracked(
        self,
        path: str,
        kind: str,
        function: str | None,
        inputs: Any,
        envelope: Envelope,
        work: Callable[[], Any],
        attributes: dict[str, Any],
        ctx: StepContext | None = None,
    ) -> Any:
        """Run `work` as the step at `path`: record it running, then succeeded, failed, waiting or cancelled."""
        self.run.start_step(path)
        started = time.time()
        base = {
            "run_id": self.run.run_id,
            "step_id": path,
            "kind": kind,
            "function": function,
            "input": inputs,
            "started_at": started,
        }
        timed = envelope.budget.ms is not None  # its clock goes on across processes (see _ledger)
        self._record(StepRecord(status="running", **base, **_time_used(envelope, timed, before=True)))
        await self.run.observer.step_started(self.run.run_id, path, kind)

        def finish(status: str, attributes_extra: dict[str, Any] | None = None, **fields: Any) -> None:
            used = envelope.used
            envelope.audit_time()
            reserved = envelope.reserved_total
            budget_seen = (
                {"reserved_tokens": reserved.tokens, "reserved_usd": round(reserved.usd, 9)} if reserved.tokens else {}
            )
            self._record(
                StepRecord(
                    status=status,
                    finished_at=time.time(),
                    duration_ms=(time.time() - started) * 1000,
                    attempts=ctx.attempts if ctx is not None else 0,
                    tokens_in=used.tokens_in,
                    tokens_out=used.tokens_out,
                    cost_usd=used.cost_usd,
                    attributes={
                        **attributes,
                        **budget_seen,
                        **({"cost_unknown": True} if used.cost_unknown else {}),
                        **(attributes_extra or {}),
                        **_time_used(envelope, timed).get("attributes", {}),
                    },
                    **base,
                    **fields,
                )
            )

        try:
            with anyio.CancelScope(deadline=envelope.deadline) as deadline_scope:
                output = await work()
            if deadline_scope.cancelled_caught:
                raise envelope.timeout_error(step_id=path)
        except Pending as pause:
            finish("waiting", attributes_extra={"awaiting": [_awaiting(item) for item in pause.items]})
            await self.run.observer.step_ended(self.run.run_id, path, "waiting")
            raise
        except RunError as error:
            if error.step_id is None:
                error.step_id = path
            if error.function is None:
                error.function = function
            finish("failed", error=error.to_dict())
            await self.run.observer.step_ended(self.run.run_id, path, "failed")
            raise
        except anyio.get_cancelled_exc_class():
            if anyio.current_time() >= envelope.deadline:  # an enclosing scope with the same deadline caught it
                timeout = envelope.timeout_error(step_id=path)
                finish("failed", error=timeout.to_dict())
                with anyio.CancelScope(shield=True):
                    await self.run.observer.step_ended(self.run.run_id, path, "failed")
                raise timeout from None
            with anyio.CancelScope(shield=True):
                finish("cancelled", error=RunCancelled("cancelled", step_id=path).to_dict())
                await self.run.observer.step_ended(self.run.run_id, path, "cancelled")
            raise
        except SkippedInput:
            raise
        except Exception as error:  # a bug or an unexpected failure: the run fails and keeps what it had done
            cause = innermost(error)
            failure = ComputeError(
                f"internal error: {type(cause).__name__}: {cause}", traceback=traceback.format_exc(), step_id=path
            )
            finish("failed", error=failure.to_dict())
            await self.run.observer.step_ended(self.run.run_id, path, "failed")
            raise failure from error
        finish("succeeded", output=output)
        await self.run.observer.step_ended(self.run.run_id, path, "succeeded")
        return output

    # -- groups -----------------------------------------------------------------------------------------------

    async def _run_group(self, step: Step, path: str, scope: Scope) -> Any:
        for reference in _group_reads(step):
            if reference in scope.skipped:  # the skip-cascade rule: a step that reads a skipped step is skipped
                await self._skip(path, step, reads_skipped=reference)
                raise SkippedInput(step.id)
        envelope = self.step_envelope(None, path=path, label=f"step '{path}'")
        attributes: dict[str, Any] = {}
        if isinstance(step, ParallelStep):
            branches = [(f"{path}.{b.id}", b, scope) for b in step.parallel.steps]

            async def work() -> Any:
                return await self._parallel(step, path, branches, scope, attributes)

        elif isinstance(step, RaceStep):
            branches = [(f"{path}.{b.id}", b, scope) for b in step.race]

            async def work() -> Any:
                results = await self._branches(branches, stop_after_successes=1, attributes=attributes)
                winners = [(p, r) for p, r in results if r[0] == "ok"]
                if not winners:
                    raise ParallelValidationFailed(
                        f"every branch of race '{path}' failed", failures=_failures(results), step_id=path
                    )
                attributes["winner"] = winners[0][0]
                return winners[0][1][1]

        elif isinstance(step, ForEachStep):

            async def work() -> Any:
                items = resolve_binding(step.for_each, scope, step_id=path)
                if not isinstance(items, list):
                    raise RunError(f"for_each: {step.for_each} is not a list", step_id=path)
                fan_out = self.run.max_fan_out
                if fan_out is not None and len(items) > fan_out:
                    raise RunError(
                        f"for_each: {step.for_each} has {len(items)} items, and a plan sent by a client may run a "
                        f"step over at most {fan_out}",
                        step_id=path,
                    )
                template = step.step
                each = [
                    (f"{path}[{i}]", template.model_copy(update={"id": f"{step.id}[{i}]"}), scope.with_item(item))
                    for i, item in enumerate(items)
                ]
                results = await self._branches(each, fail_fast=True, limit=step.max_concurrency, attributes=attributes)
                return [result[1] for _, result in results]

        elif isinstance(step, DebateStep):
            from stratum_core.engine._debate import run_debate

            async def work() -> Any:
                return await run_debate(self, step, path, scope, attributes)

        else:  # pragma: no cover - CallStep is handled by the caller
            raise TypeError(step)
        return await self._tracked(path, step.kind, None, None, envelope, work, attributes)

    async def _parallel(
        self,
        step: ParallelStep,
        path: str,
        branches: list[tuple[str, CallStep, Scope]],
        scope: Scope,
        attributes: dict[str, Any],
    ) -> Any:
        require = step.parallel.require
        if require == "any":
            results = await self._branches(branches, stop_after_successes=1, attributes=attributes)
        else:
            try:
                results = await self._branches(branches, fail_fast=require == "all", attributes=attributes)
            except RunError as error:
                raise ParallelValidationFailed(
                    f"branch '{error.step_id}' of parallel group '{path}' failed: {error.message}",
                    failures={str(error.step_id): _error_text(error)},
                    step_id=path,
                ) from error
        successes = [result[1] for _, result in results if result[0] == "ok"]
        ran = [result for _, result in results if result[0] != "skipped"]
        if results and not ran and len(results) == len(branches):
            await self._skip(path, step, branches_skipped=True)
            raise SkippedInput(step.id)
        needed = len(ran) if require == "all" else 1 if require == "any" else int(require)
        if len(successes) < needed:
            raise ParallelValidationFailed(
                f"parallel group '{path}' needs {needed} successful branch{'es' if needed != 1 else ''}, "
                f"got {len(successes)}",
                failures=_failures(results),
                step_id=path,
            )
        if require == 0:
            output: Any = [_outcome(branch_path, result) for branch_path, result in results]
        elif require == "any":
            output = successes[0]
        else:
            output = successes
        if step.parallel.validate_:
            env = scope.expression_env(outputs=[output] if require == "any" else output)
            expression = compile_expression(step.parallel.validate_)
            if not await off_loop(expression.evaluate, env):
                raise ParallelValidationFailed(
                    f"validate: {step.parallel.validate_} is false for group '{path}'", step_id=path
                )
        attributes["successes"] = len(successes)
        return output

    async def _branches(
        self,
        branches: list[tuple[str, CallStep, Scope]],
        *,
        fail_fast: bool = False,
        stop_after_successes: int | None = None,
        limit: int | None = None,
        attributes: dict[str, Any],
    ) -> list[tuple[str, tuple[str, Any]]]:
        """Run branches concurrently; results in declaration order as ('ok', output) / ('error', text) pairs.

        Branches not run because the group stopped early are left out of the results.
        """
        results: dict[str, tuple[str, Any]] = {}
        first_error: list[RunError] = []
        waiting: list[Pending] = []
        gate = anyio.CapacityLimiter(limit) if limit else None

        async def branch(path: str, call: CallStep, scope: Scope, group: anyio.CancelScope) -> None:
            try:
                if gate is not None:
                    async with gate:
                        output = await self.run_step(call, path, scope=scope)
                else:
                    output = await self.run_step(call, path, scope=scope)
                results[path] = ("ok", output)
                successes = sum(1 for r in results.values() if r[0] == "ok")
                if stop_after_successes is not None and successes >= stop_after_successes:
                    group.cancel()
            except SkippedInput:
                results[path] = ("skipped", None)
            except Pending as pause:
                waiting.append(pause)
            except RunError as error:
                results[path] = ("error", _error_text(error))
                if fail_fast:
                    first_error.append(error)
                    group.cancel()

        async with anyio.create_task_group() as group:
            for path, call, scope in branches:
                group.start_soon(branch, path, call, scope, group.cancel_scope)
        if first_error:
            raise first_error[0]
        if waiting and not (stop_after_successes and any(r[0] == "ok" for r in results.values())):
            raise Pending.merge(waiting)
        return [(path, results[path]) for path, _, _ in branches if path in results]


def _group_reads(step: Step) -> set[str]:
    """The ids of the steps a group's branches (or a for_each's step, or a debate's topic) read."""
    bindings: list[Any] = []
    if isinstance(step, ParallelStep):
        bindings.extend(branch.inputs for branch in step.parallel.steps)
    elif isinstance(step, RaceStep):
        bindings.extend(branch.inputs for branch in step.race)
    elif isinstance(step, ForEachStep):
        bindings.extend([step.for_each, step.step.inputs])
    elif isinstance(step, DebateStep):
        bindings.append(step.debate.topic)
    found: set[str] = set()
    for binding in bindings:
        for _, text in iter_references(binding):
            reference = parse_reference(text)
            if reference is not None and reference.step_id is not None:
                found.add(reference.step_id)
    return found


def _outcome(path: str, result: tuple[str, Any]) -> dict[str, Any]:
    """One branch's entry in the output of a `require: 0` group: {ok, output} or {ok, error} (error is text)."""
    status, value = result
    if status == "ok":
        return {"ok": True, "output": value}
    if status == "skipped":
        return {"ok": False, "error": f"branch '{path}' was skipped"}
    return {"ok": False, "error": str(value)}


def execution_class(flow: Flow) -> type[FlowExecution]:
    """What runs `flow`: the DAG scheduler, or the sequential one with routing (reference plans)."""
    if flow.sequential:
        from stratum_core.engine._routing import SequentialFlowExecution

        return SequentialFlowExecution
    return FlowExecution


def innermost(error: BaseException) -> BaseException:
    """The one exception a chain of single-exception groups (from nested task groups) wraps, else `error`."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _awaiting(item: Any) -> str:
    return "agent" if isinstance(item, AgentTask) else "person"


def _failures(results: Iterable[tuple[str, tuple[str, Any]]]) -> dict[str, str]:
    return {path: str(result[1]) for path, result in results if result[0] == "error"}
