"""What the engine needs from a run store, as a protocol every store (SQLite, PostgreSQL, memory) implements."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import JsonValue

from stratum_core.errors import StratumError
from stratum_core.store._records import (
    AnsweredBy,
    AttemptRecord,
    ReviewAction,
    ReviewRecord,
    ReviewStatus,
    RunPage,
    RunRecord,
    RunStatus,
    StepRecord,
    Trace,
)

__all__ = ["RunBusy", "RunStore", "StoreError"]


class StoreError(StratumError):
    """The run store failed or was misused: unknown record, a review answered twice, a database too new, ...

    Attributes:
        path: the store's file, when it has one.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class RunBusy(StoreError):
    """Another process (or engine) holds the run's lease: the run is being advanced elsewhere.

    Attributes:
        run_id: the run.
        holder: who holds the lease (`host:pid:nonce`).
        expires_at: when the lease expires unless its holder renews it (epoch seconds).
    """

    def __init__(self, run_id: str, *, holder: str | None, expires_at: float | None, lost: bool = False) -> None:
        if lost:
            message = f"run {run_id} was taken over elsewhere while this process advanced it (its lease expired)"
        else:
            message = (
                f"run {run_id} is being advanced elsewhere (by {holder}); wait for it to pause or end, "
                "or resume it once that process has stopped"
            )
        super().__init__(message)
        self.run_id = run_id
        self.holder = holder
        self.expires_at = expires_at


@runtime_checkable
class RunStore(Protocol):
    """Durable record of runs, steps, attempts, reviews and cached results.

    The methods are synchronous on purpose: a SQLite write on a local file takes well under a millisecond, so the
    engine calls them straight from the event loop; a thread hop per call would cost more than the call itself (a
    PostgreSQL call costs one round trip to its server: keep that server near the processes that use it).
    Writes are durable when the method returns: a process killed right after loses nothing already written.
    """

    def create_run(self, record: RunRecord) -> None:
        """Record a new run; a `run_id` already stored is a StoreError."""
        ...

    def acquire_lease(
        self, run_id: str, holder: str, *, ttl: float, statuses: tuple[RunStatus, ...] = ("paused", "running")
    ) -> RunRecord:
        """Take the run's lease for `holder` for `ttl` seconds, atomically, and return the run.

        The lease is taken only if nobody else holds a live one (`lease_is_live`) and the run's status is one of
        `statuses`: else RunBusy (held elsewhere) or StoreError (unknown run, or a status that cannot advance).
        Taking a lease one already holds renews it.
        """
        ...

    def renew_lease(self, run_id: str, holder: str, *, ttl: float) -> bool:
        """Extend `holder`'s lease by `ttl` seconds from now; False when it no longer holds it."""
        ...

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give up `holder`'s lease (nothing happens if it does not hold it)."""
        ...

    def update_run(self, run_id: str, /, *, release_lease_of: str | None = None, **fields: Any) -> RunRecord:
        """Change some fields of a run and return the result; `updated_at` moves to now unless given.

        `release_lease_of` also gives up that holder's lease in the same write (as `release_lease`: nothing happens
        to a lease it does not hold), so a run's end and its release are one transaction.
        An unknown run, field or invalid value is a StoreError.
        """
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None if there is no such run."""
        ...

    def list_runs(
        self,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
        batch: str | None = None,
    ) -> RunPage:
        """Runs newest first, filtered; `since` is inclusive, `until` exclusive (epoch seconds on `created_at`).

        `owner` keeps the runs started by that identity only; `batch` the runs of that batch
        (`attributes["batch"]["id"]`).

        The cursor marks the last run of the previous page, so runs created between two pages never shift them.
        """
        ...

    def batch_item_runs(self, keys: Collection[str]) -> list[RunRecord]:
        """The runs of batch items with these keys (`attributes["batch"]["key"]`: plan and input hash), oldest first."""
        ...

    def upsert_step(self, record: StepRecord) -> None:
        """Record a step, replacing any record with the same (run_id, step_id); the run must exist."""
        ...

    def get_steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps in the order they were first recorded."""
        ...

    def add_attempt(self, record: AttemptRecord) -> None:
        """Record one attempt; the run must exist and (run_id, step_id, number) must be new."""
        ...

    def get_trace(self, run_id: str) -> Trace | None:
        """The run with its steps, attempts and reviews, read as one snapshot; None if there is no such run."""
        ...

    def create_review(self, record: ReviewRecord) -> None:
        """Record a decision asked of a person; the run must exist."""
        ...

    def answer_review(
        self,
        review_id: str,
        *,
        action: ReviewAction,
        value: JsonValue,
        reviewer: str | None,
        rationale: str | None,
        answered_by: AnsweredBy = "person",
        channel: str | None = None,
    ) -> ReviewRecord:
        """Record an answer, atomically: exactly one answer wins. Unknown or not pending: StoreError.

        `answered_by` is who truly answered; a review that needs a person (`ReviewRecord.needs_person`) refuses
        `answered_by="agent"` with a StoreError.
        """
        ...

    def close_review(self, review_id: str, *, status: Literal["timed_out", "cancelled"]) -> ReviewRecord:
        """Close a review nobody answered (timeout, cancelled run), atomically against a racing answer.

        Unknown or not pending: StoreError.
        """
        ...

    def get_review(self, review_id: str) -> ReviewRecord | None:
        """The review, or None if there is no such review."""
        ...

    def list_reviews(self, *, status: ReviewStatus | None = "pending", run_id: str | None = None) -> list[ReviewRecord]:
        """Reviews oldest first, by status (None: any) and run."""
        ...

    def cache_get(self, key: str) -> JsonValue | None:
        """The cached value under `key`, or None on a miss."""
        ...

    def cache_put(self, key: str, value: JsonValue, *, contract_hash: str) -> None:
        """Cache `value` under `key` (replacing any), noting the contract it was checked against."""
        ...

    def close(self) -> None:
        """Release the store; later calls raise StoreError. Closing twice is allowed."""
        ...
