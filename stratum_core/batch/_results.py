"""What a batch gives back: one ItemResult per item, and a BatchSummary over them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from stratum_core.store import RunRecord

__all__ = ["BatchSummary", "ItemResult", "ItemStatus", "result_of_run", "summarize"]

ItemStatus: TypeAlias = Literal["succeeded", "failed", "cancelled", "paused", "not_run"]
"""`paused`: the run waits for a person (answer it, then `stratum resume`); `not_run`: the batch stopped (its budget
ran out) before the item could run. Running the batch again runs the items cancelled, paused or not run."""


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item: its run, and whether the run is done (kept; not run again when the batch is re-run).

    `reused` marks an item done by an earlier invocation (its run is read back from the store, not run again).
    `correct` is the `--expect` verdict (None without one, or when the item did not succeed).
    """

    index: int
    key: str
    status: ItemStatus
    run_id: str | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    correct: bool | None = None
    reused: bool = False

    @property
    def done(self) -> bool:
        """Succeeded or failed on its own: what a re-run of the batch skips."""
        return self.status in ("succeeded", "failed")

    def to_json(self) -> dict[str, Any]:
        """The line written to the results file."""
        line: dict[str, Any] = {
            "index": self.index,
            "key": self.key,
            "status": self.status,
            "run_id": self.run_id,
            "output": self.output,
            "error": self.error,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 9),
        }
        if self.correct is not None:
            line["correct"] = self.correct
        return line


def result_of_run(index: int, key: str, run: RunRecord, *, reused: bool = False) -> ItemResult:
    """An item's result read from its run record."""
    status: ItemStatus = "cancelled"
    if run.status in ("succeeded", "failed", "paused"):
        status = run.status
    duration = run.duration_ms
    if duration is None and run.finished_at is not None:
        duration = (run.finished_at - run.created_at) * 1000
    return ItemResult(
        index=index,
        key=key,
        status=status,
        run_id=run.run_id,
        output=run.output if run.status == "succeeded" else None,
        error=dict(run.error) if run.error and status != "succeeded" else None,
        duration_ms=duration,
        tokens=run.tokens_in + run.tokens_out,
        cost_usd=run.cost_usd,
        reused=reused,
    )


@dataclass
class BatchSummary:
    """Counts and figures over a batch's items (those reused from earlier invocations included).

    `failures` counts failed items by error type; `accuracy` is correct / judged (None when nothing was judged).
    `stopped` says why the batch ended before every item was done (`budget`, `interrupted`), None when it finished.
    """

    batch_id: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    paused: int = 0
    not_run: int = 0
    reused: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    judged: int = 0
    correct: int = 0
    stopped: str | None = None
    stop_reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def accuracy(self) -> float | None:
        """Correct answers over the items judged (None when none was)."""
        return self.correct / self.judged if self.judged else None

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON (`--summary FILE`)."""
        return {
            "batch_id": self.batch_id,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failures": dict(sorted(self.failures.items())),
            "cancelled": self.cancelled,
            "paused": self.paused,
            "not_run": self.not_run,
            "reused": self.reused,
            "p50_ms": _round(self.p50_ms),
            "p95_ms": _round(self.p95_ms),
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 9),
            "judged": self.judged,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def summarize(batch_id: str, total: int, results: Iterable[ItemResult]) -> BatchSummary:
    """The summary of `results` (one per item at most) for a batch of `total` items; items without one are not run."""
    summary = BatchSummary(batch_id=batch_id, total=total)
    failures: Counter[str] = Counter()
    durations: list[float] = []
    seen = 0
    for result in results:
        seen += 1
        summary.reused += result.reused
        summary.tokens += result.tokens
        summary.cost_usd += result.cost_usd
        if result.status == "succeeded":
            summary.succeeded += 1
        elif result.status == "failed":
            summary.failed += 1
            failures[str((result.error or {}).get("type") or "Error")] += 1
        elif result.status == "cancelled":
            summary.cancelled += 1
        elif result.status == "paused":
            summary.paused += 1
        else:
            summary.not_run += 1
        if result.done and result.duration_ms is not None:
            durations.append(result.duration_ms)
        if result.correct is not None:
            summary.judged += 1
            summary.correct += result.correct
    summary.not_run += max(0, total - seen)
    summary.failures = dict(failures)
    summary.p50_ms = _percentile(durations, 0.50)
    summary.p95_ms = _percentile(durations, 0.95)
    return summary


def _percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
