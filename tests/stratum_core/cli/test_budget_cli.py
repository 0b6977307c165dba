"""Budgets from the shell: a cold `stratum run` keeps start-up off the clock; `resume --budget`; prices; warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stratum_core.cli import main
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Reply
from tests.fixtures.budget_plans import ONCE, twice

REPO = Path(__file__).parents[3]

ONE_STEP = ONCE

TWO_STEPS = twice("{tokens: 400}")


def flat(text: str) -> str:
    """Console text with rich's line wrapping undone."""
    return " ".join(text.split())


def write(tmp_path: Path, text: str, name: str = "plan.stratum.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_cold_run_counts_none_of_its_start_up_against_its_time_budget(tmp_path: Path, fake_llm: FakeLLM) -> None:
    """A fresh interpreter imports LiteLLM (seconds on a busy machine): none of that counts against `ms`.

    What counted is compared with the process's own wall time, measured in the same run, not with a fixed figure:
    start-up is most of a cold run, so had it counted, the budget would show most of the wall time.
    """
    plan = write(tmp_path, ONE_STEP.replace("BUDGET", "{ms: 600000}"))
    fake_llm.enqueue(Reply(json={"text": "hi"}))
    env = {
        **os.environ,
        "LITELLM_OFFLINE_MODE": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "server.cli", "run", str(plan), "once", "--input", '{"topic": "tea"}']
    command += ["--model", fake_llm.model, "--api-base", fake_llm.url, "--store", str(tmp_path / "runs.db")]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    wall_ms = (time.perf_counter() - started) * 1000

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"text": "hi"}
    assert len(fake_llm.requests) == 1
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        [run] = store.list_runs().runs
    counted = run.attributes["budget"]["ms_used"]
    assert 0 < counted < wall_ms / 2, (counted, wall_ms)


def test_resume_with_a_larger_budget_finishes_a_run_that_stopped_on_it(
    tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, TWO_STEPS)
    store = str(tmp_path / "runs.db")
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=300, completion_tokens=50))
    options = ["--model", fake_llm.model, "--api-base", fake_llm.url, "--store", store]

    assert main(["run", str(plan), "twice", *options]) == 1
    assert "BudgetExceeded" in flat(capsys.readouterr().err)
    with SQLiteRunStore(store) as runs:
        (run,) = runs.list_runs().runs
    assert main(["resume", run.run_id, *options]) == 1  # a failed run resumes only with a new budget
    assert "resumes with a larger one: --budget" in flat(capsys.readouterr().err)

    assert main(["resume", run.run_id, "--budget", "tokens=5000", *options]) == 0
    assert json.loads(capsys.readouterr().out) == {"text": "ok"}
    assert len(fake_llm.requests) == 2  # `first` is not run again
    with SQLiteRunStore(store) as runs:
        trace = runs.get_trace(run.run_id)
    assert trace is not None and trace.run.status == "succeeded"
    assert [a.step_id for a in trace.attempts] == ["first", "second"]


def test_a_malformed_budget_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", "some-run", "--budget", "dollars=3", "--store", str(tmp_path / "runs.db")]) == 2
    assert "--budget: expected ms=N, usd=X or tokens=N" in capsys.readouterr().err


def test_a_price_given_on_the_command_line_is_used(
    tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, ONE_STEP.replace("BUDGET", "{usd: 0.05}"))
    store = str(tmp_path / "runs.db")
    model = "openai/in-house-model"
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=1000, completion_tokens=1000))
    options = ["--model", model, "--api-base", fake_llm.url, "--store", store]

    assert main(["run", str(plan), "once", "--input", '{"topic": "tea"}', *options]) == 1
    assert f"model '{model}' has no known price" in flat(capsys.readouterr().err)
    assert fake_llm.requests == []

    assert main(["run", str(plan), "once", "--input", '{"topic": "tea"}', *options, "--price", f"{model}=1,3"]) == 0
    with SQLiteRunStore(store) as runs:
        latest = runs.list_runs().runs[0]
    assert latest.cost_usd == pytest.approx(1000 * 1e-6 + 1000 * 3e-6)


def test_validate_warns_about_an_unpriced_model_under_a_cost_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_MODEL", "openai/in-house-model")
    priced = write(
        tmp_path,
        ONE_STEP.replace("BUDGET", "{usd: 0.05}").replace("retries: 0", "model: gpt-4o-mini"),
        "a.stratum.yaml",
    )
    unpriced = write(tmp_path, ONE_STEP.replace("BUDGET", "{usd: 0.05}"), "b.stratum.yaml")
    allowed = write(tmp_path, ONE_STEP.replace("BUDGET", "{usd: 0.05, unpriced: allow}"), "c.stratum.yaml")

    assert main(["validate", str(priced), str(unpriced), str(allowed)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert (
        f"{unpriced}: functions.talk.model: warning: model 'openai/in-house-model' has no known price, and flow 'once' "
        "has a cost budget: its calls will be refused" in err
    )
    assert "3 plans valid" in err


def test_runs_show_and_the_timeline_show_what_was_reserved_and_spent(
    tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, ONE_STEP.replace("BUDGET", "{usd: 0.05, tokens: 20000}"))
    store = str(tmp_path / "runs.db")
    model = "openai/in-house-model"
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=1000, completion_tokens=500))
    options = ["--model", model, "--api-base", fake_llm.url, "--store", store, "--price", f"{model}=1,3"]
    assert main(["run", str(plan), "once", "--input", '{"topic": "tea"}', *options]) == 0
    with SQLiteRunStore(store) as runs:
        trace = runs.get_trace(runs.list_runs().runs[0].run_id)
    assert trace is not None
    (attempt,) = trace.attempts
    assert attempt.reserved_tokens is not None and attempt.reserved_usd is not None
    capsys.readouterr()

    assert main(["runs", "show", trace.run.run_id, "--store", store]) == 0
    shown = flat(capsys.readouterr().out)
    assert f"{attempt.reserved_tokens} tok / ${attempt.reserved_usd:.6f}" in shown  # the step's reservation
    assert "budget: spent 1500 tokens, $0.002500; reserved" in shown

    assert main(["runs", "show", trace.run.run_id, "--store", store, "--svg", "-"]) == 0
    svg = capsys.readouterr().out
    assert f"reserved {attempt.reserved_tokens:,} tokens / ${attempt.reserved_usd:.6f}" in svg
    assert "$0.0025 · reserved" in svg  # spent, then reserved, in the header
