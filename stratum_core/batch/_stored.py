"""A batch as its store knows it: every item that ran is a run tagged with the batch's id (`batch_tag`).

What a process that did not start the batch (a restarted server, another process on the same store) can say of it:
each item's latest outcome, the summary over them, and how many items are still being advanced somewhere. The items
that never ran have no run; they count as not run (the batch's size is in its tag). What is not in the store (the
batch's budgets, `expect`) is not known here: running the same batch again runs what is not done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from stratum_core.batch._results import BatchSummary, ItemResult, result_of_run, summarize
from stratum_core.batch._runner import stopped_by_a_batch
from stratum_core.store import RunRecord, RunStore
from stratum_core.store._lease import lease_is_live

__all__ = ["StoredBatch", "read_batch"]

_PAGE = 500


@dataclass
class StoredBatch:
    """A batch read from the store: its flow, each item's latest result (by index), and the summary over them.

    `running` counts the items whose run a live process is advancing now (the batch goes on there); `plan_hash`
    and `flow` say what the items ran.
    """

    batch_id: str
    flow: str
    plan_hash: str
    total: int
    results: dict[int, ItemResult] = field(default_factory=dict)
    running: int = 0

    @property
    def done(self) -> bool:
        """Every item succeeded or failed on its own (what a re-run of the batch would skip)."""
        return len(self.results) == self.total and all(result.done for result in self.results.values())

    def summary(self) -> BatchSummary:
        """The summary over the items' results (an item without a run counts as not run)."""
        summary = summarize(self.batch_id, self.total, (self.results[i] for i in sorted(self.results)))
        if not self.done and not self.running:
            summary.stopped = "interrupted"
            summary.stop_reason = (
                f"{self.total - sum(r.done for r in self.results.values())} of {self.total} items are not done; "
                "running the same batch again runs them (the done ones are not run again)"
            )
        return summary


def read_batch(store: RunStore, batch_id: str, *, owner: str | None = None) -> StoredBatch | None:
    """The batch `batch_id` as the store knows it (only `owner`'s runs, when given); None when it has no run."""
    latest: dict[int, RunRecord] = {}
    total = 0
    first: RunRecord | None = None
    for run in _runs_of(store, batch_id, owner):  # newest first: an item's first done run is its latest outcome
        tag = run.attributes.get("batch")
        index = tag.get("index") if isinstance(tag, dict) else None
        if not isinstance(tag, dict) or not isinstance(index, int):
            continue
        size = tag.get("total")
        total = max(total, index + 1, size if isinstance(size, int) else 0)
        first = first or run
        kept = latest.get(index)
        if kept is None or (not _done(kept) and _done(run)):
            latest[index] = run
    if first is None:
        return None
    now = time.time()
    stored = StoredBatch(batch_id=batch_id, flow=first.flow, plan_hash=first.plan_hash, total=total)
    for index, run in latest.items():
        tag = run.attributes["batch"]
        key = str(tag.get("key", "")) if isinstance(tag, dict) else ""
        result = result_of_run(index, key, run)
        if run.status == "failed" and stopped_by_a_batch(run.error):  # the batch's budget ran out first
            result = replace(result, status="not_run")
        stored.results[index] = result
        if run.status == "running" and lease_is_live(run.lease_holder, run.lease_expires, now=now):
            stored.running += 1
    return stored


def _done(run: RunRecord) -> bool:
    return run.status == "succeeded" or (run.status == "failed" and not stopped_by_a_batch(run.error))


def _runs_of(store: RunStore, batch_id: str, owner: str | None) -> Iterator[RunRecord]:
    cursor: str | None = None
    while True:
        page = store.list_runs(batch=batch_id, owner=owner, limit=_PAGE, cursor=cursor)
        yield from page.runs
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
