"""The run store: every store (memory, SQLite, PostgreSQL) passes the same behavioural suite; the durable ones are
shared by processes and keep what was written across a SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

import stratum_core.store
from stratum_core.backends import open_run_store
from stratum_core.store import (
    AttemptRecord,
    ReviewRecord,
    RunRecord,
    RunStore,
    SQLiteRunStore,
    StepRecord,
    StoreError,
    _sqlite,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000.0


def make_run(**fields: Any) -> RunRecord:
    data: dict[str, Any] = {
        "flow": "triage",
        "plan_hash": "abc123def456",
        "plan_text": "version: '0.2'\n",
        "input": {"text": "hello"},
    }
    return RunRecord(**{**data, **fields})


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several processes open: a SQLite file, or a PostgreSQL database (its URL)."""
    return str(tmp_path / "stratum.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def run_child(script: str, db: Path | str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(db)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- the public surface ---------------------------------------------------------------------------------------------


def test_the_package_exports_exactly_the_pinned_names() -> None:
    assert stratum_core.store.__all__ == [
        "AnsweredBy",
        "AttemptRecord",
        "MemoryRunStore",
        "ReviewAction",
        "ReviewRecord",
        "ReviewStatus",
        "RunBusy",
        "RunPage",
        "RunRecord",
        "RunStatus",
        "RunStore",
        "SQLiteRunStore",
        "StepRecord",
        "StepStatus",
        "StoreError",
        "Trace",
        "lease_is_live",
        "new_holder",
    ]


def test_both_stores_implement_the_run_store_protocol(store: RunStore) -> None:
    assert isinstance(store, RunStore)


def test_store_error_is_a_stratum_error() -> None:
    from stratum_core.errors import StratumError

    assert issubclass(StoreError, StratumError)


def test_a_new_run_gets_a_hex_uuid_and_updated_at_equal_to_created_at() -> None:
    run = make_run()
    assert len(run.run_id) == 32
    int(run.run_id, 16)
    assert run.updated_at == run.created_at
    assert run.status == "running"


# -- runs -----------------------------------------------------------------------------------------------------------


def test_a_run_round_trips_with_every_field_set(store: RunStore) -> None:
    run = make_run(
        plan_source="plans/triage.stratum.yaml",
        status="failed",
        output={"label": "bug", "scores": [0.5, 1.0]},
        error={"type": "PostconditionFailed", "message": "ensure failed", "step_id": "classify", "history": [["x"]]},
        created_at=T0,
        updated_at=T0 + 1,
        finished_at=T0 + 2,
        duration_ms=2000.5,
        tokens_in=120,
        tokens_out=30,
        cost_usd=0.0042,
        cost_unknown=True,
        model="openai/gpt-4o-mini",
        attributes={"executor": "local", "backend": {"name": "litellm"}},
        parent_run_id="f" * 32,
    )
    store.create_run(run)
    assert store.get_run(run.run_id) == run


def test_get_run_of_an_unknown_run_is_none(store: RunStore) -> None:
    assert store.get_run("nope") is None


def test_creating_the_same_run_twice_is_an_error(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    with pytest.raises(StoreError, match="already recorded"):
        store.create_run(run)


def test_update_run_changes_only_the_given_fields_and_moves_updated_at(store: RunStore) -> None:
    run = make_run(created_at=T0)
    store.create_run(run)
    updated = store.update_run(run.run_id, status="succeeded", output={"label": "bug"}, tokens_in=7)
    assert updated.status == "succeeded"
    assert updated.output == {"label": "bug"}
    assert updated.tokens_in == 7
    assert updated.updated_at > T0
    assert updated.created_at == T0
    assert updated.input == run.input
    assert store.get_run(run.run_id) == updated


def test_update_run_keeps_an_explicit_updated_at(store: RunStore) -> None:
    run = make_run(created_at=T0)
    store.create_run(run)
    assert store.update_run(run.run_id, status="paused", updated_at=T0 + 5).updated_at == T0 + 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"colour": "red"}, "unknown field"),
        ({"status": "exploded"}, "status"),
        ({"run_id": "other"}, "run_id cannot change"),
    ],
)
def test_update_run_refuses_unknown_fields_bad_values_and_a_new_id(
    store: RunStore, fields: dict[str, Any], message: str
) -> None:
    run = make_run()
    store.create_run(run)
    with pytest.raises(StoreError, match=message):
        store.update_run(run.run_id, **fields)
    assert store.get_run(run.run_id) == run


def test_update_run_of_an_unknown_run_is_an_error(store: RunStore) -> None:
    with pytest.raises(StoreError, match="unknown run 'nope'"):
        store.update_run("nope", status="failed")


def test_a_value_that_is_not_json_is_refused_and_nothing_is_stored(store: RunStore) -> None:
    run = make_run(input={"x": float("nan")})
    with pytest.raises(StoreError, match="not JSON"):
        store.create_run(run)
    assert store.get_run(run.run_id) is None


def test_records_read_or_written_are_copies_the_caller_cannot_change(store: RunStore) -> None:
    data: dict[str, Any] = {"items": [1, 2]}
    run = make_run(input=data)
    store.create_run(run)
    data["items"].append(3)
    read = store.get_run(run.run_id)
    assert read is not None
    assert read.input == {"items": [1, 2]}
    assert isinstance(read.input, dict)
    read.input["items"] = []
    assert store.get_run(run.run_id) == make_run(input={"items": [1, 2]}, run_id=run.run_id, created_at=run.created_at)


# -- listing runs ---------------------------------------------------------------------------------------------------


def test_list_runs_is_newest_first_and_filters_by_flow_status_and_time(store: RunStore) -> None:
    runs = [
        make_run(flow="triage", status="succeeded", created_at=T0),
        make_run(flow="review", status="failed", created_at=T0 + 10),
        make_run(flow="triage", status="failed", created_at=T0 + 20),
        make_run(flow="triage", status="paused", created_at=T0 + 30),
    ]
    for run in runs:
        store.create_run(run)

    def ids(**filters: Any) -> list[str]:
        return [run.run_id for run in store.list_runs(**filters).runs]

    assert ids() == [runs[3].run_id, runs[2].run_id, runs[1].run_id, runs[0].run_id]
    assert ids(flow="triage") == [runs[3].run_id, runs[2].run_id, runs[0].run_id]
    assert ids(status="failed") == [runs[2].run_id, runs[1].run_id]
    assert ids(flow="triage", status="failed") == [runs[2].run_id]
    assert ids(since=T0 + 10, until=T0 + 30) == [runs[2].run_id, runs[1].run_id]
    assert store.list_runs().next_cursor is None


def test_list_runs_pages_stay_stable_when_new_runs_arrive_between_pages(store: RunStore) -> None:
    runs = [make_run(created_at=T0 + i) for i in range(5)]
    for run in runs:
        store.create_run(run)

    first = store.list_runs(limit=2)
    assert [r.run_id for r in first.runs] == [runs[4].run_id, runs[3].run_id]
    assert first.next_cursor is not None

    store.create_run(make_run(created_at=T0 + 100))  # newer than everything: belongs before page one

    second = store.list_runs(limit=2, cursor=first.next_cursor)
    assert [r.run_id for r in second.runs] == [runs[2].run_id, runs[1].run_id]
    assert second.next_cursor is not None
    third = store.list_runs(limit=2, cursor=second.next_cursor)
    assert [r.run_id for r in third.runs] == [runs[0].run_id]
    assert third.next_cursor is None


def test_paging_through_runs_with_equal_times_neither_skips_nor_repeats(store: RunStore) -> None:
    runs = [make_run(created_at=T0) for _ in range(7)]
    for run in runs:
        store.create_run(run)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_runs(limit=3, cursor=cursor)
        seen += [r.run_id for r in page.runs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted((r.run_id for r in runs), reverse=True)


def test_a_page_that_ends_exactly_at_the_last_run_has_no_next_cursor(store: RunStore) -> None:
    for i in range(4):
        store.create_run(make_run(created_at=T0 + i))
    page = store.list_runs(limit=4)
    assert len(page.runs) == 4
    assert page.next_cursor is None


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WzEsMiwzXQ", "e30"])
def test_a_cursor_not_made_by_list_runs_is_an_error(store: RunStore, cursor: str) -> None:
    with pytest.raises(StoreError, match="invalid cursor"):
        store.list_runs(cursor=cursor)


def test_a_page_size_below_one_is_an_error(store: RunStore) -> None:
    with pytest.raises(StoreError, match="limit must be at least 1"):
        store.list_runs(limit=0)


# -- steps and attempts ---------------------------------------------------------------------------------------------


def test_a_step_round_trips_and_an_upsert_replaces_it_in_place(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    first = StepRecord(run_id=run.run_id, step_id="per_file[2]", function="summarize", kind="infer", started_at=T0)
    second = StepRecord(run_id=run.run_id, step_id="reviews.security", kind="parallel", status="waiting")
    store.upsert_step(first)
    store.upsert_step(second)
    done = first.model_copy(
        update={
            "status": "succeeded",
            "finished_at": T0 + 1,
            "duration_ms": 1000.0,
            "input": {"file": "a.py"},
            "output": {"summary": "ok"},
            "attempts": 2,
            "tokens_in": 10,
            "tokens_out": 5,
            "cost_usd": 0.001,
            "attributes": {"cache_hit": False, "path_taken": "infer"},
        }
    )
    store.upsert_step(done)
    assert store.get_steps(run.run_id) == [done, second]


def test_get_steps_of_an_unknown_run_is_empty(store: RunStore) -> None:
    assert store.get_steps("nope") == []


def test_steps_attempts_and_reviews_need_an_existing_run(store: RunStore) -> None:
    with pytest.raises(StoreError, match="unknown run 'ghost'"):
        store.upsert_step(StepRecord(run_id="ghost", step_id="a", kind="compute"))
    with pytest.raises(StoreError, match="unknown run 'ghost'"):
        store.add_attempt(AttemptRecord(run_id="ghost", step_id="a", number=1))
    with pytest.raises(StoreError, match="unknown run 'ghost'"):
        store.create_review(ReviewRecord(run_id="ghost", step_id="a", question="ok?"))


def test_an_attempt_round_trips_and_its_number_cannot_be_recorded_twice(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    attempt = AttemptRecord(
        run_id=run.run_id,
        step_id="classify",
        number=1,
        kind="refine",
        model="openai/gpt-4o-mini",
        prompt_hash="p" * 12,
        contract_hash="c" * 12,
        tokens_in=100,
        tokens_out=20,
        cost_usd=0.0003,
        duration_ms=812.5,
        started_at=T0,
        raw_output='{"label": "bug", "confidence": 0.42}',
        violations=["ensure: result.confidence > 0.7 (actual: 0.42)"],
        retry_reason="ensure",
        transport_attempts=2,
        transport_errors=["429 Too Many Requests"],
        error=None,
        backend="litellm",
    )
    store.add_attempt(attempt)
    trace = store.get_trace(run.run_id)
    assert trace is not None
    assert trace.attempts == [attempt]
    with pytest.raises(StoreError, match="attempt 1 of step 'classify' is already recorded"):
        store.add_attempt(attempt)


def test_attempt_otel_attributes_use_the_genai_names() -> None:
    attempt = AttemptRecord(
        run_id="r",
        step_id="s",
        number=2,
        model="openai/gpt-4o-mini",
        prompt_hash="0123456789ab",
        contract_hash="ba9876543210",
        tokens_in=11,
        tokens_out=7,
        cost_usd=0.25,
    )
    assert attempt.otel_attributes() == snapshot(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "openai/gpt-4o-mini",
            "gen_ai.usage.input_tokens": 11,
            "gen_ai.usage.output_tokens": 7,
            "stratum.contract_hash": "ba9876543210",
            "stratum.compiled_prompt_hash": "0123456789ab",
            "stratum.cost_usd": 0.25,
            "stratum.attempt": 2,
        }
    )


def test_otel_attributes_leave_out_missing_values_and_flag_an_unknown_cost() -> None:
    attributes = AttemptRecord(run_id="r", step_id="s", number=1).otel_attributes()
    assert attributes == snapshot(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 0,
            "gen_ai.usage.output_tokens": 0,
            "stratum.attempt": 1,
            "stratum.cost_unknown": True,
        }
    )
    assert None not in attributes.values()


# -- traces ---------------------------------------------------------------------------------------------------------


def test_get_trace_of_an_unknown_run_is_none(store: RunStore) -> None:
    assert store.get_trace("nope") is None


def test_a_trace_holds_only_its_own_runs_records(store: RunStore) -> None:
    mine, other = make_run(), make_run()
    for run in (mine, other):
        store.create_run(run)
        store.upsert_step(StepRecord(run_id=run.run_id, step_id="a", kind="human"))
        store.add_attempt(AttemptRecord(run_id=run.run_id, step_id="a", number=1))
        store.create_review(ReviewRecord(run_id=run.run_id, step_id="a", question="ok?"))
    trace = store.get_trace(mine.run_id)
    assert trace is not None
    run_ids = {s.run_id for s in trace.steps} | {a.run_id for a in trace.attempts} | {r.run_id for r in trace.reviews}
    assert run_ids == {mine.run_id}
    assert (len(trace.steps), len(trace.attempts), len(trace.reviews)) == (1, 1, 1)


def test_the_trace_json_nests_attempts_and_reviews_under_their_steps(store: RunStore) -> None:
    run = make_run(created_at=T0, plan_text="a long plan")
    store.create_run(run)
    store.upsert_step(StepRecord(run_id=run.run_id, step_id="classify", kind="infer", attempts=2, started_at=T0))
    store.upsert_step(StepRecord(run_id=run.run_id, step_id="approve", kind="human", status="waiting"))
    store.add_attempt(AttemptRecord(run_id=run.run_id, step_id="classify", number=2, started_at=T0 + 2))
    store.add_attempt(AttemptRecord(run_id=run.run_id, step_id="classify", number=1, started_at=T0 + 1))
    store.add_attempt(AttemptRecord(run_id=run.run_id, step_id="gone", number=1, started_at=T0))
    review = ReviewRecord(run_id=run.run_id, step_id="approve", question="Ship it?", created_at=T0, deadline=T0 + 60)
    store.create_review(review)

    trace = store.get_trace(run.run_id)
    assert trace is not None
    data = trace.to_json_dict()

    assert data["run_id"] == run.run_id
    assert data["created_at"] == T0
    assert data["created_at_iso"] == "2023-11-14T22:13:20.000+00:00"
    assert "plan_text" not in data
    assert trace.to_json_dict(include_plan_text=True)["plan_text"] == "a long plan"
    classify, approve = data["steps"]
    assert classify["step_id"] == "classify"
    assert classify["attempt_count"] == 2
    assert [a["number"] for a in classify["attempts"]] == [1, 2]
    assert classify["attempts"][0]["started_at_iso"] == "2023-11-14T22:13:21.000+00:00"
    assert classify["attempts"][0]["otel"]["stratum.attempt"] == 1
    assert classify["reviews"] == []
    assert approve["attempts"] == []
    assert [r["review_id"] for r in approve["reviews"]] == [review.review_id]
    assert approve["reviews"][0]["deadline_iso"] == "2023-11-14T22:14:20.000+00:00"
    assert [a["step_id"] for a in data["unattached_attempts"]] == ["gone"]
    assert "unattached_reviews" not in data


def test_a_review_whose_step_has_no_record_is_still_shown_in_the_trace(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    review = ReviewRecord(run_id=run.run_id, step_id="approve", question="?")
    store.create_review(review)
    trace = store.get_trace(run.run_id)
    assert trace is not None
    data = trace.to_json_dict()
    assert data["steps"] == []
    assert [r["review_id"] for r in data["unattached_reviews"]] == [review.review_id]


# -- reviews --------------------------------------------------------------------------------------------------------


def test_a_review_goes_from_pending_to_answered_exactly_once(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    review = ReviewRecord(
        run_id=run.run_id,
        step_id="approve",
        question="Ship it?",
        request={"schema": {"type": "boolean"}, "options": [True, False], "context": {"diff": "+1"}, "timeout": 60},
        created_at=T0,
        deadline=T0 + 60,
    )
    store.create_review(review)
    assert store.get_review(review.review_id) == review
    assert store.list_reviews() == [review]

    answered = store.answer_review(
        review.review_id, action="accept", value=True, reviewer="ana", rationale="looks good"
    )
    assert (answered.status, answered.action, answered.value) == ("answered", "accept", True)
    assert (answered.reviewer, answered.rationale) == ("ana", "looks good")
    assert answered.decided_at is not None
    assert answered.request == review.request
    assert store.get_review(review.review_id) == answered
    assert store.list_reviews() == []
    assert store.list_reviews(status="answered") == [answered]

    with pytest.raises(StoreError, match="is already answered"):
        store.answer_review(review.review_id, action="decline", value=None, reviewer="bo", rationale=None)
    assert store.get_review(review.review_id) == answered


def test_creating_the_same_review_twice_is_an_error(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    review = ReviewRecord(run_id=run.run_id, step_id="approve", question="?")
    store.create_review(review)
    with pytest.raises(StoreError, match="already recorded"):
        store.create_review(review.model_copy(update={"question": "again?"}))
    assert store.get_review(review.review_id) == review


def test_answering_an_unknown_review_is_an_error(store: RunStore) -> None:
    with pytest.raises(StoreError, match="unknown review 'nope'"):
        store.answer_review("nope", action="accept", value=1, reviewer=None, rationale=None)


def test_an_answer_with_an_invalid_action_is_refused(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    review = ReviewRecord(run_id=run.run_id, step_id="approve", question="?")
    store.create_review(review)
    with pytest.raises(StoreError, match="action"):
        store.answer_review(review.review_id, action="maybe", value=1, reviewer=None, rationale=None)  # type: ignore[arg-type]
    assert store.get_review(review.review_id) == review


@pytest.mark.parametrize("status", ["timed_out", "cancelled"])
def test_a_closed_review_cannot_be_answered_afterwards(store: RunStore, status: Any) -> None:
    run = make_run()
    store.create_run(run)
    review = ReviewRecord(run_id=run.run_id, step_id="approve", question="?")
    store.create_review(review)
    closed = store.close_review(review.review_id, status=status)
    assert closed.status == status
    assert closed.action is None
    assert closed.decided_at is not None
    with pytest.raises(StoreError, match="already"):
        store.answer_review(review.review_id, action="accept", value=1, reviewer=None, rationale=None)
    with pytest.raises(StoreError, match="already"):
        store.close_review(review.review_id, status="cancelled")


def test_list_reviews_filters_by_run_and_status_oldest_first(store: RunStore) -> None:
    a, b = make_run(), make_run()
    store.create_run(a)
    store.create_run(b)
    late = ReviewRecord(run_id=a.run_id, step_id="x", question="late", created_at=T0 + 5)
    early = ReviewRecord(run_id=a.run_id, step_id="y", question="early", created_at=T0)
    other = ReviewRecord(run_id=b.run_id, step_id="x", question="other", created_at=T0 + 1)
    for review in (late, early, other):
        store.create_review(review)
    store.close_review(other.review_id, status="timed_out")

    assert [r.question for r in store.list_reviews()] == ["early", "late"]
    assert [r.question for r in store.list_reviews(run_id=b.run_id)] == []
    assert [r.question for r in store.list_reviews(status=None)] == ["early", "other", "late"]
    assert [r.question for r in store.list_reviews(status="timed_out", run_id=b.run_id)] == ["other"]


def test_get_review_of_an_unknown_review_is_none(store: RunStore) -> None:
    assert store.get_review("nope") is None


# -- cache ----------------------------------------------------------------------------------------------------------


def test_the_cache_returns_what_was_put_and_none_on_a_miss(store: RunStore) -> None:
    assert store.cache_get("k") is None
    store.cache_put("k", {"label": "bug", "confidence": 0.9}, contract_hash="c1")
    assert store.cache_get("k") == {"label": "bug", "confidence": 0.9}
    store.cache_put("k", ["replaced"], contract_hash="c2")
    assert store.cache_get("k") == ["replaced"]
    assert store.cache_get("other") is None


# -- lifecycle ------------------------------------------------------------------------------------------------------


def test_a_closed_store_refuses_calls_and_may_be_closed_again(store: RunStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_run("x")
    with pytest.raises(StoreError, match="closed"):
        store.create_run(make_run())


def test_threads_sharing_one_store_lose_no_writes(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)

    def write(worker: int) -> None:
        for i in range(25):
            store.upsert_step(StepRecord(run_id=run.run_id, step_id=f"w{worker}[{i}]", kind="compute"))
            store.add_attempt(AttemptRecord(run_id=run.run_id, step_id=f"w{worker}[{i}]", number=1))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    trace = store.get_trace(run.run_id)
    assert trace is not None
    assert (len(trace.steps), len(trace.attempts)) == (100, 100)


# -- SQLite specifics -----------------------------------------------------------------------------------------------


def test_sqlite_store_creates_its_folder_and_uses_wal_at_the_latest_schema(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "stratum.db"
    with SQLiteRunStore(db):
        pass
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(_sqlite._MIGRATIONS)
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("where", "index"),
    [("", "runs_by_created"), ("WHERE flow = 'x'", "runs_by_flow"), ("WHERE status = 'paused'", "runs_by_status")],
)
def test_listing_runs_is_served_by_an_index(tmp_path: Path, where: str, index: str) -> None:
    db = tmp_path / "stratum.db"
    SQLiteRunStore(db).close()
    raw = sqlite3.connect(db)
    try:
        plan = raw.execute(
            f"EXPLAIN QUERY PLAN SELECT run_id FROM runs {where} ORDER BY created_at DESC, run_id DESC LIMIT 5"
        ).fetchall()
    finally:
        raw.close()
    details = " ".join(row[-1] for row in plan)
    assert index in details
    assert "TEMP B-TREE" not in details


def test_opening_an_older_database_applies_the_missing_migrations_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "stratum.db"
    run = make_run()
    with SQLiteRunStore(db) as old:
        old.create_run(run)
    v1 = len(_sqlite._MIGRATIONS)
    monkeypatch.setattr(
        _sqlite,
        "_MIGRATIONS",
        (*_sqlite._MIGRATIONS, "ALTER TABLE runs ADD COLUMN note TEXT;\nCREATE TABLE extra (x INTEGER);"),
    )
    with SQLiteRunStore(db) as new:
        assert new.get_run(run.run_id) == run
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == v1 + 1
        assert "note" in [row[1] for row in raw.execute("PRAGMA table_info(runs)")]
        assert raw.execute("SELECT count(*) FROM extra").fetchone()[0] == 0
    finally:
        raw.close()


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "stratum.db"
    SQLiteRunStore(db).close()
    v1 = len(_sqlite._MIGRATIONS)
    monkeypatch.setattr(
        _sqlite, "_MIGRATIONS", (*_sqlite._MIGRATIONS, "CREATE TABLE extra (x INTEGER);\nNOT SQL AT ALL;")
    )
    with pytest.raises(StoreError, match="cannot open the run store"):
        SQLiteRunStore(db)
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == v1
        assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0
    finally:
        raw.close()


def test_a_database_from_a_newer_stratum_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "stratum.db"
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError) as caught:
        SQLiteRunStore(db)
    known = len(_sqlite._MIGRATIONS)
    assert str(caught.value) == (
        f"the run store {db} has schema version 99, newer than this Stratum knows ({known}); upgrade Stratum to open it"
    )
    assert caught.value.path == str(db)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "stratum.db"
    db.write_text("this is not sqlite, just text long enough to fill a header" * 20, encoding="utf-8")
    with pytest.raises(StoreError, match="cannot open the run store"):
        SQLiteRunStore(db)


def test_a_review_answered_through_one_connection_cannot_be_answered_through_another(shared: str) -> None:
    with closing(open_run_store(shared)) as first, closing(open_run_store(shared)) as second:
        run = make_run()
        first.create_run(run)
        review = ReviewRecord(run_id=run.run_id, step_id="approve", question="?")
        first.create_review(review)
        second.answer_review(review.review_id, action="accept", value=1, reviewer="b", rationale=None)
        with pytest.raises(StoreError, match="already answered"):
            first.answer_review(review.review_id, action="decline", value=None, reviewer="a", rationale=None)
        assert first.get_review(review.review_id) == second.get_review(review.review_id)


@pytest.mark.slow
def test_writes_in_one_process_are_visible_to_another(shared: str) -> None:
    with closing(open_run_store(shared)) as parent:
        run = make_run()
        parent.create_run(run)
        review = ReviewRecord(run_id=run.run_id, step_id="approve", question="Ship it?")
        parent.create_review(review)

        child = run_child(
            f"""
            import sys
            from stratum_core.backends import open_run_store
            from stratum_core.store import StepRecord

            store = open_run_store(sys.argv[1])
            run = store.get_run({run.run_id!r})
            assert run is not None and run.flow == "triage", run
            store.upsert_step(StepRecord(run_id=run.run_id, step_id="classify", kind="infer", status="succeeded"))
            store.answer_review({review.review_id!r}, action="accept", value=True, reviewer="child", rationale=None)
            store.update_run(run.run_id, status="succeeded", output={{"done": True}})
            store.close()
            """,
            shared,
        )
        assert child.returncode == 0, child.stderr

        assert [s.step_id for s in parent.get_steps(run.run_id)] == ["classify"]
        answered = parent.get_review(review.review_id)
        assert answered is not None
        assert answered.reviewer == "child"
        finished = parent.get_run(run.run_id)
        assert finished is not None
        assert (finished.status, finished.output) == ("succeeded", {"done": True})


@pytest.mark.slow
def test_a_step_written_just_before_sigkill_is_readable_afterwards(shared: str) -> None:
    child = run_child(
        """
        import os, signal, sys
        from stratum_core.backends import open_run_store
        from stratum_core.store import RunRecord, StepRecord

        store = open_run_store(sys.argv[1])
        run = RunRecord(run_id="killed", flow="triage", plan_hash="h", plan_text="p", input={}, status="paused")
        store.create_run(run)
        store.upsert_step(StepRecord(run_id="killed", step_id="classify", kind="infer", status="succeeded",
                                     output={"label": "bug"}))
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        shared,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with closing(open_run_store(shared)) as store:
        run = store.get_run("killed")
        assert run is not None
        assert run.status == "paused"
        steps = store.get_steps("killed")
        assert [(s.step_id, s.status, s.output) for s in steps] == [("classify", "succeeded", {"label": "bug"})]


def test_text_with_a_lone_surrogate_is_stored_not_refused(store: RunStore) -> None:
    # a model may answer with "\udca7" escapes: the raw answer is kept (made valid), never a crash of the run
    run = make_run()
    store.create_run(run)
    store.add_attempt(AttemptRecord(run_id=run.run_id, step_id="s", number=1, raw_output="a\udca7b"))
    store.upsert_step(StepRecord(run_id=run.run_id, step_id="s", kind="infer", output={"text": "a\udca7b"}))
    (attempt,) = list((store.get_trace(run.run_id) or pytest.fail()).attempts)
    assert attempt.raw_output is not None and attempt.raw_output.startswith("a") and attempt.raw_output.endswith("b")
    (step,) = store.get_steps(run.run_id)
    assert isinstance(step.output, dict) and step.output["text"].startswith("a")
