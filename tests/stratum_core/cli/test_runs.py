"""`stratum runs`: filters, `summary`, and `show --svg`, on a store filled with hand-made runs."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stratum_core.cli import main
from stratum_core.store import AttemptRecord, RunRecord, SQLiteRunStore, StepRecord

HOUR = 3600.0


@pytest.fixture
def database(tmp_path: Path) -> str:
    """Runs of two flows over the last weeks; 'recent-ok' has a step with two attempts."""
    now = time.time()
    path = tmp_path / "runs.db"

    def run(run_id: str, flow: str, status: str, hours_ago: float, ms: float | None, **fields: Any) -> RunRecord:
        return RunRecord(
            run_id=run_id,
            flow=flow,
            status=status,
            plan_hash="h",
            plan_text="",
            input={},
            created_at=now - hours_ago * HOUR,
            duration_ms=ms,
            **fields,
        )

    with SQLiteRunStore(path) as store:
        for record in [
            run("recent-ok", "triage", "succeeded", 1, 1200, tokens_in=100, tokens_out=20, cost_usd=0.01),
            run(
                "recent-fail",
                "triage",
                "failed",
                2,
                800,
                error={"type": "PostconditionFailed", "message": "m", "step_id": "s"},
            ),
            run("day-old", "reply", "succeeded", 30, 400, tokens_in=5, tokens_out=5),
            run(
                "month-old",
                "triage",
                "failed",
                24 * 30,
                100,
                error={"type": "BudgetExceeded", "message": "m", "step_id": "s"},
            ),
        ]:
            store.create_run(record)
        started = now - HOUR
        store.upsert_step(
            StepRecord(
                run_id="recent-ok",
                step_id="classify",
                kind="infer",
                status="succeeded",
                started_at=started,
                finished_at=started + 1.2,
                attempts=2,
                tokens_in=100,
                tokens_out=20,
                cost_usd=0.01,
            )
        )
        store.add_attempt(
            AttemptRecord(
                run_id="recent-ok",
                step_id="classify",
                number=1,
                model="openai/m",
                started_at=started,
                duration_ms=500,
                violations=["ensure: x (actual: 1)"],
            )
        )
        store.add_attempt(
            AttemptRecord(
                run_id="recent-ok",
                step_id="classify",
                number=2,
                model="openai/m",
                started_at=started + 0.6,
                duration_ms=500,
                retry_reason="ensure",
            )
        )
    return str(path)


def listed(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["runs", *args, "--format", "json"]) == 0
    return [run["run_id"] for run in json.loads(capsys.readouterr().out)]


def test_runs_are_filtered_by_flow_status_and_period(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", database]
    assert listed(capsys, *store) == ["recent-ok", "recent-fail", "day-old", "month-old"]
    assert listed(capsys, *store, "--flow", "triage", "--status", "failed") == ["recent-fail", "month-old"]
    assert listed(capsys, *store, "--since", "24h") == ["recent-ok", "recent-fail"]
    assert listed(capsys, *store, "--since", "7d", "--until", "90m") == ["recent-fail", "day-old"]
    today = time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400))
    assert listed(capsys, *store, "--until", today, "--flow", "reply") == ["day-old"]


def test_a_bad_period_is_a_usage_error_that_shows_the_accepted_forms(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "--store", database, "--since", "last week"]) == 2
    assert "duration ago (30m, 24h, 7d" in capsys.readouterr().err
    assert main(["runs", "list", "--store", database, "--svg", "x.svg"]) == 2
    assert main(["runs", "summary", "abc", "--store", database]) == 2


def test_summary_covers_the_last_week_by_default(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "summary", "--store", database, "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    overall = summary["overall"]
    assert overall["runs"] == 3  # the month-old run is outside the default 7 days
    assert overall["failure_rate"] == pytest.approx(1 / 3)
    assert overall["failures"] == [{"type": "PostconditionFailed", "runs": 1, "rate": pytest.approx(1 / 3)}]
    assert overall["p50_ms"] == 800 and overall["tokens_in"] == 105 and overall["cost_usd"] == pytest.approx(0.01)
    assert summary["flows"]["triage"]["runs"] == 2 and summary["flows"]["reply"]["runs"] == 1
    assert summary["since"] == pytest.approx(time.time() - 7 * 24 * HOUR, abs=60)

    assert main(["runs", "summary", "--store", database, "--since", "60d", "--format", "json"]) == 0
    everything = json.loads(capsys.readouterr().out)["overall"]
    assert everything["runs"] == 4 and [f["type"] for f in everything["failures"]] == [
        "BudgetExceeded",
        "PostconditionFailed",
    ]


def test_summary_as_a_table_names_flows_and_error_types(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "summary", "--store", database, "--since", "60d"]) == 0
    out = capsys.readouterr().out
    for text in ("triage", "reply", "all flows", "failures by error type", "PostconditionFailed", "50.0%"):
        assert text in out


def test_show_writes_the_runs_timeline_as_svg(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "timeline.svg"
    assert main(["runs", "show", "recent-ok", "--store", database, "--svg", str(out)]) == 0
    assert "timeline written to" in capsys.readouterr().err
    root = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert [r.get("data-step") for r in root.iter(f"{ns}rect") if "step-bar" in (r.get("class") or "")] == ["classify"]
    assert [m.get("data-attempt") for m in root.iter(f"{ns}line") if m.get("class") == "retry-mark"] == ["2"]

    assert main(["runs", "show", "recent-ok", "--store", database, "--svg", "-"]) == 0
    assert ET.fromstring(capsys.readouterr().out).get("data-run-id") == "recent-ok"


def test_the_run_list_says_when_each_run_started_in_local_time(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "--store", database]) == 0
    out = capsys.readouterr().out
    assert "started" in out
    with SQLiteRunStore(database) as store:
        run = store.get_run("recent-ok")
    assert run is not None
    shown = datetime.fromtimestamp(run.created_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert shown in out


def test_show_of_a_failed_run_prints_its_error_and_the_rejected_attempts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.db"
    violation = "ensure: result.confidence > 0.7 (actual: result.confidence = 0.42)"
    with SQLiteRunStore(path) as store:
        store.create_run(
            RunRecord(
                run_id="bad",
                flow="triage",
                status="failed",
                plan_hash="h",
                plan_text="",
                input={},
                error={
                    "type": "PostconditionFailed",
                    "message": f"still not met after 2 attempts: {violation}",
                    "step_id": "classify",
                    "violations": [violation],
                    "history": [[violation], [violation]],
                },
            )
        )
        store.upsert_step(StepRecord(run_id="bad", step_id="classify", kind="infer", status="failed", attempts=2))
        for number in (1, 2):
            store.add_attempt(AttemptRecord(run_id="bad", step_id="classify", number=number, violations=[violation]))
    assert main(["runs", "show", "bad", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"failed: PostconditionFailed at step 'classify': still not met after 2 attempts: {violation}" in out
    assert f"classify #1: {violation}" in out and f"classify #2: {violation}" in out


async def test_show_says_which_backend_ran_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stratum_core.engine import Engine
    from stratum_core.plan import load_plan_text

    plan = load_plan_text(
        'version: "1"\nfunctions:\n  twice: {mode: compute, input: {x: {type: integer}}, output: {type: integer}, '
        'expr: "x * 2"}\nflows:\n  echo:\n    input: {x: {type: integer}}\n    output: {type: integer}\n'
        "    steps: [{id: twice, function: twice, inputs: {x: $.input.x}}]\n    result: $.steps.twice.output\n",
        source="<echo>",
    )
    path = tmp_path / "runs.db"
    with SQLiteRunStore(path) as store:
        result = await Engine(store=store).run(plan, "echo", {"x": 2})
        assert result.status == "succeeded", result.error
        run = store.get_run(result.run_id)
        assert run is not None and run.attributes["backend"] == {"name": "local"}
        store.create_run(
            run.model_copy(
                update={
                    "run_id": "on-temporal",
                    "attributes": {"backend": {"name": "temporal", "task_queue": "q", "workflow_id": "w"}},
                }
            )
        )
    assert main(["runs", "show", result.run_id, "--store", str(path)]) == 0
    assert "backend: local\n" in capsys.readouterr().out
    assert main(["runs", "show", "on-temporal", "--store", str(path)]) == 0
    assert "backend: temporal (task_queue q, workflow_id w)" in capsys.readouterr().out
