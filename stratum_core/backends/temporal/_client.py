"""The engine whose runs execute as Temporal workflows: it records each run, starts its workflow, and follows it.

A run's record (plan text, inputs) is written to the shared store first; the workflow gets only the run id. The
engine then follows the run through the store: until it ends, or pauses for a person. With a review sink (an MCP
client's elicitation, the console) it asks the person, records the answer and signals the workflow; without one
the run is returned paused, and `resume` (`stratum_resume`, `stratum review`, `stratum resume`) signals the
workflow once the answers are in the store. Cancelling the calling task cancels the workflow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from stratum_core.backends._errors import run_error_from_dict
from stratum_core.backends._settings import TemporalSettings
from stratum_core.backends.temporal._messages import RunStart
from stratum_core.backends.temporal._workflow import REVIEW_ANSWERED, WORKFLOW_NAME
from stratum_core.engine import Engine, EngineConfig, ReviewRequest, ReviewSink, RunObserver, RunResult
from stratum_core.engine._budget import Envelope
from stratum_core.engine._engine import ExecutionFactory
from stratum_core.engine._observers import FanOut
from stratum_core.engine._scheduler import FlowExecution
from stratum_core.llm import LLMClient
from stratum_core.plan import Budget, Plan
from stratum_core.store import ReviewRecord, RunRecord, RunStore, StoreError

__all__ = ["TemporalEngine", "connect", "settings_of", "workflow_id"]

_ENDED = ("succeeded", "failed", "cancelled")
_CANCEL_WAIT = 30.0


async def connect(settings: TemporalSettings) -> Client:
    """A client of the Temporal cluster `settings` names."""
    return await Client.connect(settings.address, namespace=settings.namespace)


def workflow_id(run_id: str) -> str:
    """The id of the workflow that executes run `run_id`."""
    return f"stratum-run-{run_id}"


def settings_of(record: RunRecord) -> TemporalSettings | None:
    """The Temporal settings a run was started with (None: it did not run on Temporal)."""
    backend = record.attributes.get("backend")
    if not isinstance(backend, Mapping) or backend.get("name") != "temporal":
        return None
    return TemporalSettings(
        address=str(backend.get("address")),
        namespace=str(backend.get("namespace")),
        task_queue=str(backend.get("task_queue")),
    )


def review_request(review: ReviewRecord) -> ReviewRequest:
    """What a pending review asks, as a sink is given it."""
    request = review.request
    options = request.get("options")
    context = request.get("context")
    schema = request.get("schema")
    timeout = request.get("timeout")
    return ReviewRequest(
        review_id=review.review_id,
        run_id=review.run_id,
        step_id=review.step_id,
        question=review.question,
        schema=schema if isinstance(schema, dict) else {},
        options=tuple(options) if isinstance(options, list) else None,
        context=context if isinstance(context, dict) else {},
        timeout=float(timeout) if isinstance(timeout, int | float) else None,
        deadline=review.deadline,
        requires_person=review.needs_person,
    )


class TemporalEngine(Engine):
    """An Engine whose runs of plan flows execute on Temporal (`stratum worker` processes run them).

    The Python library's flows (`@flow` functions, which pass their own `execution`) run in this process as before:
    their code is the caller's, not a plan a worker can load.

    Args:
        settings: the cluster, namespace and task queue.
        client: a connected Temporal client (default: one connected on first use).
        poll_interval: the first interval at which a followed run's record is read (it grows to half a second).
        The others are Engine's.
    """

    def __init__(
        self,
        *,
        settings: TemporalSettings,
        store: RunStore | None = None,
        config: EngineConfig | None = None,
        llm: LLMClient | None = None,
        review_sink: ReviewSink | None = None,
        observers: Sequence[RunObserver] = (),
        client: Client | None = None,
        poll_interval: float = 0.02,
    ) -> None:
        super().__init__(store=store, config=config, llm=llm, review_sink=review_sink, observers=observers)
        self.settings = settings
        self._client = client
        self._poll_interval = poll_interval

    async def client(self) -> Client:
        """The Temporal client (connected on first use)."""
        if self._client is None:
            self._client = await connect(self.settings)
        return self._client

    async def _handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return (await self.client()).get_workflow_handle(workflow_id(run_id))

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
        """Start `flow` as a workflow and follow it to its end or a pause (see `Engine.run` for the outcomes).

        `budget_parent` (a batch's envelope) lives in this process, so a run given one runs here, as a library
        flow's does.
        """
        if execution is not FlowExecution or budget_parent is not None:  # its budget or Python code lives here
            return await super().run(
                plan,
                flow,
                inputs,
                observer=observer,
                review_sink=review_sink,
                run_id=run_id,
                agent=agent,
                llm=llm,
                execution=execution,
                owner=owner,
                budget_parent=budget_parent,
                attributes=attributes,
            )
        record = await self.new_run_record(plan, flow, inputs, run_id=run_id, owner=owner, attributes=attributes)
        backend = {
            "name": "temporal",
            "address": self.settings.address,
            "namespace": self.settings.namespace,
            "task_queue": self.settings.task_queue,
            "workflow_id": workflow_id(record.run_id),
        }
        attributes = {**record.attributes, "backend": backend}
        record = record.model_copy(update={"lease_holder": None, "lease_expires": None, "attributes": attributes})
        self.store.create_run(record)
        start = RunStart(
            run_id=record.run_id,
            heartbeat_seconds=self.settings.heartbeat_seconds,
            transport_retries=self.settings.transport_retries,
            payload_threshold=self.settings.payload_threshold,
        )
        try:
            client = await self.client()
            await client.start_workflow(
                WORKFLOW_NAME, start, id=workflow_id(record.run_id), task_queue=self.settings.task_queue
            )
        except (RPCError, RuntimeError, OSError) as error:
            from stratum_core.errors import RunError

            failure = RunError(f"the run could not be started on Temporal ({self.settings.address}): {error}")
            failure.run_id = record.run_id
            self.store.update_run(record.run_id, status="failed", error=failure.to_dict(), finished_at=time.time())
            return RunResult(run_id=record.run_id, status="failed", error=failure)
        return await self._follow(record.run_id, review_sink or self.review_sink, observer)

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
        """Tell a run's workflow which of its reviews have answers, and follow it to its end or next pause.

        A run that did not run on Temporal is resumed in this process, as `Engine.resume` does.
        """
        record = self.store.get_run(run_id)
        if record is None or settings_of(record) is None:
            return await super().resume(
                run_id, observer=observer, review_sink=review_sink, agent=agent, llm=llm, budget=budget
            )
        if budget is not None:
            raise StoreError(f"run {run_id} runs on Temporal: its budget cannot be raised by a resume")
        if record.status not in ("paused", "running"):
            raise StoreError(f"run {run_id} is {record.status}; only paused or interrupted runs can be resumed")
        await self._signal_answers(run_id)
        return await self._follow(run_id, review_sink or self.review_sink, observer)

    async def cancel(self, run_id: str) -> None:
        """Cancel the run's workflow and wait (a while) for it to record the run cancelled."""
        await (await self._handle(run_id)).cancel()
        with anyio.move_on_after(_CANCEL_WAIT):
            while (record := self.store.get_run(run_id)) is not None and record.status not in _ENDED:
                await anyio.sleep(0.05)

    def interrupted_runs(self) -> list[RunRecord]:
        """Runs on Temporal are never interrupted (their workflows go on); others as `Engine.interrupted_runs`."""
        return [run for run in super().interrupted_runs() if settings_of(run) is None]

    async def _signal_answers(self, run_id: str) -> None:
        handle = await self._handle(run_id)
        for review in self.store.list_reviews(status=None, run_id=run_id):
            if review.status != "pending":
                await handle.signal(REVIEW_ANSWERED, review.review_id)

    async def _follow(self, run_id: str, sink: ReviewSink | None, observer: RunObserver | None) -> RunResult:
        """Read the run's record until it ends, or waits for a person (asked through `sink`, when there is one)."""
        delay = self._poll_interval
        try:
            while True:
                record = self.store.get_run(run_id)
                if record is None:
                    raise StoreError(f"run {run_id} vanished from the store")
                if record.status in _ENDED:
                    observers = FanOut([*self.observers, *([observer] if observer is not None else [])])
                    with anyio.CancelScope(shield=True):
                        await observers.run_finished(run_id, record.status)
                    return _result(record)
                pending = self.store.list_reviews(status="pending", run_id=run_id) if record.status == "paused" else []
                if pending:  # paused, and not just answered (the workflow may not have seen the answer yet)
                    if sink is None or not await self._ask(sink, pending):
                        return RunResult(
                            run_id=run_id, status="paused", pending=tuple(review_request(r) for r in pending)
                        )
                    delay = self._poll_interval
                    continue
                await anyio.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        except anyio.get_cancelled_exc_class():
            if self._interrupting.pop(run_id, None) is None:  # interrupted: the workflow goes on without us
                with anyio.CancelScope(shield=True):
                    await self.cancel(run_id)
            raise

    async def _ask(self, sink: ReviewSink, reviews: list[ReviewRecord]) -> bool:
        """Ask each review of `reviews` through `sink`; record and signal the answers. False: one has no answer."""
        handle = await self._handle(reviews[0].run_id)
        for review in reviews:
            request = review_request(review)
            wait = review.deadline - time.time() if review.deadline is not None else None
            answer = None
            with anyio.move_on_after(wait):
                answer = await sink.ask(request)
            if answer is None:
                return False
            try:
                self.store.answer_review(
                    review.review_id,
                    action=answer.action,
                    value=dict(answer.value) if answer.value is not None else None,
                    reviewer=answer.reviewer,
                    rationale=answer.rationale,
                    answered_by=answer.answered_by,
                    channel=answer.channel,
                )
            except StoreError:  # answered (or timed out) meanwhile elsewhere: the workflow reads what won
                pass
            await handle.signal(REVIEW_ANSWERED, review.review_id)
        return True


def _result(record: RunRecord) -> RunResult:
    error = run_error_from_dict(record.error) if record.error else None
    if error is not None:
        error.run_id = record.run_id
    return RunResult(run_id=record.run_id, status=record.status, output=record.output, error=error)
