"""The Engine: runs flows of loaded plans, durably, within budget."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from stratum_core.engine._agent import agent_function_of, agent_task
from stratum_core.engine._budget import Envelope
from stratum_core.engine._context import StepContext
from stratum_core.engine._ledger import SpendLedger, budget_state, charge_open_reservations, effective_budget
from stratum_core.engine._observers import FanOut
from stratum_core.engine._pending import Pending
from stratum_core.engine._scheduler import FlowExecution, RunContext, execution_class, innermost
from stratum_core.engine._types import AgentSubmission, EngineConfig, ReviewSink, RunObserver, RunResult
from stratum_core.engine._validation import schema_violations
from stratum_core.errors import PostconditionFailed, RunCancelled, RunError
from stratum_core.expressions._budget import expression_budget, is_small, off_loop
from stratum_core.llm._protocol import QuotingClient
from stratum_core.plan import Budget, Flow, InferFunction, Plan
from stratum_core.plan._schema import content_hash, fields_schema
from stratum_core.plan._untrusted import MAX_FAN_OUT, MAX_RUN_STEPS
from stratum_core.store import (
    AttemptRecord,
    MemoryRunStore,
    RunBusy,
    RunRecord,
    RunStatus,
    StepRecord,
    StoreError,
    lease_is_live,
    new_holder,
)

if TYPE_CHECKING:
    from stratum_core.llm import LLMClient
    from stratum_core.store import RunStore

__all__ = ["Engine", "ExecutionFactory", "execution_outcome", "load_run_plan"]

logger = logging.getLogger("stratum.engine")

ExecutionFactory = Callable[[RunContext, Flow, Mapping[str, Any], Envelope], FlowExecution]
_T = TypeVar("_T")
_INTERRUPTED_SCAN = 1000
_RESUMABLE: tuple[RunStatus, ...] = ("paused", "running")


@dataclass
class _Lease:
    """This engine's hold on one run while it advances it; `lost` once another process took the run over."""

    run_id: str
    holder: str
    lost: bool = False
    released: bool = False
    """Given up with the run's last write (`update_run(release_lease_of=...)`): nothing left to release or renew."""


@dataclass
class _RunLock:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


class Engine:
    """Runs flows. One engine serves many concurrent runs; its `cache: session` entries live as long as it does.

    Args:
        store: where runs, steps, attempts and reviews are persisted (default: an in-memory store).
        llm: the model client (default: LiteLLM, with `local` on the embedded model; created on the first infer call).
        config: model defaults and limits.
        review_sink: how human steps reach a person when a run does not pass its own.
        observers: told about every run (exporters, metrics), besides each run's own observer; their failures are
            logged and never break a run.
    """

    def __init__(
        self,
        *,
        store: RunStore | None = None,
        llm: LLMClient | None = None,
        config: EngineConfig | None = None,
        review_sink: ReviewSink | None = None,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        self.observers = tuple(observers)
        self.store: RunStore = store if store is not None else MemoryRunStore()
        self.config = config or EngineConfig()
        self.review_sink = review_sink
        self._llm = llm
        self._session_cache: dict[str, Any] = {}
        self._plans: dict[tuple[str, str], Plan] = {}
        self._input_schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._locks: dict[str, _RunLock] = {}
        self.holder = new_holder()
        self._interrupting: dict[str, str] = {}

    def interrupt(self, run_id: str, reason: str) -> None:
        """Mark a run so that cancelling it now records it as interrupted, not cancelled (e.g. a server shutting down).

        The run is recorded as paused with `attributes["interrupted"] = reason`; resuming it later (in any process)
        continues from its checkpoint. Call it just before cancelling the task that runs the run.
        """
        self._interrupting[run_id] = reason

    def model_client(self) -> LLMClient:
        """The engine's model client (created on first use)."""
        return self._llm_client()

    @property
    def session_cache(self) -> dict[str, Any]:
        """The `cache: session` entries of this engine's runs."""
        return self._session_cache

    async def plan_of(self, record: RunRecord) -> Plan:
        """The plan `record` was started with (loaded once per engine)."""
        return await self._plan_of(record)

    async def prepare_models(self, plan: Plan, *, agent: bool = False) -> None:
        """Get the model client ready for the models `plan` calls (one-time start-up, off every budget's clock)."""
        await self._prepare_models(plan, self._llm_client, agent=agent)

    def _llm_client(self) -> LLMClient:
        if self._llm is None:
            from stratum_core.llm import default_client

            self._llm = default_client(
                output_profiles=self.config.output_profiles,
                call_timeout=self.config.call_timeout,
                max_wait=self.config.max_retry_wait,
            )
        return self._llm

    def input_errors(self, plan: Plan, flow: str, inputs: Mapping[str, Any]) -> list[str]:
        """One line per field of `inputs` that does not match the flow's input schema (empty when valid)."""
        if flow not in plan.flows:
            return [f"unknown flow {flow!r} (flows: {', '.join(plan.flows) or 'none'})"]
        key = (plan.source, plan.text_hash, flow)
        schema = self._input_schemas.get(key)
        if schema is None:
            schema = self._input_schemas[key] = fields_schema(plan.flows[flow].input, plan.contracts)
        violations = schema_violations(inputs, schema, root="input")
        return [v.removeprefix("schema: input").lstrip(".: ") or v for v in violations]

    async def run(
        self,
        plan: Plan,
        flow: str,
        inputs: Mapping[str, Any],
        *,
        observer: RunObserver | None = None,
        review_sink: ReviewSink | None = None,
        run_id: str | None = None,
        agent: bool = False,
        llm: LLMClient | None = None,
        execution: ExecutionFactory = FlowExecution,
        owner: str | None = None,
        budget_parent: Envelope | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run `flow` of `plan` to the end, a pause (for a person or the calling agent), a failure or a cancellation.

        `agent` says the caller is an agent that can do agent steps (the MCP server's callers); without one, agent
        steps fall back to the server's model when there is one. `llm` replaces the engine's model client for this
        run (e.g. MCP sampling through the calling client). `execution` makes what runs the flow's steps (the Python
        library's flows, whose steps are the calls their code makes, pass their own).

        `owner` names who starts the run (an MCP server's client identity); the run is created holding this
        engine's lease, so no other process advances it meanwhile.

        `budget_parent` is an envelope the flow's budget draws from (a batch's: every item reserves from it too, so
        items running side by side cannot overspend it together). `attributes` are recorded on the run (a batch's
        tag: `{"batch": {...}}`).

        Failures are returned (status 'failed', `error` set), not raised; cancelling the calling task cancels the
        run, records it as cancelled, and re-raises the cancellation. Invalid inputs raise ValueError.
        """
        record = await self.new_run_record(plan, flow, inputs, run_id=run_id, owner=owner, attributes=attributes)
        self.store.create_run(record)

        async def body(lease: _Lease, _: RunRecord) -> RunResult:
            return await self._execute(
                plan,
                record,
                {},
                {},
                {},
                observer=observer,
                review_sink=review_sink,
                agent=agent,
                llm=llm,
                make_execution=execution,
                lease=lease,
                budget_parent=budget_parent,
            )

        return await self._advance(record.run_id, body, created=record)

    async def new_run_record(
        self,
        plan: Plan,
        flow: str,
        inputs: Mapping[str, Any],
        *,
        run_id: str | None,
        owner: str | None,
        attributes: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """The record of a new run of `flow` (inputs checked, defaults filled in), held by this engine's lease.

        `attributes` are recorded beside the plan's (a batch's tag).

        Invalid inputs raise ValueError. Nothing is stored yet.
        """
        errors = await off_loop(self.input_errors, plan, flow, inputs, inline=is_small(inputs))
        if errors:
            raise ValueError(f"invalid input for flow {flow!r}: " + "; ".join(errors))
        defaults = {name: spec.default for name, spec in plan.flows[flow].input.items() if spec.default is not None}
        inputs = {**defaults, **inputs}
        now = time.time()
        record = RunRecord(
            run_id=run_id or uuid.uuid4().hex,
            flow=flow,
            plan_source=plan.source,
            plan_hash=plan.text_hash,
            plan_text=plan.text,
            input=dict(inputs),
            status="running",
            created_at=now,
            updated_at=now,
            model=self.config.model,
            attributes={**_plan_attributes(plan), "backend": {"name": "local"}, **(attributes or {})},
            owner=owner,
            lease_holder=self.holder,
            lease_expires=now + self.config.lease_ttl,
        )
        return record

    async def resume(
        self,
        run_id: str,
        *,
        observer: RunObserver | None = None,
        review_sink: ReviewSink | None = None,
        agent: bool = False,
        llm: LLMClient | None = None,
        budget: Budget | None = None,
    ) -> RunResult:
        """Continue a paused (or interrupted) run from its checkpoint, without re-running finished steps.

        The plan is re-read from the run's stored text. Answered reviews are used; unanswered ones are asked again
        through the sink (or the run pauses again). What the run spent so far still counts against its budget.
        `budget` raises (or sets) the flow's budget, dimension by dimension, for this and every later resume; with
        it, a run that failed on its budget can be resumed too (its failed step runs again, finished ones do not).
        The run's lease is taken first: a run another process is advancing raises RunBusy; an unknown or ended run
        raises StoreError.
        """
        current = self.store.get_run(run_id)
        if current is not None and _backend_name(current) == "temporal":  # its workflow goes on: resume it there
            from stratum_core.backends import engine_for
            from stratum_core.backends.temporal._client import settings_of

            settings = settings_of(current)
            elsewhere = engine_for(
                "temporal", store=self.store, config=self.config, temporal=settings, observers=self.observers
            )
            return await elsewhere.resume(run_id, observer=observer, review_sink=review_sink or self.review_sink)
        if current is not None:
            _check_resumable(current, budget)  # said kindly here; the lease below re-checks atomically

        async def body(lease: _Lease, record: RunRecord) -> RunResult:
            return await self._resume(
                record, observer=observer, review_sink=review_sink, agent=agent, llm=llm, budget=budget, lease=lease
            )

        statuses: tuple[RunStatus, ...] = (*_RESUMABLE, "failed") if budget is not None else _RESUMABLE
        return await self._advance(run_id, body, statuses=statuses)

    def interrupted_runs(self) -> list[RunRecord]:
        """Runs recorded as running that nobody advances any more (their process died): resume them by id."""
        found: list[RunRecord] = []
        cursor: str | None = None
        scanned = 0
        while scanned < _INTERRUPTED_SCAN:
            page = self.store.list_runs(status="running", limit=100, cursor=cursor)
            scanned += len(page.runs)
            at = time.time()
            found.extend(
                run
                for run in page.runs
                if not lease_is_live(run.lease_holder, run.lease_expires, now=at) and _backend_name(run) == "local"
            )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return found

    async def _advance(
        self,
        run_id: str,
        body: Callable[[_Lease, RunRecord], Awaitable[_T]],
        *,
        created: RunRecord | None = None,
        statuses: tuple[RunStatus, ...] = _RESUMABLE,
    ) -> _T:
        """Run `body` holding the run's lease, released at the end; a lease lost meanwhile raises RunBusy.

        The lease is taken here (or, for a run just `created`, held already) and renewed every third of its life.
        """
        ttl = self.config.lease_ttl
        async with self._lock(run_id):
            record = created or self.store.acquire_lease(run_id, self.holder, ttl=ttl, statuses=statuses)
            lease = _Lease(run_id, self.holder)
            outcome: list[_T] = []
            failure: Exception | None = None
            try:
                async with anyio.create_task_group() as tg:

                    async def renew() -> None:
                        while True:
                            await anyio.sleep(ttl / 3)
                            if lease.released:
                                return
                            if not self.store.renew_lease(run_id, lease.holder, ttl=ttl):
                                logger.error("run %s: lease lost to another process; stopping here", run_id)
                                lease.lost = True
                                tg.cancel_scope.cancel()
                                return

                    tg.start_soon(renew)
                    try:
                        outcome.append(await body(lease, record))
                    except Exception as e:  # raised as itself, not wrapped in the task group's ExceptionGroup
                        failure = e
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    try:
                        if not lease.released:
                            self.store.release_lease(run_id, lease.holder)
                    except StoreError:
                        logger.warning("run %s: could not release its lease", run_id, exc_info=True)
            if failure is not None:
                raise failure
            if lease.lost or not outcome:
                current = self.store.get_run(run_id)
                raise RunBusy(run_id, holder=current.lease_holder if current else None, expires_at=None, lost=True)
            return outcome[0]

    async def _resume(
        self,
        record: RunRecord,
        *,
        observer: RunObserver | None,
        review_sink: ReviewSink | None,
        agent: bool,
        lease: _Lease,
        llm: LLMClient | None = None,
        budget: Budget | None = None,
    ) -> RunResult:
        run_id = record.run_id
        _check_resumable(record, budget)
        if budget is not None:
            state = budget_state(record)
            raised = {**state.get("override", {}), **budget.model_dump(exclude_none=True)}
            record = self.store.update_run(
                run_id, attributes={**record.attributes, "budget": {**state, "override": raised}}
            )
        plan = await self._plan_of(record)
        trace = self.store.get_trace(run_id)
        if trace is not None and budget_state(record).get("open"):  # calls a dead process left in flight
            record = charge_open_reservations(self.store, record, trace.attempts)
            trace = self.store.get_trace(run_id)
        steps = trace.steps if trace is not None else []
        completed = {s.step_id: s for s in steps if s.status in ("succeeded", "skipped")}
        attempts: dict[str, int] = {}
        violations: dict[str, tuple[str, ...]] = {}
        for attempt in trace.attempts if trace is not None else []:  # numbering continues after a crash
            if attempt.number >= attempts.get(attempt.step_id, 0):
                attempts[attempt.step_id] = attempt.number
                violations[attempt.step_id] = tuple(attempt.violations)
        spent_attempts = trace.attempts if trace is not None else []
        last_seen = SpendLedger(spent_attempts).last_activity(record)  # before this process touches the run
        record = self.store.update_run(run_id, status="running", error=None, finished_at=None, updated_at=time.time())
        return await self._execute(
            plan,
            record,
            completed,
            attempts,
            violations,
            observer=observer,
            review_sink=review_sink,
            agent=agent,
            llm=llm,
            spent=spent_attempts,
            spent_steps=steps,
            last_seen=last_seen,
            lease=lease,
        )

    async def _plan_of(self, record: RunRecord) -> Plan:
        key = (record.plan_source, record.plan_hash)
        plan = self._plans.get(key)
        if plan is None:
            plan = await anyio.to_thread.run_sync(load_run_plan, record)  # checking a plan is work: not on the loop
            self._plans[key] = plan
        return plan

    @contextlib.asynccontextmanager
    async def _lock(self, run_id: str) -> AsyncIterator[None]:
        """One run is advanced by one task of this engine at a time (a resume and an agent's report wait in turn).

        Across processes (and engines) the store's lease does the same; see `_advance`.

        A run's lock lives only while some task holds or waits for it, so a long-lived server keeps none per past run.
        """
        entry = self._locks.get(run_id)
        if entry is None:
            entry = self._locks[run_id] = _RunLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[run_id]

    async def submit_agent_output(
        self,
        run_id: str,
        step_id: str,
        output: Any,
        *,
        observer: RunObserver | None = None,
        review_sink: ReviewSink | None = None,
    ) -> AgentSubmission:
        """Check what the calling agent reports for an agent step; on success, resume the run.

        Raises StoreError when the run or the step is unknown or the step is not waiting for the agent, RunBusy
        when another process is advancing the run.
        """

        async def body(lease: _Lease, record: RunRecord) -> AgentSubmission:
            submission = await self._check_submission(run_id, step_id, output)
            if not submission.accepted and submission.result is None and submission.routed_to is None:
                return submission
            if submission.result is not None:  # out of retries: the run has failed
                return submission
            current = self.store.get_run(run_id) or record
            result = await self._resume(current, observer=observer, review_sink=review_sink, agent=True, lease=lease)
            return dataclasses.replace(submission, result=result)

        return await self._advance(run_id, body)

    async def close_agent_steps(
        self,
        run_id: str,
        step_ids: Sequence[str],
        *,
        status: Literal["skipped", "failed"],
        reason: str,
        attribute: str,
        resume: bool = True,
        observer: RunObserver | None = None,
        review_sink: ReviewSink | None = None,
    ) -> RunResult | None:
        """Close steps the calling agent will not do, then resume the run (unless `resume` is False).

        Each step in `step_ids` must wait for the agent, or be a step (an iteration, a task fan-out) that waits on one
        of its own parts; those parts are closed too. `status` skipped: the step is passed over as a skipped step
        (`attribute` is set to `reason`: `skip_reason`, `iteration_aborted`); failed: the step failed for the reason
        the agent gave (a parallel task it could not do). The run itself goes on: what a closed step means is the
        flow's to decide. Raises StoreError when a step is not waiting.
        """

        async def body(lease: _Lease, record: RunRecord) -> RunResult | None:
            steps = self.store.get_steps(run_id)
            now = time.time()
            for step_id in step_ids:
                owned = [
                    s for s in steps if s.status == "waiting" and (s.step_id == step_id or _part_of(s.step_id, step_id))
                ]
                if not any(s.step_id == step_id for s in owned):
                    raise StoreError(f"step {step_id!r} of run {run_id} is not waiting")
                for step in owned:
                    error = RunError(f"the agent reported: {reason}", step_id=step.step_id).to_dict()
                    self.store.upsert_step(
                        step.model_copy(
                            update={
                                "status": status,
                                "finished_at": now,
                                "error": error if status == "failed" else None,
                                "attributes": {**step.attributes, attribute: reason, "closed_by": "agent"},
                            }
                        )
                    )
            if not resume:
                return None
            current = self.store.get_run(run_id) or record
            return await self._resume(current, observer=observer, review_sink=review_sink, agent=True, lease=lease)

        return await self._advance(run_id, body)

    async def _check_submission(self, run_id: str, step_id: str, output: Any) -> AgentSubmission:
        from stratum_core.engine._agent import check_agent_output

        record = self.store.get_run(run_id)
        if record is None:
            raise StoreError(f"no run with id {run_id!r}")
        step = next((s for s in self.store.get_steps(run_id) if s.step_id == step_id), None)
        if step is None or not _awaits_agent(step):
            waiting = [s.step_id for s in self.store.get_steps(run_id) if _awaits_agent(s)]
            raise StoreError(
                f"step {step_id!r} of run {run_id} is not waiting for the agent "
                f"(waiting: {', '.join(waiting) or 'none'})"
            )
        plan = await self._plan_of(record)
        agent_fn = agent_function_of(plan.functions[str(step.function)], plan)
        if agent_fn is None:
            raise StoreError(f"step {step_id!r} is not an agent step")
        trace = self.store.get_trace(run_id)
        number = 1 + max((a.number for a in trace.attempts if a.step_id == step_id), default=0) if trace else 1
        ctx = StepContext(
            run_id=run_id,
            step_id=step_id,
            plan=plan,
            envelope=Envelope(None),
            config=self.config,
            store=self.store,
            llm_factory=self._llm_client,
            session_cache=self._session_cache,
            attempts=number - 1,
            agent_available=True,
        )
        inputs = step.input if isinstance(step.input, dict) else {}
        started = time.time()
        with expression_budget():  # the report is untrusted input: checked off the event loop when it is large
            value, violations, raw = await off_loop(
                check_agent_output, agent_fn, inputs, ctx, output, inline=is_small(output)
            )
        task = agent_task(agent_fn, inputs, ctx)
        ctx.record_attempt(
            AttemptRecord(
                run_id=run_id,
                step_id=step_id,
                number=number,
                kind="agent",
                model=None,
                prompt_hash=None,
                contract_hash=content_hash(task.output_schema),
                raw_output=raw,
                violations=violations,
                retry_reason=None,
                started_at=started,
                duration_ms=(time.time() - started) * 1000,
                backend="agent",
                transport_attempts=0,
            )
        )
        retries_left = max(0, 1 + agent_fn.retries - number)
        if violations and retries_left > 0:
            return AgentSubmission(accepted=False, violations=tuple(violations), retries_left=retries_left)
        now = time.time()
        if violations:
            history = [list(a.violations) for a in (trace.attempts if trace else []) if a.step_id == step_id]
            error = PostconditionFailed(
                f"the agent's output still breaks the contract after {number} attempts: {'; '.join(violations)}",
                history=[*history, violations],
                step_id=step_id,
            )
            error.run_id = run_id
            routed_to = _on_fail_target(plan, record.flow, step_id)
            self.store.upsert_step(
                step.model_copy(
                    update={
                        "status": "failed",
                        "error": error.to_dict(),
                        "finished_at": now,
                        "attempts": number,
                        "attributes": {**step.attributes, **({"routed_to": routed_to} if routed_to else {})},
                    }
                )
            )
            if routed_to:  # the flow routes the failure (`on_fail`): the run goes on from there
                return AgentSubmission(accepted=False, violations=tuple(violations), routed_to=routed_to)
            self.store.update_run(
                run_id, status="failed", error=error.to_dict(), finished_at=now, **self._totals(run_id)
            )
            failed = RunResult(run_id=run_id, status="failed", error=error)
            return AgentSubmission(accepted=False, violations=tuple(violations), retries_left=0, result=failed)
        self.store.upsert_step(
            step.model_copy(
                update={
                    "status": "succeeded",
                    "output": value,
                    "finished_at": now,
                    "attempts": number,
                    "duration_ms": (now - (step.started_at or now)) * 1000,
                }
            )
        )
        return AgentSubmission(accepted=True, violations=(), retries_left=retries_left)

    async def _execute(
        self,
        plan: Plan,
        record: RunRecord,
        completed: dict[str, Any],
        previous_attempts: dict[str, int],
        previous_violations: dict[str, tuple[str, ...]],
        *,
        observer: RunObserver | None,
        review_sink: ReviewSink | None,
        agent: bool,
        lease: _Lease,
        make_execution: ExecutionFactory = FlowExecution,
        llm: LLMClient | None = None,
        spent: Sequence[AttemptRecord] = (),
        budget_parent: Envelope | None = None,
        spent_steps: Sequence[StepRecord] = (),
        last_seen: float | None = None,
    ) -> RunResult:
        flow = plan.flows[record.flow]
        client_factory = (lambda: llm) if llm is not None else self._llm_client
        # One-time start-up (importing LiteLLM, a tokenizer, the embedded model) happens before any budget's clock.
        await self._prepare_models(plan, client_factory, agent=agent)
        ledger = SpendLedger(spent, spent_steps)
        ledger.ended_at = last_seen if last_seen is not None else ledger.last_activity(record)
        context = RunContext(
            run_id=record.run_id,
            plan=plan,
            store=self.store,
            config=self.config,
            llm_factory=client_factory,
            session_cache=self._session_cache,
            review_sink=review_sink if review_sink is not None else self.review_sink,
            observer=FanOut([*self.observers, *([observer] if observer is not None else [])]),
            limiter=anyio.CapacityLimiter(flow.max_concurrency or self.config.max_concurrency),
            completed=completed,
            previous_attempts=previous_attempts,
            previous_violations=previous_violations,
            agent_available=agent,
            spent_under=ledger.spent_under,
            elapsed_under=ledger.elapsed_under,
            max_steps=MAX_RUN_STEPS if plan.untrusted else None,
            max_fan_out=MAX_FAN_OUT if plan.untrusted else None,
        )
        state = budget_state(record)
        elapsed_before = float(state.get("ms_used", 0.0))
        if state.get("active_since") is not None:  # the last process died while running: count its time too
            elapsed_before += max(0.0, ledger.ended_at - float(state["active_since"])) * 1000
        envelope = Envelope(
            effective_budget(flow.budget, state),
            parent=budget_parent,
            label=f"flow '{flow.name}'",
            spent=ledger.total(),
            elapsed_ms=elapsed_before,
            allow_unpriced=self.config.allow_unpriced,
            own_overruns=True,
        )
        envelope.overruns.extend(state.get("overruns", []))
        active_since = time.time()
        budgeted = bool(state) or flow.budget is not None
        if budgeted:  # the checkpoint of a run with a budget: how long it has run, should this process die
            record = self.store.update_run(
                record.run_id,
                attributes={
                    **record.attributes,
                    "budget": {**state, "ms_used": round(elapsed_before, 3), "active_since": active_since},
                },
            )
        inputs = record.input if isinstance(record.input, dict) else {}
        if make_execution is FlowExecution:
            make_execution = execution_class(flow)
        execution = make_execution(context, flow, inputs, envelope)  # the library's Python flows bring their own
        run_id = record.run_id

        def finish(status: str, **fields: Any) -> None:
            if lease.lost:  # another process advances the run now: what it records stands
                return
            used = envelope.used  # earlier processes' spend included: the envelope started from it
            envelope.audit_time()
            totals: dict[str, Any] = {
                "tokens_in": used.tokens_in,
                "tokens_out": used.tokens_out,
                "cost_usd": used.cost_usd,
                "cost_unknown": used.cost_unknown,
            }
            if budgeted or envelope.reserved_total.tokens or envelope.overruns:
                latest = self.store.get_run(run_id) or record
                ms_used = elapsed_before + (time.time() - active_since) * 1000
                budget = {
                    **budget_state(latest),
                    "ms_used": round(ms_used, 3),
                    "active_since": None,
                    "reserved_tokens": int(state.get("reserved_tokens", 0)) + envelope.reserved_total.tokens,
                    "reserved_usd": round(float(state.get("reserved_usd", 0.0)) + envelope.reserved_total.usd, 9),
                    "overruns": list(envelope.overruns),
                }
                totals["attributes"] = {**latest.attributes, "budget": budget}
            # The run's end and the release of its lease are one write.
            self.store.update_run(
                run_id, release_lease_of=lease.holder, status=status, updated_at=time.time(), **totals, **fields
            )
            lease.released = True

        with expression_budget():  # all the expressions this advance of the run evaluates, together
            result = await self._outcome(execution, record, finish)
        with anyio.CancelScope(shield=True):
            await context.observer.run_finished(run_id, result.status)
        return result

    async def _outcome(self, execution: FlowExecution, record: RunRecord, finish: Any) -> RunResult:
        return await execution_outcome(
            execution, record, finish, interrupted=lambda run_id: self._interrupting.pop(run_id, None)
        )

    async def prepare(self, plan: Plan) -> None:
        """Get the model client ready for the models `plan` calls (LiteLLM's import, tokenizers), ahead of its runs.

        A run does this itself, off its budget's clock; a batch does it once before its own clock starts.
        """
        await self._prepare_models(plan, self._llm_client, agent=False)

    async def _prepare_models(self, plan: Plan, client_factory: Callable[[], LLMClient], *, agent: bool) -> None:
        """Get the model client ready for every model this plan's infer steps may call (off every budget's clock)."""
        models: set[str] = set()
        for fn in plan.functions.values():
            if not isinstance(fn, InferFunction):
                continue
            if agent and (fn.executor or self.config.infer_via) == "agent":
                continue
            model = self.config.model_for(fn.model)
            if model:
                models.add(model)
        if not models:
            return
        client = client_factory()
        if isinstance(client, QuotingClient):
            for model in sorted(models):
                try:
                    await client.prepare(model)
                except Exception:  # the step that calls the model meets the same failure, and names itself
                    logger.debug("getting model %s ready failed; its first call will report why", model, exc_info=True)

    def _totals(self, run_id: str) -> dict[str, Any]:
        """Tokens and cost of a run, summed over its attempts (so resumed runs count every process's work)."""
        trace = self.store.get_trace(run_id)
        attempts = trace.attempts if trace is not None else []
        return {
            "tokens_in": sum(a.tokens_in for a in attempts),
            "tokens_out": sum(a.tokens_out for a in attempts),
            "cost_usd": sum(a.cost_usd or 0.0 for a in attempts),
            "cost_unknown": any(a.cost_usd is None for a in attempts),
        }


async def execution_outcome(
    execution: FlowExecution,
    record: RunRecord,
    finish: Callable[..., None],
    *,
    interrupted: Callable[[str], str | None] = lambda run_id: None,
) -> RunResult:
    """Run `execution` to its end and record how the run ended through `finish(status, **fields)`.

    Failures become a failed result; a pause (for a person or the agent) a paused one. Cancelling records the run
    cancelled (or, when `interrupted(run_id)` gives a reason, paused to be resumed later) and re-raises.
    """
    run_id = record.run_id
    try:
        output = await execution.execute()
    except Pending as pause:
        finish("paused")
        return RunResult(run_id=run_id, status="paused", pending=pause.items)
    except RunError as error:
        error.run_id = run_id
        finish(
            "failed",
            error=error.to_dict(),
            finished_at=time.time(),
            duration_ms=(time.time() - record.created_at) * 1000,
        )
        return RunResult(run_id=run_id, status="failed", error=error)
    except anyio.get_cancelled_exc_class():
        reason = interrupted(run_id)
        if reason is not None:  # not the run's end: it is put down, to be resumed later
            with anyio.CancelScope(shield=True):
                finish("paused")
                latest = execution.run.store.get_run(run_id) or record
                execution.run.store.update_run(run_id, attributes={**latest.attributes, "interrupted": reason})
                await execution.run.observer.run_finished(run_id, "paused")
            raise
        with anyio.CancelScope(shield=True):
            cancelled = RunCancelled("the run was cancelled", run_id=run_id)
            finish("cancelled", error=cancelled.to_dict(), finished_at=time.time())
            await execution.run.observer.run_finished(run_id, "cancelled")
        raise
    except Exception as error:  # not a step's failure: a bug, or the store failing; the run still ends recorded
        logger.exception("run %s of flow %s failed outside its steps", run_id, record.flow)
        cause = innermost(error)
        failure = RunError(f"internal error: {type(cause).__name__}: {cause}", run_id=run_id)
        failure.__cause__ = error
        with contextlib.suppress(Exception):  # the store itself may be what failed
            finish("failed", error=failure.to_dict(), finished_at=time.time())
        return RunResult(run_id=run_id, status="failed", error=failure)
    finish("succeeded", output=output, finished_at=time.time(), duration_ms=(time.time() - record.created_at) * 1000)
    return RunResult(run_id=run_id, status="succeeded", output=output)


def load_run_plan(record: RunRecord) -> Plan:
    """The plan a run was started with, loaded again from the text the run recorded."""
    from stratum_core.plan import load_plan_text

    # A plan a client wrote is reloaded under the same limits it was first checked with.
    untrusted = bool(record.attributes.get("untrusted_plan"))
    # `call:` modules are looked up where they were when the run started, whatever the working folder now.
    recorded = record.attributes.get("plan_dir")
    plan_dir: str | None = recorded if isinstance(recorded, str) else None
    if plan_dir is None and not record.plan_source.startswith("<"):
        plan_dir = str(Path(record.plan_source).parent)  # a run recorded before plan_dir was
    return load_plan_text(record.plan_text, source=record.plan_source, base_dir=plan_dir, untrusted=untrusted)


def _check_resumable(record: RunRecord, budget: Budget | None) -> None:
    """A StoreError unless the run can be resumed: paused, interrupted, or stopped on its budget given a new one."""
    over_budget = record.status == "failed" and (record.error or {}).get("type") == "BudgetExceeded"
    if record.status not in _RESUMABLE and not (budget is not None and over_budget):
        more = " (a run that stopped on its budget resumes with a larger one: --budget)" if over_budget else ""
        raise StoreError(
            f"run {record.run_id} is {record.status}; only paused or interrupted runs can be resumed{more}"
        )


def _backend_name(record: RunRecord) -> str:
    """Where the run executes: `local` (an engine's process) or a durable backend (`temporal`, its workflow)."""
    backend = record.attributes.get("backend")
    name = backend.get("name") if isinstance(backend, Mapping) else None
    return name if isinstance(name, str) else "local"


def _on_fail_target(plan: Plan, flow: str, path: str) -> str | None:
    """Where a sequential flow's step at `path` routes a failure (`on_fail`), or None."""
    from stratum_core.engine._routing import base_step_id
    from stratum_core.plan import CallStep

    if "." in path or "#" in path or "[" in path or flow not in plan.flows:
        return None
    base = base_step_id(path)
    step = next((s for s in plan.flows[flow].steps if s.id == base), None)
    route = step.route if isinstance(step, CallStep) else None
    return route.on_fail if route is not None else None


def _part_of(path: str, step_id: str) -> bool:
    """Whether `path` is an iteration (`x#2`) or a task (`x[t1]`) of the step at `step_id`."""
    return path.startswith((f"{step_id}#", f"{step_id}["))


def _awaits_agent(step: StepRecord) -> bool:
    awaiting = step.attributes.get("awaiting")
    return step.status == "waiting" and isinstance(awaiting, list) and "agent" in awaiting


def _plan_attributes(plan: Plan) -> dict[str, Any]:
    """What a run records about its plan beyond the text: where its `call:` modules live, whether it is untrusted."""
    attributes: dict[str, Any] = {}
    if plan.base_dir is not None:
        attributes["plan_dir"] = plan.base_dir
    if plan.untrusted:
        attributes["untrusted_plan"] = True
    return attributes
