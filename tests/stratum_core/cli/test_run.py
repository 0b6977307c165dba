"""`stratum run`, `stratum resume` and `stratum runs` from the shell."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stratum_core.cli import main
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM

PLAN = """
version: "1"
contracts:
  Sentiment:
    label: {type: string, enum: [positive, negative, neutral]}
    confidence: {type: number, minimum: 0, maximum: 1}
  Approval:
    approved: {type: boolean}
functions:
  classify:
    mode: infer
    intent: Classify the tone of the text.
    input: {text: {type: string}}
    output: Sentiment
    ensure: ["result.confidence > 0.7"]
    retries: 1
  approve:
    mode: human
    question: Is this right?
    input: {label: {type: string}}
    output: Approval
flows:
  triage:
    input: {text: {type: string}}
    steps:
      - {id: sentiment, function: classify, inputs: {text: $.input.text}}
  checked:
    input: {text: {type: string}}
    steps:
      - {id: sentiment, function: classify, inputs: {text: $.input.text}}
      - {id: check, function: approve, inputs: {label: $.steps.sentiment.output.label}}
"""


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "triage.stratum.yaml"
    path.write_text(PLAN, encoding="utf-8")
    return path


def run_cli(*args: str) -> int:
    return main(list(args))


def test_run_prints_the_output_and_exits_0(
    plan_file: Path, tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_llm.enqueue({"label": "negative", "confidence": 0.9})
    store = str(tmp_path / "runs.db")
    code = run_cli(
        "run",
        str(plan_file),
        "triage",
        "--input",
        '{"text": "late again"}',
        "--model",
        fake_llm.model,
        "--api-base",
        fake_llm.url,
        "--store",
        store,
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out) == {"label": "negative", "confidence": 0.9}
    assert "sentiment" in captured.err  # the trace summary table


def test_a_failed_run_exits_1_and_names_the_error(
    plan_file: Path, tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_llm.add_rule("Classify", {"label": "neutral", "confidence": 0.2})
    code = run_cli(
        "run",
        str(plan_file),
        "triage",
        "--input",
        '{"text": "hm"}',
        "--model",
        fake_llm.model,
        "--api-base",
        fake_llm.url,
        "--store",
        str(tmp_path / "runs.db"),
    )
    assert code == 1
    assert "PostconditionFailed" in capsys.readouterr().err


def test_bad_input_and_bad_plans_exit_2(plan_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "runs.db")
    assert run_cli("run", str(plan_file), "triage", "--input", '{"text": 5}', "--store", store) == 2
    assert "text" in capsys.readouterr().err
    broken = tmp_path / "broken.stratum.yaml"
    broken.write_text("version: '1'\nflows: {f: {steps: [{id: a, function: nope}]}}\n", encoding="utf-8")
    assert run_cli("run", str(broken), "f", "--store", store) == 2
    assert "nope" in capsys.readouterr().err


def test_without_a_terminal_a_human_step_pauses_and_resume_finishes_it(
    plan_file: Path, tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_llm.enqueue({"label": "positive", "confidence": 0.95})
    database = tmp_path / "runs.db"
    code = run_cli(
        "run",
        str(plan_file),
        "checked",
        "--input",
        '{"text": "great"}',
        "--model",
        fake_llm.model,
        "--api-base",
        fake_llm.url,
        "--store",
        str(database),
    )
    assert code == 3
    assert "stratum resume" in capsys.readouterr().err
    with SQLiteRunStore(database) as store:
        (review,) = store.list_reviews()
        store.answer_review(review.review_id, action="accept", value={"approved": True}, reviewer="ann", rationale=None)
    assert run_cli("resume", review.run_id, "--store", str(database)) == 0
    assert json.loads(capsys.readouterr().out) == {"approved": True}
    assert len(fake_llm.requests) == 1


def test_runs_lists_and_shows_traces_as_json(
    plan_file: Path, tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_llm.enqueue({"label": "negative", "confidence": 0.3}, {"label": "negative", "confidence": 0.8})
    store = str(tmp_path / "runs.db")
    run_cli(
        "run",
        str(plan_file),
        "triage",
        "--input",
        '{"text": "x"}',
        "--model",
        fake_llm.model,
        "--api-base",
        fake_llm.url,
        "--store",
        store,
    )
    capsys.readouterr()
    assert run_cli("runs", "--store", store, "--format", "json") == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["flow"] == "triage" and run["status"] == "succeeded"
    assert run_cli("runs", "show", run["run_id"], "--store", store, "--format", "json") == 0
    trace = json.loads(capsys.readouterr().out)
    (step,) = trace["steps"]
    assert [len(a["violations"]) for a in step["attempts"]] == [1, 0]
    assert run_cli("runs", "show", "nope", "--store", store) == 1


def test_force_model_with_a_model_name_runs_every_step_on_it(
    tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    pinned = tmp_path / "pinned.stratum.yaml"
    pinned.write_text(
        PLAN.replace("    retries: 1\n", "    retries: 1\n    model: anthropic/claude-3-5-haiku-latest\n", 1)
    )
    fake_llm.enqueue({"label": "neutral", "confidence": 0.8})
    code = run_cli(
        "run", str(pinned), "triage", "--input", '{"text": "ok"}', "--api-base", fake_llm.url,
        "--store", str(tmp_path / "runs.db"), "--force-model", fake_llm.model,
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert [request["model"] for request in fake_llm.requests] == ["fake-llm"]


GROUP_PLAN = """
version: "1"
contracts:
  Note:
    text: {type: string}
functions:
  note:
    mode: infer
    intent: Write a note.
    input: {topic: {type: string}}
    output: Note
  shout:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "text.upper()"
flows:
  notes:
    input: {topic: {type: string}}
    steps:
      - id: reviews
        parallel:
          steps:
            - {id: first, function: note, inputs: {topic: $.input.topic}}
            - {id: second, function: note, inputs: {topic: $.input.topic}}
      - id: never
        function: shout
        when: "len(input.topic) > 100"
        inputs: {text: $.input.topic}
    result: $.steps.reviews.output
"""
SPINNER_FRAMES = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


def test_with_output_piped_each_step_is_one_line_and_no_spinner_frame_is_printed(
    tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "notes.stratum.yaml"
    plan.write_text(GROUP_PLAN, encoding="utf-8")
    fake_llm.add_rule(lambda body: True, {"text": "ok"})
    code = run_cli(
        "run", str(plan), "notes", "--input", '{"topic": "tea"}', "--model", fake_llm.model, "--api-base",
        fake_llm.url, "--store", str(tmp_path / "runs.db"),
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert not SPINNER_FRAMES & set(err), err
    lines = err.splitlines()
    assert "reviews.first (infer): succeeded" in lines and "reviews.second (infer): succeeded" in lines
    assert {"reviews (parallel): succeeded (1/2)", "reviews (parallel): succeeded (2/2)"} & set(lines)
    assert {"never: skipped (1/2)", "never: skipped (2/2)"} & set(lines)


async def test_at_a_terminal_every_row_nested_ones_too_ends_in_its_final_state(fake_llm: FakeLLM) -> None:
    from io import StringIO

    from rich.console import Console
    from rich.progress import Progress

    from stratum_core.cli._run import _ProgressObserver
    from stratum_core.engine import Engine, EngineConfig
    from stratum_core.plan import load_plan_text
    from stratum_core.store import MemoryRunStore

    fake_llm.add_rule(lambda body: True, {"text": "ok"})
    console = Console(file=StringIO(), force_terminal=True, width=100)
    engine = Engine(store=MemoryRunStore(), config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url))
    with Progress(console=console) as progress:
        observer = _ProgressObserver(progress, console)
        result = await engine.run(load_plan_text(GROUP_PLAN), "notes", {"topic": "tea"}, observer=observer)
    assert result.status == "succeeded", result.error
    rows = {re.sub(r" \(\d/2\)$", "", task.description): task.finished for task in progress.tasks}
    assert rows == {
        "reviews.first (infer): [green]succeeded[/]": True,
        "reviews.second (infer): [green]succeeded[/]": True,
        "reviews (parallel): [green]succeeded[/]": True,
        "never: [dim]skipped[/]": True,
    }
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    assert {step.step_id: step.kind for step in trace.steps}["never"] == "compute"  # its real kind, not 'call'
