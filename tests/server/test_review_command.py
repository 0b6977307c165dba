from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from mcp import Client
from server_helpers import make_server

from server.cli import main
from stratum_core.backends import open_run_store
from stratum_core.store import SQLiteRunStore


def pause_a_run(store: Path | str, flow: str = "approve_text") -> tuple[str, str]:
    """A run of `flow` paused on its human step, recorded in `store` (a file or a database URL): (run_id, review_id)."""

    async def go() -> tuple[str, str]:
        server = make_server(store=store) if isinstance(store, Path) else make_server(store_url=store)
        try:
            async with Client(server, mode="legacy") as client:
                paused = await client.call_tool(flow, {"text": "cli"})
        finally:
            server.close()
        assert paused.meta is not None
        return paused.meta["stratum/run_id"], paused.meta["stratum/review_id"]

    return anyio.run(go)


def test_review_list_shows_pending_reviews_with_their_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.db"
    run_id, review_id = pause_a_run(store)
    assert main(["review", "list", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert review_id in out and run_id in out and "Approve this text?" in out and '"approved"' in out
    assert main(["review", "list", "--store", str(store), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["review_id"] == review_id and listed["status"] == "pending"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_review_answer_records_the_decision_and_resumes_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, request: pytest.FixtureRequest
) -> None:
    store: Path | str = tmp_path / "runs.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    run_id, review_id = pause_a_run(store)
    code = main(["review", "answer", review_id, "--value", '{"approved": true}', "--store", str(store)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"run {run_id}: succeeded" in out and '"approved": true' in out
    with closing(open_run_store(str(store))) as runs:
        review = runs.get_review(review_id)
        run = runs.get_run(run_id)
    assert review is not None and review.action == "accept" and review.value == {"approved": True}
    assert run is not None and run.status == "succeeded" and run.output == {"text": "cli", "approved": True}
    assert main(["review", "list", "--store", str(store)]) == 0
    assert "no pending reviews" in capsys.readouterr().out


def test_review_answer_can_decline_and_only_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "runs.db"
    run_id, review_id = pause_a_run(store)
    assert main(["review", "answer", review_id, "--decline", "--no-resume", "--store", str(store)]) == 0
    with SQLiteRunStore(store) as runs:
        review = runs.get_review(review_id)
        run = runs.get_run(run_id)
    assert review is not None and review.action == "decline"
    assert run is not None and run.status == "paused"  # recorded only: a server or `answer` resumes it later


def test_review_answer_takes_a_bare_value_for_a_primitive_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.db"
    run_id, review_id = pause_a_run(store, "pick_color")
    assert main(["review", "answer", review_id, "--value", '"green"', "--store", str(store)]) == 0
    with SQLiteRunStore(store) as runs:
        run = runs.get_run(run_id)
    assert run is not None and run.output == "green"


@pytest.mark.parametrize(
    ("value", "message"),
    [("{not json", "--value is not JSON"), ('{"approved": "maybe"}', "approved: 'maybe' is not of type 'boolean'")],
)
def test_review_answer_refuses_a_value_that_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    store = tmp_path / "runs.db"
    _, review_id = pause_a_run(store)
    assert main(["review", "answer", review_id, "--value", value, "--store", str(store)]) == 2
    assert message in capsys.readouterr().err


def test_review_commands_explain_a_missing_store_or_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["review", "list", "--store", str(tmp_path / "none.db")]) == 1
    assert "no run store" in capsys.readouterr().err
    store = tmp_path / "runs.db"
    pause_a_run(store)
    assert main(["review", "answer", "nope", "--cancel", "--store", str(store)]) == 1
    assert "no review with id 'nope'" in capsys.readouterr().err
