"""A run as a Temporal workflow: the engine's own scheduler, deterministic, with each step's call an activity.

The flow's DAG is scheduled by the same `FlowExecution` that runs flows in process (conditions, parallel groups,
races, for_each, debates, sub-flows, sequential routing), on Temporal's deterministic event loop: time budgets are
its cancel-scope deadlines, which there are workflow timers. What the scheduler hands a backend is one function
call of a step (`RunContext.call_function`); here that call is the `stratum.call_function` activity, which runs the
engine's `call_function` on a worker. A human step's activity opens the review and says it is pending; the
workflow then waits for the `review_answered` signal (or the review's timeout, a timer) and calls again, which
reads the answer from the store. Money and tokens: the workflow holds the run's envelopes; each model call
reserves in them (the `reserve` update) before its request and settles (the `settle` update) after it.

Workflow code runs outside Temporal's sandbox (the engine imports far more than the sandbox admits); what keeps it
deterministic is that it reads nothing that changes: the run's record and plan are immutable, and the scheduler's
own records are read back from memory (`WorkflowRecorder`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import anyio
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

from stratum_core.backends._errors import run_error_from_dict
from stratum_core.backends._payloads import packed, unpacked
from stratum_core.backends.temporal._activities import CALL_FUNCTION, RESERVE, SETTLE
from stratum_core.backends.temporal._hosts import WorkflowHost, host_for
from stratum_core.backends.temporal._messages import (
    EnvelopeSnapshot,
    ReserveAnswer,
    ReserveRequest,
    RunStart,
    SettleRequest,
    StepCall,
    StepOutcome,
)
from stratum_core.backends.temporal._recorder import WorkflowRecorder
from stratum_core.engine import ReviewSink
from stratum_core.engine._budget import Envelope, Reservation
from stratum_core.engine._context import StepContext
from stratum_core.engine._engine import execution_outcome
from stratum_core.engine._observers import FanOut
from stratum_core.engine._scheduler import RunContext, execution_class
from stratum_core.errors import BudgetExceeded, RunError
from stratum_core.expressions._budget import expression_budget, on_loop_only
from stratum_core.llm import LLMClient
from stratum_core.llm._protocol import Price
from stratum_core.plan import Function
from stratum_core.plan._untrusted import MAX_FAN_OUT, MAX_RUN_STEPS

__all__ = ["WORKFLOW_NAME", "StratumRunWorkflow", "snapshots"]

WORKFLOW_NAME = "StratumRun"
REVIEW_ANSWERED = "review_answered"
_STEP_TIMEOUT = timedelta(days=1)
"""How long one step's activity may run at most; a dead worker is noticed sooner, by its missing heartbeats."""


def snapshots(envelope: Envelope) -> list[EnvelopeSnapshot]:
    """The chain `envelope` draws from, outermost first, as it stands now."""
    chain: list[Envelope] = []
    current: Envelope | None = envelope
    while current is not None:
        chain.append(current)
        current = current.parent
    return [
        EnvelopeSnapshot(
            label=e.label,
            budget=e.budget.model_dump(exclude_none=True),
            elapsed_ms=e.elapsed_ms(),
            tokens_in=e.used.tokens_in,
            tokens_out=e.used.tokens_out,
            cost_usd=e.used.cost_usd,
            cost_unknown=e.used.cost_unknown,
            reserved_tokens=e.reserved.tokens,
            reserved_usd=e.reserved.usd,
        )
        for e in reversed(chain)
    ]


def _no_model() -> LLMClient:
    raise RuntimeError("workflow code makes no model call: each call is an activity")


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class StratumRunWorkflow:
    """One run of a flow of a plan, whose record (plan text, inputs) the server wrote to the shared store."""

    def __init__(self) -> None:
        self._answered: set[str] = set()
        self._waiting: dict[str, str] = {}
        self._in_flight = 0
        self._paused = False
        self._envelopes: dict[str, Envelope] = {}  # the envelope of each step whose activity runs, by activity id
        self._reservations: dict[str, tuple[str, Reservation]] = {}  # open ones, by key: (activity id, reservation)
        self._answers: dict[str, ReserveAnswer] = {}
        self._activities = 0
        self._recorder: WorkflowRecorder | None = None
        self._host: WorkflowHost | None = None
        self._start: RunStart | None = None

    @workflow.signal(name=REVIEW_ANSWERED)
    def review_answered(self, review_id: str) -> None:
        """A person answered the review `review_id` in the store: its step reads the answer and goes on."""
        self._answered.add(review_id)

    @workflow.query(name="waiting_reviews")
    def waiting_reviews(self) -> list[str]:
        """The reviews the run waits for now."""
        return sorted(self._waiting)

    @workflow.update(name=RESERVE)
    async def reserve(self, request: ReserveRequest) -> ReserveAnswer:
        """Reserve one model call's worst case in the step's real envelopes, as `Envelope.reserve` does in process.

        These are the envelopes every step of the run draws from, whichever worker runs it; refused, the answer
        says why (the BudgetExceeded, as recorded).
        """
        answered = self._answers.get(request.key)
        if answered is not None:  # the same call asking again (its update was retried)
            return answered
        envelope = self._envelopes.get(request.activity_id)
        if envelope is None:
            error = RunError(
                f"step '{request.step_id}' has no activity {request.activity_id} running: no request was made"
            )
            error.step_id = request.step_id
            return ReserveAnswer(error=error.to_dict())
        price = None
        if request.input_per_token is not None and request.output_per_token is not None:
            price = Price(request.input_per_token, request.output_per_token)
        try:
            reservation = envelope.reserve(
                step_id=request.step_id,
                model=request.model,
                prompt_tokens=request.prompt_tokens,
                wanted_tokens=request.wanted_tokens,
                price=price,
            )
        except BudgetExceeded as refusal:
            answer = ReserveAnswer(error=refusal.to_dict())
        else:
            self._reservations[request.key] = (request.activity_id, reservation)
            answer = ReserveAnswer(
                prompt_tokens=reservation.prompt_tokens, max_tokens=reservation.max_tokens, usd=reservation.usd
            )
        self._answers[request.key] = answer
        return answer

    @workflow.update(name=SETTLE)
    async def settle(self, request: SettleRequest) -> None:
        """Release a call's reservation and charge what it used, as `Envelope.settle` does in process."""
        entry = self._reservations.pop(request.key, None)
        if entry is not None:
            reservation = entry[1]
            reservation.envelope.settle(
                reservation, tokens_in=request.tokens_in, tokens_out=request.tokens_out, cost_usd=request.cost_usd
            )

    def _settle_lost(self, activity_id: str) -> None:
        """Charge the whole reservation of each call of this activity that never settled.

        Its worker was lost in the call, or it was cancelled first: charged as a process that dies mid-call is.
        """
        for key, (owner, reservation) in list(self._reservations.items()):
            if owner == activity_id:
                del self._reservations[key]
                reservation.envelope.settle_unknown(reservation)

    @workflow.run
    async def run(self, start: RunStart) -> str:
        """Run the flow to its end; the run's record in the store says how it ended (this returns its status)."""
        self._start = start
        host = self._host = host_for(workflow.info().task_queue)
        record = host.store.get_run(start.run_id)
        if record is None:
            raise ApplicationError(f"run {start.run_id} is not in this worker's store", non_retryable=True)
        plan = host.plan_of(record)
        flow = plan.flows[record.flow]
        recorder = self._recorder = WorkflowRecorder(host.store, record, replaying=workflow.unsafe.is_replaying)
        context = RunContext(
            run_id=record.run_id,
            plan=plan,
            store=recorder,
            config=host.config,
            llm_factory=_no_model,
            session_cache={},
            review_sink=None,
            observer=FanOut([]),
            limiter=anyio.CapacityLimiter(flow.max_concurrency or host.config.max_concurrency),
            call_function=self._call_function,
            max_steps=MAX_RUN_STEPS if plan.untrusted else None,
            max_fan_out=MAX_FAN_OUT if plan.untrusted else None,
        )
        envelope = Envelope(flow.budget, label=f"flow '{flow.name}'", allow_unpriced=host.config.allow_unpriced)
        inputs = record.input if isinstance(record.input, dict) else {}
        execution = execution_class(flow)(context, flow, inputs, envelope)
        budgeted = flow.budget is not None

        def finish(status: str, **fields: Any) -> None:
            used = envelope.used
            envelope.audit_time()
            totals: dict[str, Any] = {
                "tokens_in": used.tokens_in,
                "tokens_out": used.tokens_out,
                "cost_usd": used.cost_usd,
                "cost_unknown": used.cost_unknown,
            }
            if budgeted or envelope.reserved_total.tokens or envelope.overruns:
                budget = {
                    "ms_used": round(envelope.elapsed_ms(), 3),
                    "active_since": None,
                    "reserved_tokens": envelope.reserved_total.tokens,
                    "reserved_usd": round(envelope.reserved_total.usd, 9),
                    "overruns": list(envelope.overruns),
                }
                totals["attributes"] = {**record.attributes, "budget": budget}
            recorder.update_run(record.run_id, status=status, **totals, **fields)

        with on_loop_only(), expression_budget():
            result = await execution_outcome(execution, record, finish)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result.status

    # -- one function call of a step ----------------------------------------------------------------------------

    async def _call_function(
        self, fn: Function, inputs: Mapping[str, Any], ctx: StepContext, *, review_sink: ReviewSink | None
    ) -> Any:
        assert self._host is not None and self._start is not None
        store = self._host.store
        call = StepCall(
            run_id=ctx.run_id,
            step_id=ctx.step_id,
            function=fn.name,
            inputs=packed(store, dict(inputs), threshold=self._start.payload_threshold),
            attempts=ctx.attempts,
            previous_violations=list(ctx.previous_violations),
            envelopes=snapshots(ctx.envelope),
            payload_threshold=self._start.payload_threshold,
        )
        while True:
            outcome = await self._activity(call, ctx)
            self._account(ctx, outcome)
            if outcome.status == "succeeded":
                return unpacked(store, outcome.output if outcome.output is not None else "null")
            if outcome.status == "failed":
                raise run_error_from_dict(outcome.error or {})
            await self._wait_for_person(outcome, ctx.step_id)
            call.envelopes = snapshots(ctx.envelope)
            call.attempts = ctx.attempts

    async def _activity(self, call: StepCall, ctx: StepContext) -> StepOutcome:
        """Run the step's activity and return its outcome; cancelled meanwhile, cancel it and wait for its end.

        The activity is awaited through a shield. Awaited directly, a cancellation (a time budget out, a race lost, a
        sibling failed) reached Temporal's own wait, which holds it until the activity ends, while anyio re-sends it
        on every loop iteration: the activation never finished, so the activity's end never arrived (a spin). Here
        the step's task takes the cancellation at once, asks Temporal to cancel the activity (the activity learns it
        from its next heartbeat and stops its model call) and waits, shielded, for the activity's last word, so
        what the cancelled call spent is charged and recorded before the step ends, as in process.
        """
        assert self._start is not None
        self._activities += 1
        activity_id = f"{self._activities}:{call.step_id}"
        self._envelopes[activity_id] = ctx.envelope
        self._in_flight += 1
        self._note_status()
        try:
            handle = workflow.start_activity(
                CALL_FUNCTION,
                call,
                result_type=StepOutcome,
                start_to_close_timeout=_STEP_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=self._start.heartbeat_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=200),
                    maximum_attempts=self._start.transport_retries,
                ),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                activity_id=activity_id,
                summary=call.step_id,
            )
            try:
                outcome: StepOutcome = await asyncio.shield(handle)
            except asyncio.CancelledError:
                with anyio.CancelScope(shield=True):
                    handle.cancel()
                    last: StepOutcome | None = None
                    try:
                        last = await handle
                    except (ActivityError, asyncio.CancelledError):
                        pass  # cancelled before it reported (or before it started): nothing it spent came back
                    if last is not None:
                        self._account(ctx, last)
                raise
            return outcome
        finally:
            del self._envelopes[activity_id]
            self._settle_lost(activity_id)
            self._in_flight -= 1
            self._note_status()

    def _account(self, ctx: StepContext, outcome: StepOutcome) -> None:
        """Take what the step's activity reports: its attributes and attempts.

        What its model calls spent was charged here already, by the `settle` update each call sent.
        """
        ctx.attributes.update(outcome.attributes)
        ctx.attempts = max(ctx.attempts, outcome.attempts)

    async def _wait_for_person(self, outcome: StepOutcome, step_id: str) -> None:
        """Wait for the review's answer (a signal) or its deadline (a timer)."""
        review_id = str(outcome.review_id)
        timeout: float | None = None
        if outcome.review_deadline is not None:
            timeout = max(0.001, outcome.review_deadline - workflow.now().timestamp())
        self._waiting[review_id] = step_id
        self._note_status()
        try:
            await workflow.wait_condition(lambda: review_id in self._answered, timeout=timeout)
        except TimeoutError:
            pass  # the activity, called again, finds the review past its deadline and applies `on_timeout`
        finally:
            del self._waiting[review_id]
            self._note_status()

    def _note_status(self) -> None:
        """Record the run paused while it only waits for people, running again once it does more."""
        paused = bool(self._waiting) and self._in_flight == 0
        if paused == self._paused or self._recorder is None or self._start is None:
            return
        self._paused = paused
        self._recorder.update_run(self._start.run_id, status="paused" if paused else "running")
