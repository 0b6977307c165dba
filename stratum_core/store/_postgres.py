"""The run store for processes on several hosts: one PostgreSQL database that every server and worker reaches.

The same tables, records and rules as the SQLite store (`stratum_core.store._sql`, `_rules`): a run written by one
store reads back the same from the other. Every write commits before its method returns, with `synchronous_commit`
on for the session, so a commit is on the database's disk (and its synchronous standbys, where it has some) when the
call returns: a killed Stratum process, or a crashed database host, loses nothing already written. A URL that sets
it (`?options=-csynchronous_commit%3Doff`) chooses SQLite's guarantee instead, for writes that cost no disk flush: a
killed Stratum process still loses nothing, a crashed database host its last commits (under a second of them). A
read-modify-write (a lease taken, a run updated, a review answered) locks its row (`SELECT ... FOR UPDATE`) in one
transaction, so two processes never both win. The schema is versioned in the table `stratum_schema` and upgraded in
place by the scripts in `_MIGRATIONS`, under an advisory lock so processes starting together migrate once.

psycopg (3) is imported with this module, which only a PostgreSQL URL loads (`open_run_store`).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors
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
    SELECT_RUN,
    TAKE_LEASE,
    UPDATE_REVIEW,
    columns,
    decode,
    encode,
    encode_checked,
    fields,
    insert,
    reviews_query,
    runs_query,
    select,
    update_run,
    upsert_step,
)

__all__ = ["PostgresRunStore"]

# Each script moves the schema up one version (index 0 makes version 1). Never edit a released script: add one.
# The columns are the SQLite store's (its five migrations folded into one), in PostgreSQL's types: floats are double
# precision, keys sort bytewise (COLLATE "C", as SQLite sorts), and `seq` keeps the order rows were first written in
# (SQLite's rowid).
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id        TEXT COLLATE "C" PRIMARY KEY,
        flow          TEXT NOT NULL,
        plan_source   TEXT NOT NULL,
        plan_hash     TEXT NOT NULL,
        plan_text     TEXT NOT NULL,
        input         TEXT,
        status        TEXT NOT NULL,
        output        TEXT,
        error         TEXT,
        created_at    DOUBLE PRECISION NOT NULL,
        updated_at    DOUBLE PRECISION NOT NULL,
        finished_at   DOUBLE PRECISION,
        duration_ms   DOUBLE PRECISION,
        tokens_in     BIGINT NOT NULL,
        tokens_out    BIGINT NOT NULL,
        cost_usd      DOUBLE PRECISION NOT NULL,
        cost_unknown  BOOLEAN NOT NULL,
        model         TEXT,
        attributes    TEXT NOT NULL,
        parent_run_id TEXT,
        owner         TEXT,
        lease_holder  TEXT,
        lease_expires DOUBLE PRECISION
    );
    CREATE INDEX runs_by_created ON runs (created_at DESC, run_id DESC);
    CREATE INDEX runs_by_flow ON runs (flow, created_at DESC, run_id DESC);
    CREATE INDEX runs_by_status ON runs (status, created_at DESC, run_id DESC);
    CREATE INDEX runs_by_owner ON runs (owner, created_at DESC, run_id DESC);
    CREATE INDEX runs_by_batch ON runs (((attributes::json) #>> '{batch,id}'), created_at DESC, run_id DESC);
    CREATE INDEX runs_by_batch_item ON runs (((attributes::json) #>> '{batch,key}'));

    CREATE TABLE steps (
        seq         BIGINT GENERATED ALWAYS AS IDENTITY,
        run_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        function    TEXT,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL,
        started_at  DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        duration_ms DOUBLE PRECISION,
        input       TEXT,
        output      TEXT,
        error       TEXT,
        attempts    BIGINT NOT NULL,
        tokens_in   BIGINT NOT NULL,
        tokens_out  BIGINT NOT NULL,
        cost_usd    DOUBLE PRECISION NOT NULL,
        attributes  TEXT NOT NULL,
        PRIMARY KEY (run_id, step_id)
    );

    CREATE TABLE attempts (
        seq                BIGINT GENERATED ALWAYS AS IDENTITY,
        run_id             TEXT COLLATE "C" NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_id            TEXT NOT NULL,
        number             BIGINT NOT NULL,
        kind               TEXT NOT NULL,
        model              TEXT,
        prompt_hash        TEXT,
        contract_hash      TEXT,
        tokens_in          BIGINT NOT NULL,
        tokens_out         BIGINT NOT NULL,
        cost_usd           DOUBLE PRECISION,
        duration_ms        DOUBLE PRECISION,
        started_at         DOUBLE PRECISION NOT NULL,
        raw_output         TEXT,
        violations         TEXT NOT NULL,
        retry_reason       TEXT,
        transport_attempts BIGINT NOT NULL,
        transport_errors   TEXT NOT NULL,
        error              TEXT,
        backend            TEXT,
        output_strategy    TEXT,
        strategy_fallbacks TEXT NOT NULL DEFAULT '[]',
        reserved_tokens    BIGINT,
        reserved_usd       DOUBLE PRECISION,
        PRIMARY KEY (run_id, step_id, number)
    );

    CREATE TABLE reviews (
        seq         BIGINT GENERATED ALWAYS AS IDENTITY,
        review_id   TEXT COLLATE "C" PRIMARY KEY,
        run_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        question    TEXT NOT NULL,
        request     TEXT NOT NULL,
        status      TEXT NOT NULL,
        action      TEXT,
        value       TEXT,
        reviewer    TEXT,
        rationale   TEXT,
        created_at  DOUBLE PRECISION NOT NULL,
        deadline    DOUBLE PRECISION,
        decided_at  DOUBLE PRECISION,
        answered_by TEXT,
        channel     TEXT
    );
    CREATE INDEX reviews_by_status ON reviews (status, created_at, seq);
    CREATE INDEX reviews_by_run ON reviews (run_id);

    CREATE TABLE cache (
        cache_key     TEXT COLLATE "C" PRIMARY KEY,
        value         TEXT,
        contract_hash TEXT NOT NULL,
        created_at    DOUBLE PRECISION NOT NULL
    );
    """,
)

# The batch tag's fields (`attributes["batch"]`), written as the batch indexes are.
_BATCH_ID = "((attributes::json) #>> '{batch,id}')"
_BATCH_KEY = "((attributes::json) #>> '{batch,key}')"
_MIGRATION_LOCK = 0x7374726174756D  # pg_advisory_xact_lock key: "stratum"


@functools.cache
def _pg(sql: str) -> str:
    """A shared statement (`?` placeholders) as psycopg takes it (`%s`)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _no_nul(values: list[Any]) -> list[Any]:
    """PostgreSQL text cannot hold NUL (SQLite's can): it becomes U+FFFD, as a lone surrogate does."""
    return [value.replace("\x00", "\ufffd") if isinstance(value, str) else value for value in values]


def _execute(
    db: psycopg.Connection[tuple[Any, ...]],
    sql: str,
    record: BaseModel,
    *extra: Any,
    only: tuple[str, ...] | None = None,
) -> psycopg.Cursor[tuple[Any, ...]]:
    """Execute `sql` with the record's columns (then `extra`); text psycopg cannot send is made sendable first.

    psycopg refuses a lone surrogate or a NUL while it encodes the parameters, before anything reaches the server,
    so the statement is simply sent again with checked values.
    """
    try:
        return db.execute(_pg(sql), [*encode(record, only), *extra])
    except (UnicodeEncodeError, psycopg.DataError) as e:
        if isinstance(e, psycopg.DataError) and e.sqlstate is not None:
            raise  # the server refused it: not an encoding matter
        return db.execute(_pg(sql), [*_no_nul(encode_checked(record, only)), *extra])


def _redacted(url: str) -> str:
    """The URL without its password, for messages and `repr`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresRunStore:
    """A run store in a PostgreSQL database, shared by threads (one locked connection), processes and hosts.

    Args:
        url: a libpq connection URL (`postgresql://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=require`) or
            key=value string; the tables go in the first schema of the connection's search_path.
        timeout: seconds to wait to connect, and for another process's lock on a row, before failing.
    """

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = _redacted(url)
        self._conninfo = url
        self._timeout = timeout
        self._lock = threading.Lock()
        self._db: psycopg.Connection[tuple[Any, ...]] | None = self._connect()

    def __repr__(self) -> str:
        return f"PostgresRunStore({self.url!r})"

    def __enter__(self) -> PostgresRunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A new connection, in autocommit (each write its own transaction), at the latest schema."""
        db = None
        try:
            db = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=max(1, round(self._timeout)))
            if "synchronous_commit" not in self._conninfo:  # unless the URL chose (see the module's docstring)
                db.execute("SET synchronous_commit = on")
            db.execute(f"SET lock_timeout = {int(self._timeout * 1000)}")
            self._migrate(db)
        except psycopg.Error as e:
            if db is not None:
                db.close()
            raise StoreError(f"cannot open the run store {self.url}: {e}", path=self.url) from e
        except BaseException:
            if db is not None:
                db.close()
            raise
        return db

    def _migrate(self, db: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Bring the schema to the latest version in one transaction; a newer schema than ours is refused."""
        migrations = _MIGRATIONS
        if self._version(db) == len(migrations):
            return
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))  # another process may be migrating
            db.execute("CREATE TABLE IF NOT EXISTS stratum_schema (version INTEGER NOT NULL)")
            version = self._version(db)
            if version > len(migrations):
                raise StoreError(
                    f"the run store {self.url} has schema version {version}, newer than this Stratum knows "
                    f"({len(migrations)}); upgrade Stratum to open it",
                    path=self.url,
                )
            for script in migrations[version:]:
                db.execute(script)  # several statements: without parameters psycopg sends them as one query
            db.execute("DELETE FROM stratum_schema")
            db.execute("INSERT INTO stratum_schema (version) VALUES (%s)", (len(migrations),))

    @staticmethod
    def _version(db: psycopg.Connection[tuple[Any, ...]]) -> int:
        row = db.execute("SELECT to_regclass('stratum_schema') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        found = db.execute("SELECT max(version) FROM stratum_schema").fetchone()
        return 0 if found is None or found[0] is None else int(found[0])

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        with self._lock:
            if self._db is None:
                raise StoreError(f"the run store {self.url} is closed", path=self.url)
            if self._db.closed:  # the server restarted or the network dropped: the next call reconnects
                self._db.close()
                self._db = self._connect()
            try:
                yield self._db
            except psycopg.Error as e:
                raise StoreError(f"run store {self.url}: {e}", path=self.url) from e

    @contextmanager
    def _transaction(self, *, snapshot: bool = False) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """One transaction: rows read `FOR UPDATE` stay locked to it; `snapshot` reads every table at one instant."""
        with self._connection() as db, db.transaction():
            if snapshot:
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield db

    def _insert_new(self, table: str, record: BaseModel, *, what: str, run_id: str) -> None:
        """Insert a record that must be new, and whose run (if the table refers to one) must exist."""
        with self._connection() as db:
            try:
                _execute(db, insert(type(record), table), record)
            except psycopg.errors.ForeignKeyViolation as e:
                raise StoreError(f"{what}: unknown run {run_id!r}") from e
            except psycopg.errors.UniqueViolation as e:
                raise StoreError(f"{what} is already recorded") from e

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._connection() as db:
            return db.execute(_pg(sql), params).fetchone()

    def _all(self, sql: str, params: list[Any] | tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._connection() as db:
            return db.execute(_pg(sql), params).fetchall()

    # -- runs ---------------------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        self._insert_new("runs", record, what=f"run {record.run_id!r}", run_id=record.run_id)

    def acquire_lease(
        self, run_id: str, holder: str, *, ttl: float, statuses: tuple[RunStatus, ...] = ("paused", "running")
    ) -> RunRecord:
        with self._transaction() as db:
            row = db.execute(_pg(SELECT_RUN + " FOR UPDATE"), (run_id,)).fetchone()
            at = now()
            found = None if row is None else decode(RunRecord, row)
            record = check_lease(found, run_id, holder, statuses=statuses, at=at)
            db.execute(_pg(TAKE_LEASE), (holder, at + ttl, run_id))
        return record.model_copy(update={"lease_holder": holder, "lease_expires": at + ttl})

    def renew_lease(self, run_id: str, holder: str, *, ttl: float) -> bool:
        with self._connection() as db:
            cursor = db.execute(_pg(RENEW_LEASE), (now() + ttl, run_id, holder))
        return cursor.rowcount == 1

    def release_lease(self, run_id: str, holder: str) -> None:
        with self._connection() as db:
            db.execute(_pg(RELEASE_LEASE), (run_id, holder))

    def update_run(self, run_id: str, /, *, release_lease_of: str | None = None, **changes: Any) -> RunRecord:
        with self._transaction() as db:
            row = db.execute(_pg(SELECT_RUN + " FOR UPDATE"), (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"update_run: unknown run {run_id!r}")
            old = fields(RunRecord, row)  # checked once, with the changes, by `updated_run`
            if release_lease_of is not None and old["lease_holder"] == release_lease_of:
                changes = {**changes, "lease_holder": None, "lease_expires": None}
            record = updated_run(old, changes)
            # Only the changed columns are written: the plan text and input stay as they are.
            changed = tuple(column for column in columns(RunRecord) if column in changes or column == "updated_at")
            _execute(db, update_run(changed), record, run_id, only=changed)
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._one(SELECT_RUN, (run_id,))
        return None if row is None else decode(RunRecord, row)

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
        rows = self._all(sql, params)
        runs = [decode(RunRecord, row) for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(runs=runs, next_cursor=encode_cursor(runs[-1].created_at, runs[-1].run_id) if more else None)

    def batch_item_runs(self, keys: Collection[str]) -> list[RunRecord]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        sql = f"{select(RunRecord, 'runs')} WHERE {_BATCH_KEY} = ANY(?) ORDER BY created_at, run_id"
        return [decode(RunRecord, row) for row in self._all(sql, (wanted,))]

    # -- steps and attempts -------------------------------------------------------------------------------------

    def upsert_step(self, record: StepRecord) -> None:
        with self._connection() as db:
            try:
                _execute(db, upsert_step(), record)
            except psycopg.errors.ForeignKeyViolation as e:
                raise StoreError(f"step {record.step_id!r}: unknown run {record.run_id!r}") from e

    def get_steps(self, run_id: str) -> list[StepRecord]:
        rows = self._all(f"{select(StepRecord, 'steps')} WHERE run_id = ? ORDER BY seq", (run_id,))
        return [decode(StepRecord, row) for row in rows]

    def add_attempt(self, record: AttemptRecord) -> None:
        what = f"attempt {record.number} of step {record.step_id!r}"
        self._insert_new("attempts", record, what=what, run_id=record.run_id)

    def get_trace(self, run_id: str) -> Trace | None:
        with self._transaction(snapshot=True) as db:
            row = db.execute(_pg(SELECT_RUN), (run_id,)).fetchone()
            if row is None:
                return None
            parts = [
                db.execute(_pg(f"{select(model, table)} WHERE run_id = ? ORDER BY seq"), (run_id,)).fetchall()
                for model, table in ((StepRecord, "steps"), (AttemptRecord, "attempts"), (ReviewRecord, "reviews"))
            ]
        step_rows, attempt_rows, review_rows = parts
        return Trace(
            run=decode(RunRecord, row),
            steps=[decode(StepRecord, r) for r in step_rows],
            attempts=[decode(AttemptRecord, r) for r in attempt_rows],
            reviews=[decode(ReviewRecord, r) for r in review_rows],
        )

    # -- reviews ------------------------------------------------------------------------------------------------

    def create_review(self, record: ReviewRecord) -> None:
        self._insert_new("reviews", record, what=f"review {record.review_id!r}", run_id=record.run_id)

    def _replace_review(self, review_id: str, change: Callable[[ReviewRecord | None], ReviewRecord]) -> ReviewRecord:
        with self._transaction() as db:
            row = db.execute(_pg(SELECT_REVIEW + " FOR UPDATE"), (review_id,)).fetchone()
            record = change(None if row is None else decode(ReviewRecord, row))
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
        row = self._one(SELECT_REVIEW, (review_id,))
        return None if row is None else decode(ReviewRecord, row)

    def list_reviews(self, *, status: ReviewStatus | None = "pending", run_id: str | None = None) -> list[ReviewRecord]:
        sql, params = reviews_query(status=status, run_id=run_id, order="seq")
        return [decode(ReviewRecord, row) for row in self._all(sql, params)]

    # -- cache --------------------------------------------------------------------------------------------------

    def cache_get(self, key: str) -> JsonValue | None:
        row = self._one(CACHE_GET, (key,))
        if row is None or row[0] is None:
            return None
        value: JsonValue = json.loads(row[0])
        return value

    def cache_put(self, key: str, value: JsonValue, *, contract_hash: str) -> None:
        text = None if value is None else to_json(value)
        with self._connection() as db:
            db.execute(_pg(CACHE_PUT), _no_nul([key, text, contract_hash, now()]))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
