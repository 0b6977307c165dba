"""A batch: one run of a flow per item, a bounded number at a time, under a per-item and a whole-batch budget.

Budgets are envelopes, reserved the same way as a flow's: the batch's envelope is the parent of each item's, which
is the parent of the item's flow envelope, so every model call reserves its worst case in all three before it is
made, and items running side by side cannot overspend the batch together. A call that cannot fit in the batch's
budget is refused (no request is made); the batch then starts no new item, and the items it could not run are
`not_run` (running the batch again, with a larger budget, runs them).

Re-running the same batch skips the items already done: an item's run is found by its key (plan hash and input
hash) in the store, and a run that succeeded, or failed on its own (not cancelled, not stopped by the batch's
budget), is read back instead of run again. What earlier invocations of the batch spent counts against its budget.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from stratum_core.batch._expect import Expectation
from stratum_core.batch._items import BatchItem, batch_id_of
from stratum_core.batch._results import BatchSummary, ItemResult, result_of_run, summarize
from stratum_core.engine import Engine
from stratum_core.engine._budget import Envelope, Usage
from stratum_core.plan import Budget, Plan
from stratum_core.store import RunRecord, RunStore

__all__ = ["Batch", "BatchProgress", "ItemRunner", "LocalItemRunner", "batch_tag"]

logger = logging.getLogger("stratum.batch")

ResultSink = Callable[[ItemResult], Awaitable[None] | None]
_PAGE = 500


@dataclass
class BatchProgress:
    """Where a batch is: items done (of `total`), failures, cost so far, and an estimate of the time left."""

    total: int
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    not_run: int = 0
    reused: int = 0
    running: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, result: ItemResult) -> None:
        """Count one item's result."""
        self.reused += result.reused
        self.cost_usd += result.cost_usd
        self.tokens += result.tokens
        if result.status == "succeeded":
            self.succeeded += 1
        elif result.status == "failed":
            self.failed += 1
        elif result.status == "cancelled":
            self.cancelled += 1
        else:
            self.not_run += 1
        self.done += result.done

    def eta_s(self) -> float | None:
        """Seconds until every item is done at the pace of this invocation (None before the first item ends)."""
        ran = self.done - self.reused
        if ran <= 0:
            return None
        pace = (time.monotonic() - self.started) / ran
        return max(0.0, (self.total - self.done - self.not_run - self.cancelled) * pace)

    def to_json(self) -> dict[str, Any]:
        """The progress as JSON (what the MCP tool reports)."""
        eta = self.eta_s()
        return {
            "total": self.total,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "not_run": self.not_run,
            "reused": self.reused,
            "running": self.running,
            "cost_usd": round(self.cost_usd, 9),
            "tokens": self.tokens,
            "eta_s": None if eta is None else round(eta, 1),
        }


def batch_tag(batch_id: str, item: BatchItem, *, total: int | None = None) -> dict[str, Any]:
    """The attributes that make a run an item of a batch (`stratum runs --batch ID` finds them).

    `total`, the batch's number of items, lets a process that did not start the batch tell how much of it is done.
    """
    tag: dict[str, Any] = {"id": batch_id, "key": item.key, "index": item.index}
    if total is not None:
        tag["total"] = total
    return {"batch": tag}


class ItemRunner(Protocol):
    """Runs one item of a batch and returns its run record (already in the batch's store), or raises ValueError."""

    async def __call__(self, batch: Batch, item: BatchItem, run_id: str, envelope: Envelope) -> RunRecord:
        """Run `item` as run `run_id`, drawing on the batch's `envelope`."""
        ...


class LocalItemRunner:
    """Runs items in this process, on the batch's engine (the default)."""

    async def __call__(self, batch: Batch, item: BatchItem, run_id: str, envelope: Envelope) -> RunRecord:
        """Run `item` with an item envelope under the batch's, recorded in the engine's store."""
        engine = batch.engine
        own = Envelope(batch.item_budget, parent=envelope, label=f"item {item.index}", own_overruns=True)
        await engine.run(
            batch.plan,
            batch.flow,
            item.input,
            run_id=run_id,
            budget_parent=own,
            attributes=batch_tag(batch.id, item, total=len(batch.items)),
            owner=batch.owner,
        )
        record = engine.store.get_run(run_id)
        assert record is not None
        return record

    async def start(self, batch: Batch) -> None:
        """Get the engine's model client ready before the batch's clock starts."""
        await batch.engine.prepare(batch.plan)

    async def aclose(self) -> None:
        """Nothing to release."""


class Batch:
    """A batch of runs of one flow of a plan, one per item.

    Args:
        engine: runs the items (and its store records them).
        plan, flow: what each item runs.
        items: the batch's items (see `read_items`).
        batch_id: the batch's id (default: from the plan, the flow and the items' keys).
        concurrency: items running at a time.
        item_budget: each item's envelope (inside the flow's own budget, which still applies).
        batch_budget: the whole batch's envelope.
        expect: how to judge an answer (`--expect`), for the accuracy figure.
        retry_failed: run again the items whose earlier run failed (by default they are done).
        runner: where items run (default: in this process).
        owner: who starts the batch (an MCP server's caller): its runs are recorded as that identity's, and only
            its own earlier runs are read back.
    """

    def __init__(
        self,
        engine: Engine,
        plan: Plan,
        flow: str,
        items: Sequence[BatchItem],
        *,
        batch_id: str | None = None,
        concurrency: int = 4,
        item_budget: Budget | None = None,
        batch_budget: Budget | None = None,
        expect: Expectation | None = None,
        retry_failed: bool = False,
        runner: ItemRunner | None = None,
        owner: str | None = None,
    ) -> None:
        if flow not in plan.flows:
            raise ValueError(f"unknown flow {flow!r} (flows: {', '.join(plan.flows) or 'none'})")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.engine = engine
        self.plan = plan
        self.flow = flow
        self.items = list(items)
        self.owner = owner
        self.id = batch_id or batch_id_of(plan, flow, (item.key for item in self.items), owner=owner)
        self.concurrency = concurrency
        self.item_budget = item_budget
        self.batch_budget = batch_budget
        self.expect = expect
        self.retry_failed = retry_failed
        self.runner: ItemRunner = runner if runner is not None else LocalItemRunner()
        self.progress = BatchProgress(total=len(self.items))
        self.results: dict[int, ItemResult] = {}
        self.stopped: str | None = None
        self.stop_reason: str | None = None
        self.envelope: Envelope | None = None

    @property
    def store(self) -> RunStore:
        """The store the batch's runs are recorded in."""
        return self.engine.store

    @property
    def label(self) -> str:
        """How budget errors name the batch's envelope."""
        return f"batch {self.id}"

    def summary(self, *, elapsed_s: float = 0.0) -> BatchSummary:
        """The summary of what is done so far (every item without a result counts as not run)."""
        summary = summarize(self.id, len(self.items), (self.results[i] for i in sorted(self.results)))
        summary.stopped = self.stopped
        summary.stop_reason = self.stop_reason
        summary.elapsed_s = elapsed_s
        return summary

    async def run(self, on_result: ResultSink | None = None) -> BatchSummary:
        """Run the items not done yet; `on_result` gets each item's result (done earlier ones first).

        Cancelling the calling task cancels the items in flight: their runs are recorded as cancelled, and each is
        passed to `on_result` as such before the cancellation goes on.
        """
        start = getattr(self.runner, "start", None)
        if start is not None:  # the model client (or Ray's workers) made ready before the batch's clock
            await start(self)
        started = time.monotonic()
        self.progress = BatchProgress(total=len(self.items))
        self.results = {}
        self.stopped = self.stop_reason = None

        async def deliver(result: ItemResult) -> None:
            if self.expect is not None and result.status in ("succeeded", "failed") and result.correct is None:
                item = by_index[result.index]
                verdict = self.expect.judge(item.line, result.output) if result.status == "succeeded" else None
                if result.status == "failed" and (self.expect.field is None or self.expect.field in item.line):
                    verdict = False  # a failure is a wrong answer
                result = _with(result, correct=verdict)
            self.results[result.index] = result
            self.progress.add(result)
            if on_result is not None:
                maybe = on_result(result)
                if maybe is not None:
                    await maybe

        by_index = {item.index: item for item in self.items}
        earlier = self._earlier_runs()
        pending: list[BatchItem] = []
        for item in self.items:
            run = earlier.get(item.key)
            if run is not None:
                await deliver(result_of_run(item.index, item.key, run, reused=True))
            else:
                pending.append(item)
        self.envelope = Envelope(
            self.batch_budget,
            label=self.label,
            spent=self._spent_before(),
            allow_unpriced=self.engine.config.allow_unpriced,
        )
        queue = iter(pending)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(min(self.concurrency, len(pending))):
                    tg.start_soon(self._worker, queue, deliver)
        finally:
            closer = getattr(self.runner, "aclose", None)
            if closer is not None:
                with anyio.CancelScope(shield=True):
                    await closer()
        if self.stopped is None and self.progress.not_run:
            self.stopped = "budget"
        return self.summary(elapsed_s=time.monotonic() - started)

    async def _worker(self, queue: Any, deliver: Callable[[ItemResult], Awaitable[None]]) -> None:
        assert self.envelope is not None
        for item in queue:
            if self.stopped is None:
                self._check_batch_budget()
            if self.stopped is not None:
                await deliver(ItemResult(index=item.index, key=item.key, status="not_run"))
                continue
            await deliver(await self._run_one(item, deliver))

    def _check_batch_budget(self) -> None:
        """Stop the batch (no new item starts) when a dimension of its budget is spent."""
        envelope = self.envelope
        assert envelope is not None
        reason = None
        if envelope.remaining_ms() <= 0:
            reason = f"the batch's time budget of {envelope.budget.ms} ms is spent"
        elif envelope.remaining_usd() <= 0:
            reason = f"the batch's cost budget of ${envelope.budget.usd:g} is spent"
        elif envelope.remaining_tokens() <= 0:
            reason = f"the batch's token budget of {envelope.budget.tokens} is spent"
        if reason is not None:
            self._stop("budget", reason)

    def _stop(self, why: str, reason: str) -> None:
        if self.stopped is None:
            self.stopped, self.stop_reason = why, reason
            logger.info("batch %s stops: %s", self.id, reason)

    async def _run_one(self, item: BatchItem, deliver: Callable[[ItemResult], Awaitable[None]]) -> ItemResult:
        assert self.envelope is not None
        if item.problem is not None:
            error = {"type": "InvalidInput", "message": item.problem, "step_id": None}
            return ItemResult(index=item.index, key=item.key, status="failed", error=error)
        run_id = uuid.uuid4().hex
        self.progress.running += 1
        try:
            record = await self.runner(self, item, run_id, self.envelope)
        except ValueError as e:  # the item's input does not match the flow's
            error = {"type": "InvalidInput", "message": str(e), "step_id": None}
            return ItemResult(index=item.index, key=item.key, status="failed", error=error)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):  # a run that ended as the cancellation came is delivered as it ended
                record_now = self.store.get_run(run_id)
                if record_now is not None:
                    result = result_of_run(item.index, item.key, record_now)
                    await deliver(result if result.done else _with(result, status="cancelled"))
            raise
        finally:
            self.progress.running -= 1
        result = result_of_run(item.index, item.key, record)
        if record.status == "failed" and self._stopped_by_batch(record.error):
            self._stop("budget", str((record.error or {}).get("message") or "the batch's budget ran out"))
            return _with(result, status="not_run")
        return result

    def _stopped_by_batch(self, error: Mapping[str, Any] | None) -> bool:
        return bool(error) and error.get("type") == "BudgetExceeded" and error.get("budget") == self.label  # type: ignore[union-attr]

    def _earlier_runs(self) -> dict[str, RunRecord]:
        """The latest done run of each item key, from earlier invocations (of this batch or any with the same items)."""
        keys = [item.key for item in self.items]
        done: dict[str, RunRecord] = {}
        for run in self.store.batch_item_runs(keys):  # oldest first: a later done run replaces an earlier one
            tag = run.attributes.get("batch")
            key = tag.get("key") if isinstance(tag, dict) else None
            if not isinstance(key, str) or run.flow != self.flow or run.plan_hash != self.plan.text_hash:
                continue
            if self.owner is not None and run.owner != self.owner:
                continue
            if run.status == "succeeded" or (
                run.status == "failed" and not self.retry_failed and not stopped_by_a_batch(run.error)
            ):
                done[key] = run
        return done

    def _spent_before(self) -> Usage:
        """What earlier invocations of this batch spent (every run tagged with its id)."""
        usage = Usage()
        cursor: str | None = None
        while True:
            page = self.store.list_runs(batch=self.id, limit=_PAGE, cursor=cursor, owner=self.owner)
            for run in page.runs:
                usage.tokens_in += run.tokens_in
                usage.tokens_out += run.tokens_out
                usage.cost_usd += run.cost_usd
                usage.cost_unknown = usage.cost_unknown or run.cost_unknown
            if page.next_cursor is None:
                return usage
            cursor = page.next_cursor


def stopped_by_a_batch(error: Mapping[str, Any] | None) -> bool:
    budget = (error or {}).get("budget")
    return (error or {}).get("type") == "BudgetExceeded" and isinstance(budget, str) and budget.startswith("batch ")


def _with(result: ItemResult, **changes: Any) -> ItemResult:
    from dataclasses import replace

    return replace(result, **changes)
