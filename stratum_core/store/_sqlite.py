"""The default run store: one SQLite file in WAL mode, safe to share between processes.

Every write commits before its method returns. With WAL and `synchronous=NORMAL` a killed process (even SIGKILL)
loses nothing already written; only an OS crash or power cut can lose the last few commits. The schema is versioned
in `PRAGMA user_version` and upgraded in place by the scripts in `_MIGRATIONS`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

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
    encode_cursor,
    to_json,
    updated_run,
)
from stratum_core.store._sql import (
    CACHE_GET,
    CACHE_PUT,
    RELEASE_LEASE,
    RENEW_LEASE,
    SELECT_REVIEW,
    TAKE_LEASE,
    UPDATE_REVIEW,
    reviews_query,
    runs_query,
)
from stratum_core.store._sql import SELECT_RUN as _SELECT_RUN
from stratum_core.store._sql import columns as _columns
from stratum_core.store._sql import decode as _decode
from stratum_core.store._sql import encode as _encode
from stratum_core.store._sql import encode_checked as _encode_checked
from stratum_core.store._sql import fields as _fields
from stratum_core.store._sql import insert as _insert
from stratum_core.store._sql import select as _select
from stratum_core.store._sql import update_run as _update_run
from stratum_core.store._sql import upsert_step as _upsert_step

__all__ = ["SQLiteRunStore"]

# Each script moves the schema up one version (index 0 makes version 1). Never edit a released script: add one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id        TEXT PRIMARY KEY,
        flow          TEXT NOT NULL,
        plan_source   TEXT NOT NULL,
        plan_hash     TEXT NOT NULL,
        plan_text     TEXT NOT NULL,
        input         TEXT,
        status        TEXT NOT NULL,
        output        TEXT,
        error         TEXT,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        finished_at   REAL,
        duration_ms   REAL,
        tokens_in     INTEGER NOT NULL,
        tokens_out    INTEGER NOT NULL,
        cost_usd      REAL NOT NULL,
        cost_unknown  INTEGER NOT NULL,
        model         TEXT,
        attributes    TEXT NOT NULL,
        parent_run_id TEXT
    );
    CREATE INDEX runs_by_created ON runs (created_at DESC, run_id DESC);
    CREATE INDEX runs_by_flow ON runs (flow, created_at DESC, run_id DESC);
    CREATE INDEX runs_by_status ON runs (status, created_at DESC, run_id DESC);

    CREATE TABLE steps (
        run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        function    TEXT,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL,
        started_at  REAL,
        finished_at REAL,
        duration_ms REAL,
        input       TEXT,
        output      TEXT,
        error       TEXT,
        attempts    INTEGER NOT NULL,
        tokens_in   INTEGER NOT NULL,
        tokens_out  INTEGER NOT NULL,
        cost_usd    REAL NOT NULL,
        attributes  TEXT NOT NULL,
        PRIMARY KEY (run_id, step_id)
    );

    CREATE TABLE attempts (
        run_id             TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_id            TEXT NOT NULL,
        number             INTEGER NOT NULL,
        kind               TEXT NOT NULL,
        model              TEXT,
        prompt_hash        TEXT,
        contract_hash      TEXT,
        tokens_in          INTEGER NOT NULL,
        tokens_out         INTEGER NOT NULL,
        cost_usd           REAL,
        duration_ms        REAL,
        started_at         REAL NOT NULL,
        raw_output         TEXT,
        violations         TEXT NOT NULL,
        retry_reason       TEXT,
        transport_attempts INTEGER NOT NULL,
        transport_errors   TEXT NOT NULL,
        error              TEXT,
        backend            TEXT,
        PRIMARY KEY (run_id, step_id, number)
    );

    CREATE TABLE reviews (
        review_id  TEXT PRIMARY KEY,
        run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_id    TEXT NOT NULL,
        question   TEXT NOT NULL,
        request    TEXT NOT NULL,
        status     TEXT NOT NULL,
        action     TEXT,
        value      TEXT,
        reviewer   TEXT,
        rationale  TEXT,
        created_at REAL NOT NULL,
        deadline   REAL,
        decided_at REAL
    );
    CREATE INDEX reviews_by_status ON reviews (status, created_at);
    CREATE INDEX reviews_by_run ON reviews (run_id);

    CREATE TABLE cache (
        cache_key     TEXT PRIMARY KEY,
        value         TEXT,
        contract_hash TEXT NOT NULL,
        created_at    REAL NOT NULL
    );
    """,
    """
    ALTER TABLE attempts ADD COLUMN output_strategy TEXT;
    ALTER TABLE attempts ADD COLUMN strategy_fallbacks TEXT NOT NULL DEFAULT '[]';
    """,
    """
    ALTER TABLE attempts ADD COLUMN reserved_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN reserved_usd REAL;
    """,
    # 4: who started a run, the lease of the process advancing it, and who truly answered a review.
    """
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN lease_holder TEXT;
    ALTER TABLE runs ADD COLUMN lease_expires REAL;
    CREATE INDEX runs_by_owner ON runs (owner, created_at DESC, run_id DESC);
    ALTER TABLE reviews ADD COLUMN answered_by TEXT;
    ALTER TABLE reviews ADD COLUMN channel TEXT;
    """,
    # 5: the runs of a batch, and a batch item's earlier runs (by plan hash and input hash), found by index.
    """
    CREATE INDEX runs_by_batch ON runs (json_extract(attributes, '$.batch.id'), created_at DESC, run_id DESC);
    CREATE INDEX runs_by_batch_item ON runs (json_extract(attributes, '$.batch.key'));
    """,
)

# The batch tag's fields (`attributes["batch"]`), as the batch indexes are on them.
_BATCH_ID = "json_extract(attributes, '$.batch.id')"
_BATCH_KEY = "json_extract(attributes, '$.batch.key')"
_KEYS_PER_QUERY = 500  # batch item keys per query: well under SQLite's limit on bound parameters


def _execute(
    db: sqlite3.Connection, sql: str, record: BaseModel, *extra: Any, only: tuple[str, ...] | None = None
) -> sqlite3.Cursor:
    """Execute `sql` with the record's columns (then `extra`), retrying with checked text if SQLite refuses it."""
    try:
        return db.execute(sql, [*_encode(record, only), *extra])
    except UnicodeEncodeError:
        return db.execute(sql, [*_encode_checked(record, only), *extra])


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, so they can run inside one transaction (executescript commits)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        yield pending.strip()


class SQLiteRunStore:
    """A run store in one SQLite file, shared safely by threads (one locked connection) and processes (WAL).

    Args:
        path: the database file; its folder is created if missing.
        timeout: seconds to wait for another process's write lock before failing.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder of the run store {self.path}: {e}", path=str(path)) from e
        db = None
        try:
            db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            self._migrate(db)
        except sqlite3.Error as e:
            if db is not None:
                db.close()
            raise StoreError(f"cannot open the run store {self.path}: {e}", path=str(path)) from e
        except BaseException:
            if db is not None:
                db.close()
            raise
        self._db: sqlite3.Connection | None = db

    def __repr__(self) -> str:
        return f"SQLiteRunStore({str(self.path)!r})"

    def __enter__(self) -> SQLiteRunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring the schema to the latest version in one transaction; a newer schema than ours is refused."""
        migrations = _MIGRATIONS
        if self._version(db) == len(migrations):
            return
        db.execute("BEGIN IMMEDIATE")  # re-read under the write lock: another process may be migrating too
        try:
            version = self._version(db)
            if version > len(migrations):
                raise StoreError(
                    f"the run store {self.path} has schema version {version}, newer than this Stratum knows "
                    f"({len(migrations)}); upgrade Stratum to open it",
                    path=str(self.path),
                )
            for script in migrations[version:]:
                for statement in _statements(script):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(migrations)}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _version(db: sqlite3.Connection) -> int:
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        return version

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise StoreError(f"the run store {self.path} is closed", path=str(self.path))
            try:
                yield self._db
            except sqlite3.Error as e:
                raise StoreError(f"run store {self.path}: {e}", path=str(self.path)) from e

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: a snapshot for reads, or the write lock taken up front for read-modify-write."""
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _insert_new(self, table: str, record: BaseModel, *, what: str, run_id: str) -> None:
        """Insert a record that must be new, and whose run (if the table refers to one) must exist."""
        with self._connection() as db:
            try:
                _execute(db, _insert(type(record), table), record)
            except sqlite3.IntegrityError as e:
                if e.sqlite_errorname == "SQLITE_CONSTRAINT_FOREIGNKEY":
                    raise StoreError(f"{what}: unknown run {run_id!r}") from e
                raise StoreError(f"{what} is already recorded") from e

    # -- runs ---------------------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        self._insert_new("runs", record, what=f"run {record.run_id!r}", run_id=record.run_id)

    def acquire_lease(
        self, run_id: str, holder: str, *, ttl: float, statuses: tuple[RunStatus, ...] = ("paused", "running")
    ) -> RunRecord:
        with self._transaction(write=True) as db:
            row = db.execute(_SELECT_RUN, (run_id,)).fetchone()
            at = now()
            record = check_lease(
                None if row is None else _decode(RunRecord, row), run_id, holder, statuses=statuses, at=at
            )
            db.execute(TAKE_LEASE, (holder, at + ttl, run_id))
        return record.model_copy(update={"lease_holder": holder, "lease_expires": at + ttl})

    def renew_lease(self, run_id: str, holder: str, *, ttl: float) -> bool:
        with self._connection() as db:
            cursor = db.execute(RENEW_LEASE, (now() + ttl, run_id, holder))
        return cursor.rowcount == 1

    def release_lease(self, run_id: str, holder: str) -> None:
        with self._connection() as db:
            db.execute(RELEASE_LEASE, (run_id, holder))

    def update_run(self, run_id: str, /, *, release_lease_of: str | None = None, **fields: Any) -> RunRecord:
        with self._transaction(write=True) as db:
            row = db.execute(_SELECT_RUN, (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"update_run: unknown run {run_id!r}")
            old = _fields(RunRecord, row)  # checked once, with the changes, by `updated_run`
            if release_lease_of is not None and old["lease_holder"] == release_lease_of:
                fields = {**fields, "lease_holder": None, "lease_expires": None}
            record = updated_run(old, fields)
            # Only the changed columns are written: the plan text and input stay as they are.
            changed = tuple(column for column in _columns(RunRecord) if column in fields or column == "updated_at")
            _execute(db, _update_run(changed), record, run_id, only=changed)
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._connection() as db:
            row = db.execute(_SELECT_RUN, (run_id,)).fetchone()
        return None if row is None else _decode(RunRecord, row)

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
        sql, params = runs_query(
            batch_id=_BATCH_ID,
            flow=flow,
            status=status,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            owner=owner,
            batch=batch,
        )
        with self._connection() as db:
            rows = db.execute(sql, params).fetchall()
        runs = [_decode(RunRecord, row) for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(runs=runs, next_cursor=encode_cursor(runs[-1].created_at, runs[-1].run_id) if more else None)

    def batch_item_runs(self, keys: Collection[str]) -> list[RunRecord]:
        wanted = list(dict.fromkeys(keys))
        runs: list[RunRecord] = []
        with self._connection() as db:
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                sql = f"{_select(RunRecord, 'runs')} WHERE {_BATCH_KEY} IN ({marks})"
                runs.extend(_decode(RunRecord, row) for row in db.execute(sql, chunk).fetchall())
        runs.sort(key=lambda run: (run.created_at, run.run_id))
        return runs

    # -- steps and attempts -------------------------------------------------------------------------------------

    def upsert_step(self, record: StepRecord) -> None:
        with self._connection() as db:
            try:
                _execute(db, _upsert_step(), record)
            except sqlite3.IntegrityError as e:
                raise StoreError(f"step {record.step_id!r}: unknown run {record.run_id!r}") from e

    def get_steps(self, run_id: str) -> list[StepRecord]:
        with self._connection() as db:
            rows = db.execute(f"{_select(StepRecord, 'steps')} WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
        return [_decode(StepRecord, row) for row in rows]

    def add_attempt(self, record: AttemptRecord) -> None:
        what = f"attempt {record.number} of step {record.step_id!r}"
        self._insert_new("attempts", record, what=what, run_id=record.run_id)

    def get_trace(self, run_id: str) -> Trace | None:
        with self._transaction(write=False) as db:
            row = db.execute(_SELECT_RUN, (run_id,)).fetchone()
            if row is None:
                return None
            steps = db.execute(f"{_select(StepRecord, 'steps')} WHERE run_id = ? ORDER BY rowid", (run_id,))
            step_rows = steps.fetchall()
            attempts = db.execute(f"{_select(AttemptRecord, 'attempts')} WHERE run_id = ? ORDER BY rowid", (run_id,))
            attempt_rows = attempts.fetchall()
            reviews = db.execute(f"{_select(ReviewRecord, 'reviews')} WHERE run_id = ? ORDER BY rowid", (run_id,))
            review_rows = reviews.fetchall()
        return Trace(
            run=_decode(RunRecord, row),
            steps=[_decode(StepRecord, r) for r in step_rows],
            attempts=[_decode(AttemptRecord, r) for r in attempt_rows],
            reviews=[_decode(ReviewRecord, r) for r in review_rows],
        )

    # -- reviews ------------------------------------------------------------------------------------------------

    def create_review(self, record: ReviewRecord) -> None:
        self._insert_new("reviews", record, what=f"review {record.review_id!r}", run_id=record.run_id)

    def _replace_review(self, review_id: str, change: Callable[[ReviewRecord | None], ReviewRecord]) -> ReviewRecord:
        with self._transaction(write=True) as db:
            row = db.execute(SELECT_REVIEW, (review_id,)).fetchone()
            record = change(None if row is None else _decode(ReviewRecord, row))
            _execute(db, UPDATE_REVIEW, record, review_id)
        return record

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
        with self._connection() as db:
            row = db.execute(SELECT_REVIEW, (review_id,)).fetchone()
        return None if row is None else _decode(ReviewRecord, row)

    def list_reviews(self, *, status: ReviewStatus | None = "pending", run_id: str | None = None) -> list[ReviewRecord]:
        sql, params = reviews_query(status=status, run_id=run_id, order="rowid")
        with self._connection() as db:
            rows = db.execute(sql, params).fetchall()
        return [_decode(ReviewRecord, row) for row in rows]

    # -- cache --------------------------------------------------------------------------------------------------

    def cache_get(self, key: str) -> JsonValue | None:
        with self._connection() as db:
            row = db.execute(CACHE_GET, (key,)).fetchone()
        if row is None or row[0] is None:
            return None
        value: JsonValue = json.loads(row[0])
        return value

    def cache_put(self, key: str, value: JsonValue, *, contract_hash: str) -> None:
        text = None if value is None else to_json(value)
        with self._connection() as db:
            db.execute(CACHE_PUT, (key, text, contract_hash, now()))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
