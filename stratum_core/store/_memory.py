"""A run store in plain dicts, for tests: the same behaviour as the SQLite store, gone with the process.

Records are kept as JSON text, as SQLite keeps them, so a caller mutating what it wrote or read never changes
what is stored, and a value SQLite would refuse is refused here too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, JsonValue

from stratum_core.store._protocol import StoreError
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
    now,
)
from stratum_core.store._rules import (
    answered_review,
    check_lease,
    check_limit,
    closed_review,
    decode_cursor,
    encode_cursor,
    to_json,
    updated_run,
)

__all__ = ["MemoryRunStore"]

_R = TypeVar("_R", bound=BaseModel)


def _dump(record: BaseModel) -> str:
    return to_json(record.model_dump(mode="json"))


def _batch_field(run: RunRecord, name: str) -> Any:
    """A field of the run's batch tag (`attributes["batch"]`), None for a run outside batches."""
    tag = run.attributes.get("batch")
    return tag.get(name) if isinstance(tag, dict) else None


def _load(model: type[_R], text: str) -> _R:
    return model.model_validate(json.loads(text))


class _Tables:
    def __init__(self) -> None:
        self.runs: dict[str, str] = {}
        self.steps: dict[str, dict[str, str]] = {}  # run_id -> step_id -> record; dicts keep first-insert order
        self.attempts: dict[str, dict[tuple[str, int], str]] = {}  # run_id -> (step_id, number) -> record
        self.reviews: dict[str, str] = {}  # review_id -> record
        self.cache: dict[str, tuple[str | None, str]] = {}  # key -> (value, contract_hash)


class MemoryRunStore:
    """A run store held in memory by one process; thread-safe, like the SQLite store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: _Tables | None = _Tables()

    def __repr__(self) -> str:
        return "MemoryRunStore()"

    def __enter__(self) -> MemoryRunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _open(self) -> Iterator[_Tables]:
        with self._lock:
            if self._tables is None:
                raise StoreError("the memory run store is closed")
            yield self._tables

    @staticmethod
    def _require_run(tables: _Tables, run_id: str, what: str) -> None:
        if run_id not in tables.runs:
            raise StoreError(f"{what}: unknown run {run_id!r}")

    # -- runs ---------------------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        text = _dump(record)
        with self._open() as tables:
            if record.run_id in tables.runs:
                raise StoreError(f"run {record.run_id!r} is already recorded")
            tables.runs[record.run_id] = text

    def acquire_lease(
        self, run_id: str, holder: str, *, ttl: float, statuses: tuple[RunStatus, ...] = ("paused", "running")
    ) -> RunRecord:
        with self._open() as tables:
            text = tables.runs.get(run_id)
            at = now()
            record = check_lease(
                None if text is None else _load(RunRecord, text), run_id, holder, statuses=statuses, at=at
            )
            record = record.model_copy(update={"lease_holder": holder, "lease_expires": at + ttl})
            tables.runs[run_id] = _dump(record)
        return record

    def renew_lease(self, run_id: str, holder: str, *, ttl: float) -> bool:
        return self._set_lease(run_id, holder, {"lease_expires": now() + ttl})

    def release_lease(self, run_id: str, holder: str) -> None:
        self._set_lease(run_id, holder, {"lease_holder": None, "lease_expires": None})

    def _set_lease(self, run_id: str, holder: str, update: dict[str, Any]) -> bool:
        with self._open() as tables:
            text = tables.runs.get(run_id)
            if text is None:
                return False
            record = _load(RunRecord, text)
            if record.lease_holder != holder:
                return False
            tables.runs[run_id] = _dump(record.model_copy(update=update))
        return True

    def update_run(self, run_id: str, /, *, release_lease_of: str | None = None, **fields: Any) -> RunRecord:
        with self._open() as tables:
            if run_id not in tables.runs:
                raise StoreError(f"update_run: unknown run {run_id!r}")
            old = _load(RunRecord, tables.runs[run_id])
            if release_lease_of is not None and old.lease_holder == release_lease_of:
                fields = {**fields, "lease_holder": None, "lease_expires": None}
            record = updated_run(old, fields)
            text = _dump(record)
            tables.runs[run_id] = text
        return _load(RunRecord, text)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._open() as tables:
            text = tables.runs.get(run_id)
        return None if text is None else _load(RunRecord, text)

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
        check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor)
        with self._open() as tables:
            texts = list(tables.runs.values())
        runs = [
            run
            for run in (_load(RunRecord, text) for text in texts)
            if (flow is None or run.flow == flow)
            and (status is None or run.status == status)
            and (owner is None or run.owner == owner)
            and (batch is None or _batch_field(run, "id") == batch)
            and (since is None or run.created_at >= since)
            and (until is None or run.created_at < until)
            and (after is None or (run.created_at, run.run_id) < after)
        ]
        runs.sort(key=lambda run: (run.created_at, run.run_id), reverse=True)
        page = runs[:limit]
        more = len(runs) > limit
        return RunPage(runs=page, next_cursor=encode_cursor(page[-1].created_at, page[-1].run_id) if more else None)

    def batch_item_runs(self, keys: Collection[str]) -> list[RunRecord]:
        wanted = set(keys)
        with self._open() as tables:
            texts = list(tables.runs.values())
        runs = [run for run in (_load(RunRecord, text) for text in texts) if _batch_field(run, "key") in wanted]
        runs.sort(key=lambda run: (run.created_at, run.run_id))
        return runs

    # -- steps and attempts -------------------------------------------------------------------------------------

    def upsert_step(self, record: StepRecord) -> None:
        text = _dump(record)
        with self._open() as tables:
            self._require_run(tables, record.run_id, f"step {record.step_id!r}")
            tables.steps.setdefault(record.run_id, {})[record.step_id] = text

    def get_steps(self, run_id: str) -> list[StepRecord]:
        with self._open() as tables:
            texts = list(tables.steps.get(run_id, {}).values())
        return [_load(StepRecord, text) for text in texts]

    def add_attempt(self, record: AttemptRecord) -> None:
        text = _dump(record)
        what = f"attempt {record.number} of step {record.step_id!r}"
        with self._open() as tables:
            self._require_run(tables, record.run_id, what)
            attempts = tables.attempts.setdefault(record.run_id, {})
            key = (record.step_id, record.number)
            if key in attempts:
                raise StoreError(f"{what} is already recorded")
            attempts[key] = text

    def get_trace(self, run_id: str) -> Trace | None:
        with self._open() as tables:
            run = tables.runs.get(run_id)
            if run is None:
                return None
            steps = list(tables.steps.get(run_id, {}).values())
            attempts = list(tables.attempts.get(run_id, {}).values())
            reviews = list(tables.reviews.values())
        return Trace(
            run=_load(RunRecord, run),
            steps=[_load(StepRecord, text) for text in steps],
            attempts=[_load(AttemptRecord, text) for text in attempts],
            reviews=[review for review in (_load(ReviewRecord, text) for text in reviews) if review.run_id == run_id],
        )

    # -- reviews ------------------------------------------------------------------------------------------------

    def create_review(self, record: ReviewRecord) -> None:
        text = _dump(record)
        with self._open() as tables:
            self._require_run(tables, record.run_id, f"review {record.review_id!r}")
            if record.review_id in tables.reviews:
                raise StoreError(f"review {record.review_id!r} is already recorded")
            tables.reviews[record.review_id] = text

    def _replace_review(self, review_id: str, change: Callable[[ReviewRecord | None], ReviewRecord]) -> ReviewRecord:
        with self._open() as tables:
            old = tables.reviews.get(review_id)
            text = _dump(change(None if old is None else _load(ReviewRecord, old)))
            tables.reviews[review_id] = text
        return _load(ReviewRecord, text)

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
        return self._replace_review(
            review_id,
            lambda old: answered_review(
                old,
                review_id,
                action=action,
                value=value,
                reviewer=reviewer,
                rationale=rationale,
                answered_by=answered_by,
                channel=channel,
            ),
        )

    def close_review(self, review_id: str, *, status: Literal["timed_out", "cancelled"]) -> ReviewRecord:
        return self._replace_review(review_id, lambda old: closed_review(old, review_id, status=status))

    def get_review(self, review_id: str) -> ReviewRecord | None:
        with self._open() as tables:
            text = tables.reviews.get(review_id)
        return None if text is None else _load(ReviewRecord, text)

    def list_reviews(self, *, status: ReviewStatus | None = "pending", run_id: str | None = None) -> list[ReviewRecord]:
        with self._open() as tables:
            texts = list(tables.reviews.values())
        reviews = [
            review
            for review in (_load(ReviewRecord, text) for text in texts)
            if (status is None or review.status == status) and (run_id is None or review.run_id == run_id)
        ]
        reviews.sort(key=lambda review: review.created_at)  # stable: ties keep the order they were created in
        return reviews

    # -- cache --------------------------------------------------------------------------------------------------

    def cache_get(self, key: str) -> JsonValue | None:
        with self._open() as tables:
            entry = tables.cache.get(key)
        if entry is None or entry[0] is None:
            return None
        value: JsonValue = json.loads(entry[0])
        return value

    def cache_put(self, key: str, value: JsonValue, *, contract_hash: str) -> None:
        text = None if value is None else to_json(value)
        with self._open() as tables:
            tables.cache[key] = (text, contract_hash)

    def close(self) -> None:
        with self._lock:
            self._tables = None
