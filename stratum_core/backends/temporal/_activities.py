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

from stratum_core.backends._payloads import packed, unpacked
from stratum_core.backends.temporal._messages import EnvelopeSnapshot, StepCall, StepOutcome
from stratum_core.engine import Engine
from stratum_core.engine._budget import Envelope, Usage
from stratum_core.engine._context import StepContext
from stratum_core.engine._functions import call_function
from stratum_core.engine._human import AwaitingReview
from stratum_core.errors import RunError
from stratum_core.plan import Budget
from stratum_core.store import StoreError

__all__ = ["CALL_FUNCTION", "StepActivities"]

CALL_FUNCTION = "stratum.call_function"
_T = TypeVar("_T")
HEARTBEAT_EVERY = 1.0
"""Seconds between an activity's heartbeats at most: a cancelled step's activity learns it from the next one (the
worker sends them on at this pace too: `build_worker`'s heartbeat throttle), and stops its model call."""


def envelope_chain(snapshots: list[EnvelopeSnapshot], *, allow_unpriced: bool) -> Envelope:
    """The innermost envelope of a chain rebuilt from `snapshots` (outermost first), spend and reservations kept."""
    envelope: Envelope | None = None
    for snapshot in snapshots:
        spent = Usage(snapshot.tokens_in, snapshot.tokens_out, snapshot.cost_usd, snapshot.cost_unknown)
        envelope = Envelope(
            Budget.model_validate(snapshot.budget),
            parent=envelope,
            label=snapshot.label,
            spent=spent,
            elapsed_ms=snapshot.elapsed_ms,
            allow_unpriced=allow_unpriced and envelope is None,
        )
        envelope.reserved.tokens = snapshot.reserved_tokens
        envelope.reserved.usd = snapshot.reserved_usd
    return envelope if envelope is not None else Envelope(None, allow_unpriced=allow_unpriced)


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
        ctx = StepContext(
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
        outcome.attributes = dict(ctx.attributes)
        outcome.attempts = ctx.attempts
        self._spent(call, outcome)
        outcome.reserved_tokens = envelope.reserved_total.tokens
        outcome.reserved_usd = envelope.reserved_total.usd
        return outcome


def _usage(attempts: list[Any]) -> Usage:
    from stratum_core.engine._ledger import SpendLedger

    return SpendLedger(attempts).total()
