"""The run lease: a compare-and-set on the run's row, so one process advances a run at a time (every store)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stratum_core.store import (
    ReviewRecord,
    RunBusy,
    RunRecord,
    RunStore,
    SQLiteRunStore,
    StoreError,
    _sqlite,
    lease_is_live,
    new_holder,
)


def make_run(**fields: Any) -> RunRecord:
    data: dict[str, Any] = {"flow": "triage", "plan_hash": "abc", "plan_text": "version: '1'\n", "input": {}}
    return RunRecord(**{**data, **fields})


def a_dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_a_second_holder_is_told_the_run_is_being_advanced_elsewhere(store: RunStore) -> None:
    run = make_run(status="paused")
    store.create_run(run)
    first, second = new_holder(), new_holder()
    taken = store.acquire_lease(run.run_id, first, ttl=60)
    assert taken.lease_holder == first and taken.lease_expires is not None
    with pytest.raises(RunBusy) as caught:
        store.acquire_lease(run.run_id, second, ttl=60)
    assert caught.value.run_id == run.run_id and caught.value.holder == first
    assert f"run {run.run_id} is being advanced elsewhere (by {first})" in str(caught.value)
    assert store.acquire_lease(run.run_id, first, ttl=60).lease_holder == first  # its holder may take it again


def test_a_released_lease_is_free_and_only_its_holder_releases_or_renews_it(store: RunStore) -> None:
    run = make_run(status="paused")
    store.create_run(run)
    first, second = new_holder(), new_holder()
    store.acquire_lease(run.run_id, first, ttl=60)
    store.release_lease(run.run_id, second)  # not its lease: nothing happens
    assert not store.renew_lease(run.run_id, second, ttl=60)
    assert store.renew_lease(run.run_id, first, ttl=60)
    store.release_lease(run.run_id, first)
    released = store.get_run(run.run_id)
    assert released is not None and (released.lease_holder, released.lease_expires) == (None, None)
    assert store.acquire_lease(run.run_id, second, ttl=60).lease_holder == second


def test_an_expired_lease_can_be_taken_over(store: RunStore) -> None:
    run = make_run(status="running")
    store.create_run(run)
    first, second = new_holder(), new_holder()
    store.acquire_lease(run.run_id, first, ttl=0)  # expires at once: its holder stopped renewing
    assert store.acquire_lease(run.run_id, second, ttl=60).lease_holder == second
    assert not store.renew_lease(run.run_id, first, ttl=60)  # the old holder learns it lost the run


def test_the_lease_of_a_dead_local_process_is_free_before_it_expires(store: RunStore) -> None:
    host = new_holder().split(":")[0]
    dead = f"{host}:{a_dead_pid()}:0123456789ab"
    run = make_run(status="running", lease_holder=dead, lease_expires=4_000_000_000.0)
    store.create_run(run)
    assert not lease_is_live(dead, 4_000_000_000.0, now=0.0)
    assert store.acquire_lease(run.run_id, new_holder(), ttl=60).lease_holder != dead


def test_a_holder_on_another_host_is_trusted_until_its_lease_expires() -> None:
    assert lease_is_live("elsewhere.example:1:abc", 200.0, now=100.0)
    assert not lease_is_live("elsewhere.example:1:abc", 100.0, now=100.0)
    assert not lease_is_live(None, None, now=0.0)


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_an_ended_run_cannot_be_leased(store: RunStore, status: Any) -> None:
    run = make_run(status=status)
    store.create_run(run)
    with pytest.raises(StoreError) as caught:
        store.acquire_lease(run.run_id, new_holder(), ttl=60)
    assert not isinstance(caught.value, RunBusy)
    assert str(caught.value) == f"run {run.run_id} is {status}; only paused or interrupted runs can be resumed"


def test_an_unknown_run_cannot_be_leased(store: RunStore) -> None:
    with pytest.raises(StoreError, match="no run with id 'nope'"):
        store.acquire_lease("nope", new_holder(), ttl=60)


def test_list_runs_filters_by_owner(store: RunStore) -> None:
    mine, theirs, nobodys = make_run(owner="alice"), make_run(owner="bob"), make_run()
    for run in (mine, theirs, nobodys):
        store.create_run(run)
    assert [run.run_id for run in store.list_runs(owner="alice").runs] == [mine.run_id]
    assert len(store.list_runs().runs) == 3


def test_a_review_that_needs_a_person_refuses_the_agents_answer(store: RunStore) -> None:
    run = make_run(status="paused")
    store.create_run(run)
    review = ReviewRecord(run_id=run.run_id, step_id="sign", question="Sign?", request={"answered_by": "person"})
    store.create_review(review)
    assert review.needs_person
    with pytest.raises(StoreError, match="must be answered by a person"):
        store.answer_review(
            review.review_id, action="accept", value={}, reviewer="bot", rationale=None, answered_by="agent"
        )
    answered = store.answer_review(
        review.review_id, action="accept", value={}, reviewer="jane", rationale=None, channel="cli"
    )
    assert (answered.answered_by, answered.channel, answered.status) == ("person", "cli", "answered")


def test_a_database_from_before_leases_gains_the_columns_and_keeps_its_runs(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db)
    try:
        raw.executescript(_sqlite._MIGRATIONS[0])
        raw.execute("PRAGMA user_version = 1")
        raw.execute(
            "INSERT INTO runs (run_id, flow, plan_source, plan_hash, plan_text, input, status, created_at, updated_at,"
            " tokens_in, tokens_out, cost_usd, cost_unknown, attributes) VALUES ('old', 'f', 's', 'h', 't', '{}',"
            " 'running', 1.0, 1.0, 0, 0, 0.0, 0, '{}')"
        )
        raw.commit()
    finally:
        raw.close()
    with SQLiteRunStore(db) as store:
        run = store.get_run("old")
        assert run is not None and (run.owner, run.lease_holder) == (None, None)
        assert store.acquire_lease("old", new_holder(), ttl=60).status == "running"  # interrupted: resumable


def test_a_holder_with_this_processs_pid_that_this_process_never_made_is_a_dead_ones() -> None:
    import os

    host = new_holder().split(":")[0]
    assert lease_is_live(new_holder(), 200.0, now=100.0)
    assert not lease_is_live(f"{host}:{os.getpid()}:from-a-past-life", 200.0, now=100.0)
