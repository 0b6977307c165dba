"""The PostgreSQL store's own behaviour, on a real server: its schema versions, its lease across processes and
connections, and what it does when its connection is lost. (The shared contract is in test_run_store.py and
test_run_lease.py, parametrized over every store.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")

from stratum_core.backends import open_run_store  # noqa: E402
from stratum_core.store import (  # noqa: E402
    AttemptRecord,
    RunBusy,
    RunRecord,
    StepRecord,
    StoreError,
    _postgres,
    new_holder,
)
from stratum_core.store._postgres import PostgresRunStore  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]


def make_run(**fields: Any) -> RunRecord:
    data: dict[str, Any] = {"flow": "triage", "plan_hash": "abc", "plan_text": "version: '1'\n", "input": {}}
    return RunRecord(**{**data, **fields})


def raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        cursor = db.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []


def test_a_postgres_url_opens_the_postgres_store_with_its_tables_at_the_latest_schema(postgres_url: str) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        with closing(open_run_store(url)) as store:
            assert isinstance(store, PostgresRunStore)
    assert raw(postgres_url, "SELECT version FROM stratum_schema") == [(len(_postgres._MIGRATIONS),)]
    listed = raw(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    tables = {row[0] for row in listed}
    assert tables == {"runs", "steps", "attempts", "reviews", "cache", "stratum_schema"}


def test_the_password_is_kept_out_of_the_stores_name_and_messages(postgres_server: Any) -> None:
    url = f"postgresql://stratum:s3cret@127.0.0.1:{postgres_server.port}/no_such_database"
    with pytest.raises(StoreError) as caught:
        PostgresRunStore(url, timeout=5)
    assert "s3cret" not in str(caught.value)
    assert caught.value.path == f"postgresql://stratum:***@127.0.0.1:{postgres_server.port}/no_such_database"


def test_two_stores_on_one_database_never_both_hold_a_runs_lease(postgres_url: str) -> None:
    with closing(PostgresRunStore(postgres_url)) as first, closing(PostgresRunStore(postgres_url)) as second:
        run = make_run(status="paused")
        first.create_run(run)
        holders = {first: new_holder(), second: new_holder()}
        won: list[str] = []
        busy: list[RunBusy] = []
        start = threading.Barrier(2)

        def take(store: PostgresRunStore) -> None:
            start.wait()
            for _ in range(20):  # each tries again and again: the lease stays with whoever took it first
                try:
                    won.append(store.acquire_lease(run.run_id, holders[store], ttl=60).lease_holder or "")
                except RunBusy as e:
                    busy.append(e)

        threads = [threading.Thread(target=take, args=(store,)) for store in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(won)) == 1 and len(won) == 20 and len(busy) == 20
        assert {e.holder for e in busy} == set(won)
        stored = second.get_run(run.run_id)
        assert stored is not None and stored.lease_holder == won[0]


@pytest.mark.slow
def test_a_run_leased_by_another_process_is_busy_here_until_that_process_releases_it(postgres_url: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        from stratum_core.backends import open_run_store
        from stratum_core.store import new_holder

        store = open_run_store(sys.argv[1])
        holder = new_holder()
        store.acquire_lease(sys.argv[2], holder, ttl=600)
        print(holder, flush=True)
        sys.stdin.readline()  # hold the lease until the test says
        store.release_lease(sys.argv[2], holder)
        store.close()
        """
    )
    with closing(PostgresRunStore(postgres_url)) as store:
        run = make_run(status="running")
        store.create_run(run)
        with subprocess.Popen(
            [sys.executable, "-c", script, postgres_url, run.run_id],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None and child.stdin is not None
            theirs = child.stdout.readline().strip()
            assert theirs, "the child did not take the lease"
            with pytest.raises(RunBusy) as caught:
                store.acquire_lease(run.run_id, new_holder(), ttl=60)
            assert caught.value.holder == theirs
            child.stdin.write("release\n")
            child.stdin.close()
            assert child.wait(timeout=60) == 0
        mine = new_holder()
        assert store.acquire_lease(run.run_id, mine, ttl=60).lease_holder == mine


def test_text_postgres_cannot_hold_is_stored_with_a_replacement_not_refused(postgres_url: str) -> None:
    # SQLite keeps a NUL in text; PostgreSQL refuses it: the raw answer is kept, made storable
    with closing(PostgresRunStore(postgres_url)) as store:
        run = make_run()
        store.create_run(run)
        store.add_attempt(AttemptRecord(run_id=run.run_id, step_id="s", number=1, raw_output="a\x00b\udca7c"))
        store.upsert_step(StepRecord(run_id=run.run_id, step_id="s", kind="infer", output={"text": "a\x00b"}))
        trace = store.get_trace(run.run_id)
        assert trace is not None
        assert trace.attempts[0].raw_output == "a\ufffdb?c"  # as SQLite keeps a lone surrogate
        assert trace.steps[0].output == {"text": "a\x00b"}  # JSON escapes it: kept exactly


def test_a_lost_connection_fails_one_call_and_the_next_call_reconnects(postgres_url: str) -> None:
    with closing(PostgresRunStore(postgres_url)) as store:
        run = make_run()
        store.create_run(run)
        assert store._db is not None
        pid = store._db.info.backend_pid
        raw(postgres_url, f"SELECT pg_terminate_backend({pid})")  # the server drops this store's connection
        with pytest.raises(StoreError, match="run store"):
            store.get_run(run.run_id)
        assert store.get_run(run.run_id) == run


@pytest.mark.parametrize(
    ("where", "index"),
    [
        ("", "runs_by_created"),
        ("WHERE flow = 'x'", "runs_by_flow"),
        ("WHERE status = 'paused'", "runs_by_status"),
        (f"WHERE {_postgres._BATCH_ID} = 'b'", "runs_by_batch"),
    ],
)
def test_listing_runs_is_served_by_an_index(postgres_url: str, where: str, index: str) -> None:
    PostgresRunStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as db, db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")  # an empty table: make the planner show the index it can use
        plan = db.execute(
            f"EXPLAIN SELECT run_id FROM runs {where} ORDER BY created_at DESC, run_id DESC LIMIT 5"
        ).fetchall()
    details = " ".join(row[0] for row in plan)
    assert index in details
    assert "Sort" not in details


def test_opening_an_older_database_applies_the_missing_migrations_and_keeps_its_data(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run()
    with closing(PostgresRunStore(postgres_url)) as old:
        old.create_run(run)
    v1 = len(_postgres._MIGRATIONS)
    monkeypatch.setattr(
        _postgres,
        "_MIGRATIONS",
        (*_postgres._MIGRATIONS, "ALTER TABLE runs ADD COLUMN note TEXT;\nCREATE TABLE extra (x INTEGER);"),
    )
    with closing(PostgresRunStore(postgres_url)) as new:
        assert new.get_run(run.run_id) == run
    assert raw(postgres_url, "SELECT version FROM stratum_schema") == [(v1 + 1,)]
    assert raw(postgres_url, "SELECT count(*) FROM extra") == [(0,)]


def test_a_failing_migration_leaves_the_database_as_it_was(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    PostgresRunStore(postgres_url).close()
    v1 = len(_postgres._MIGRATIONS)
    monkeypatch.setattr(
        _postgres, "_MIGRATIONS", (*_postgres._MIGRATIONS, "CREATE TABLE extra (x INTEGER);\nNOT SQL AT ALL;")
    )
    with pytest.raises(StoreError, match="cannot open the run store"):
        PostgresRunStore(postgres_url)
    assert raw(postgres_url, "SELECT version FROM stratum_schema") == [(v1,)]
    assert raw(postgres_url, "SELECT to_regclass('extra') IS NULL") == [(True,)]


def test_a_database_from_a_newer_stratum_is_refused(postgres_url: str) -> None:
    PostgresRunStore(postgres_url).close()
    raw(postgres_url, "UPDATE stratum_schema SET version = 99")
    with pytest.raises(StoreError) as caught:
        PostgresRunStore(postgres_url)
    shown = postgres_url
    assert str(caught.value) == (
        f"the run store {shown} has schema version 99, newer than this Stratum knows "
        f"({len(_postgres._MIGRATIONS)}); upgrade Stratum to open it"
    )


def test_processes_opening_a_new_database_together_create_its_schema_once(postgres_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            PostgresRunStore(postgres_url).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert raw(postgres_url, "SELECT version FROM stratum_schema") == [(len(_postgres._MIGRATIONS),)]


def test_writes_wait_for_their_disk_flush_unless_the_url_chooses_otherwise(postgres_url: str) -> None:
    relaxed = f"{postgres_url}%20-csynchronous_commit%3Doff"  # one more option in the URL's options
    for url, setting in ((postgres_url, "on"), (relaxed, "off")):
        with closing(PostgresRunStore(url)) as store:
            assert store._db is not None
            assert store._db.execute("SHOW synchronous_commit").fetchone() == (setting,)
            store.create_run(make_run())  # the tables are the URL's schema's, whatever the setting
