"""The activity that runs one function call of a step, with the engine's own step semantics.

`call_function` (prompt, model call, parse, validate, ensure, retry with feedback, reserve-then-settle, attempt
records) runs here exactly as in process; the activity only rebuilds what the step needs (its plan, its inputs,
the budget envelopes it draws from) from the run store and the workflow's message, and reports back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from temporalio import activity

from stratum_core.backends._errors import run_error_from_dict
from stratum_core.backends._payloads import packed, unpacked
from stratum_core.backends.temporal._messages import (
    EnvelopeSnapshot,
    ReserveAnswer,
    ReserveRequest,
    SettleRequest,
    StepCall,
    StepOutcome,
)
from stratum_core.engine import Engine
from stratum_core.engine._budget import Envelope, Reservation, Usage
from stratum_core.engine._context import StepContext
from stratum_core.engine._functions import call_function
from stratum_core.engine._human import AwaitingReview
from stratum_core.errors import RunError
from stratum_core.llm._protocol import Price
from stratum_core.plan import Budget
from stratum_core.store import StoreError

__all__ = ["CALL_FUNCTION", "StepActivities"]

CALL_FUNCTION = "stratum.call_function"
RESERVE = "reserve"
SETTLE = "settle"
_T = TypeVar("_T")
HEARTBEAT_EVERY = 1.0
"""Seconds between an activity's heartbeats at most: a cancelled step's activity learns it from the next one (the
worker sends them on at this pace too: `build_worker`'s heartbeat throttle), and stops its model call."""


class WorkflowLedger:
    """Reserves a step's model calls in its workflow's envelopes (the `reserve` update) and settles them there.

    The activity keeps a copy of the envelope chain (for the step's deadline and its own records); the workflow's
    envelopes are the ones that decide, so two steps running at once on two workers cannot both reserve what only
    one fits. A call's settle is sent before the step's next reservation and before the activity reports.
    """

    def __init__(self, envelope: _LedgerEnvelope, workflow_id: str, activity_id: str, attempt: int) -> None:
        self.envelope = envelope
        envelope.ledger = self
        self.handle = activity.client().get_workflow_handle(workflow_id)
        self.prefix = f"{activity_id}/{attempt}"
        self.activity_id = activity_id
        self.calls = 0
        self.keys: dict[int, str] = {}
        self.unsent: list[SettleRequest] = []

    async def reserve(
        self, *, step_id: str, model: str, prompt_tokens: int, wanted_tokens: int, price: Price | None
    ) -> Reservation:
        """The call's reservation as the workflow granted it, mirrored in the local chain; BudgetExceeded if refused."""
        await self.flush()
        envelope = self.envelope
        envelope.check_time(step_id=step_id)
        self.calls += 1
        key = f"{self.prefix}/{self.calls}"
        request = ReserveRequest(
            key=key,
            activity_id=self.activity_id,
            step_id=step_id,
            model=model,
            prompt_tokens=prompt_tokens,
            wanted_tokens=wanted_tokens,
            input_per_token=price.input_per_token if price is not None else None,
            output_per_token=price.output_per_token if price is not None else None,
        )
        answer = await self.handle.execute_update(RESERVE, request, result_type=ReserveAnswer)
        if answer.error is not None:
            raise run_error_from_dict(answer.error)
        reservation = Reservation(envelope, model, answer.prompt_tokens, answer.max_tokens, answer.usd, price)
        envelope.mirror(reservation)
        self.keys[id(reservation)] = key
        return reservation

    def settled(self, reservation: Reservation, tokens_in: int, tokens_out: int, cost_usd: float | None) -> None:
        key = self.keys.pop(id(reservation), None)
        if key is not None:
            self.unsent.append(SettleRequest(key, tokens_in, tokens_out, cost_usd))

    async def flush(self) -> None:
        """Send the settles not sent yet (shielded: a settle the workflow never hears of is charged in full)."""
        with anyio.CancelScope(shield=True):
            while self.unsent:
                await self.handle.execute_update(SETTLE, self.unsent[0])
                self.unsent.pop(0)


class _LedgerEnvelope(Envelope):
    """The innermost envelope of an activity's copy of the chain: settling a call tells the workflow's ledger."""

    ledger: WorkflowLedger | None = None

    def mirror(self, reservation: Reservation) -> None:
        """Hold what the workflow granted in this copy too, so the local settle releases what it holds."""
        current: Envelope | None = self
        while current is not None:
            current.reserved.tokens += reservation.tokens
            current.reserved.usd += reservation.usd
            current.reserved_total.tokens += reservation.tokens
            current.reserved_total.usd += reservation.usd
            current = current.parent

    def settle(
        self, reservation: Reservation, *, tokens_in: int, tokens_out: int, cost_usd: float | None
    ) -> tuple[int, int, float | None]:
        already = reservation.settled
        charged = super().settle(reservation, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost_usd)
        if not already and self.ledger is not None:
            self.ledger.settled(reservation, *charged)
        return charged


def envelope_chain(snapshots: list[EnvelopeSnapshot], *, allow_unpriced: bool) -> _LedgerEnvelope:
    """The innermost envelope of a chain rebuilt from `snapshots` (outermost first), spend and reservations kept."""
    envelope: Envelope | None = None
    for index, snapshot in enumerate(snapshots):
        spent = Usage(snapshot.tokens_in, snapshot.tokens_out, snapshot.cost_usd, snapshot.cost_unknown)
        kind = _LedgerEnvelope if index == len(snapshots) - 1 else Envelope
        envelope = kind(
            Budget.model_validate(snapshot.budget),
            parent=envelope,
            label=snapshot.label,
            spent=spent,
            elapsed_ms=snapshot.elapsed_ms,
            allow_unpriced=allow_unpriced and envelope is None,
        )
        envelope.reserved.tokens = snapshot.reserved_tokens
        envelope.reserved.usd = snapshot.reserved_usd
    if not isinstance(envelope, _LedgerEnvelope):
        return _LedgerEnvelope(None, allow_unpriced=allow_unpriced)
    return envelope


async def _heartbeating(work: Callable[[], Awaitable[_T]]) -> _T:
    """`work()`, heartbeating meanwhile so Temporal sees this worker alive (and delivers a cancellation)."""
    every = activity.info().heartbeat_timeout
    interval = min(every.total_seconds() / 3, HEARTBEAT_EVERY) if every else HEARTBEAT_EVERY
    outcome: list[_T] = []
    failure: list[BaseException] = []
    async with anyio.create_task_group() as group:

        async def beat() -> None:
            while True:
                activity.heartbeat()
                await anyio.sleep(interval)

        group.start_soon(beat)
        try:
            outcome.append(await work())
        except Exception as error:  # raised as itself below, not wrapped in the task group's ExceptionGroup
            failure.append(error)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return outcome[0]


class StepActivities:
    """The activities of a worker, on its engine (store, model client, configuration)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name=CALL_FUNCTION)
    async def call_function(self, call: StepCall) -> StepOutcome:
        """Run one function call of a step and say how it ended (a step's failure is an outcome, not an error).

        Cancelled by its workflow (the step was: a race lost, a time budget out, the run cancelled), the call stops
        its model call as in process (which records the attempt and charges its reservation) and reports what the
        step spent, status "cancelled", so the workflow charges it.
        """
        try:
            return await _heartbeating(lambda: self._call(call))
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is None or not details.cancel_requested:  # the worker stopping, say: Temporal retries it
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return self._spent(call, StepOutcome(status="cancelled"))

    def _spent(self, call: StepCall, outcome: StepOutcome) -> StepOutcome:
        """`outcome` with what the step's recorded attempts used in all (an earlier, lost try's included)."""
        trace = self.engine.store.get_trace(call.run_id)
        attempts = [a for a in (trace.attempts if trace else []) if a.step_id == call.step_id]
        used = _usage(attempts)
        outcome.tokens_in, outcome.tokens_out = used.tokens_in, used.tokens_out
        outcome.cost_usd, outcome.cost_unknown = used.cost_usd, used.cost_unknown
        outcome.attempts = max([outcome.attempts, call.attempts, *(a.number for a in attempts)])
        return outcome

    async def _call(self, call: StepCall) -> StepOutcome:
        store = self.engine.store
        record = store.get_run(call.run_id)
        if record is None:
            raise StoreError(f"no run with id {call.run_id!r} in this worker's store: it must share the server's")
        plan = await self.engine.plan_of(record)
        await self.engine.prepare_models(plan)
        fn = plan.functions[call.function]
        inputs = unpacked(store, call.inputs)
        trace = store.get_trace(call.run_id)
        earlier = [a for a in (trace.attempts if trace else []) if a.step_id == call.step_id]
        envelope = envelope_chain(call.envelopes, allow_unpriced=self.engine.config.allow_unpriced)
        spent_before = _usage(earlier)
        if spent_before.tokens or spent_before.cost_usd:  # an earlier try of this activity (its worker died) spent it
            envelope.charge(
                tokens_in=spent_before.tokens_in, tokens_out=spent_before.tokens_out, cost_usd=spent_before.cost_usd
            )
        info = activity.info()
        ledger = WorkflowLedger(envelope, info.workflow_id or "", info.activity_id, info.attempt)
        ctx = StepContext(
            ledger=ledger.reserve,
            run_id=call.run_id,
            step_id=call.step_id,
            plan=plan,
            envelope=envelope,
            config=self.engine.config,
            store=store,
            llm_factory=self.engine.model_client,
            session_cache=self.engine.session_cache,
            attempts=max([call.attempts, *(a.number for a in earlier)]),
            previous_violations=tuple(call.previous_violations),
        )
        outcome = StepOutcome(status="succeeded")
        try:
            with anyio.CancelScope(deadline=envelope.deadline) as deadline_scope:
                output = await call_function(fn, inputs, ctx, review_sink=None)
            if deadline_scope.cancelled_caught:
                raise envelope.timeout_error(step_id=call.step_id)
            outcome.output = packed(store, output, threshold=call.payload_threshold)
        except AwaitingReview as pause:
            outcome.status = "pending"
            outcome.review_id = pause.request.review_id
            outcome.review_deadline = pause.request.deadline
        except RunError as error:
            if error.step_id is None:
                error.step_id = call.step_id
            outcome.status = "failed"
            outcome.error = error.to_dict()
        await ledger.flush()
        outcome.attributes = dict(ctx.attributes)
        outcome.attempts = ctx.attempts
        self._spent(call, outcome)
        outcome.reserved_tokens = envelope.reserved_total.tokens
        outcome.reserved_usd = envelope.reserved_total.usd
        return outcome


def _usage(attempts: list[Any]) -> Usage:
    from stratum_core.engine._ledger import SpendLedger

    return SpendLedger(attempts).total()
