"""The showcase plan from the shell, as a newcomer runs it: three commands, three working folders, one run.

`plans/` is copied to a temporary folder; `stratum run` starts `support_triage` from one folder and pauses at the
person's approval; `stratum review answer` from another folder records the decision and resumes the run, whose
`call:` steps (support_tools.py beside the plan) must still import; the delivery comes out. Real processes, the
console script, a real SQLite file and the test LLM over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REPLY = {"body": "Hello Grace, thank you for telling us. The export works again.", "tone": "warm"}
TICKET = {"email": "grace@example.com", "text": "Thanks, the export works great now!"}
PROCESS_GUARD_S = 300  # a bound on a stuck process, not a speed target


def copy_plans(to: Path) -> Path:
    """plans/ copied to `to`, with time budgets widened: each process imports LiteLLM, slow on a busy machine."""
    shutil.copytree(ROOT / "plans", to, ignore=shutil.ignore_patterns("__pycache__"))
    plan = to / "support_triage.stratum.yaml"
    text = plan.read_text(encoding="utf-8")
    widened = re.sub(r"\bms: \d+", "ms: 900000", text)
    assert widened != text
    plan.write_text(widened, encoding="utf-8")
    return plan


def stratum(*args: str, cwd: Path, llm: FakeLLM) -> subprocess.CompletedProcess[str]:
    """The installed `stratum` console script (not `python -m`, which would put the working folder on sys.path)."""
    script = Path(sys.executable).with_name("stratum")
    env = {
        **os.environ,
        "LITELLM_OFFLINE_MODE": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "STRATUM_MODEL": llm.model,
        "STRATUM_API_BASE": llm.url,
        "STRATUM_API_KEY": "test",
        "STRATUM_PRICES": f"{llm.model}=0.1,0.4",  # the plan has cost budgets: the test LLM needs a price
    }
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(script), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PROCESS_GUARD_S,
        check=False,
    )


def test_support_triage_pauses_in_one_folder_and_delivers_after_an_answer_from_another(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, REPLY)
    copy_plans(tmp_path / "project" / "plans")
    starter, answerer = tmp_path / "starter", tmp_path / "elsewhere" / "answerer"
    starter.mkdir()
    answerer.mkdir(parents=True)
    store = tmp_path / "runs.db"
    plan = os.path.relpath(tmp_path / "project" / "plans" / "support_triage.stratum.yaml", starter)

    started = stratum(
        "run",
        plan,
        "triage",
        "--input",
        json.dumps(TICKET),
        "--force-model",
        "--store",
        str(store),
        cwd=starter,
        llm=fake_llm,
    )
    assert started.returncode == 3, started.stderr  # paused: nobody at a terminal to ask
    assert "paused" in started.stderr
    with SQLiteRunStore(store) as runs:
        (review,) = runs.list_reviews(status="pending")
        assert review.step_id == "approval"

    answered = stratum(
        "review", "answer", review.review_id, "--value", '{"decision": "send"}', "--store", str(store),
        cwd=answerer, llm=fake_llm,
    )  # fmt: skip
    assert answered.returncode == 0, answered.stderr
    assert f"run {review.run_id}: succeeded" in answered.stdout
    delivery = json.loads(answered.stdout[answered.stdout.index("{") :])
    assert delivery["sent"] is True
    assert delivery["body"] == REPLY["body"]
    assert delivery["reference"].startswith("MSG-")
    with SQLiteRunStore(store) as runs:
        run = runs.get_run(review.run_id)
        assert run is not None and run.status == "succeeded"
        assert run.output == delivery


def test_stratum_resume_from_another_folder_finishes_the_run_with_its_call_steps(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, REPLY)
    copy_plans(tmp_path / "plans")
    store = tmp_path / "runs.db"
    started = stratum(
        "run", "plans/support_triage.stratum.yaml", "triage", "--input", json.dumps(TICKET), "--force-model",
        "--store", str(store), cwd=tmp_path, llm=fake_llm,
    )  # fmt: skip
    assert started.returncode == 3, started.stderr
    with SQLiteRunStore(store) as runs:
        (review,) = runs.list_reviews(status="pending")
    recorded = stratum(
        "review", "answer", review.review_id, "--value", '{"decision": "send"}', "--no-resume", "--store", str(store),
        cwd=Path("/"), llm=fake_llm,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = stratum("resume", review.run_id, "--store", str(store), cwd=elsewhere, llm=fake_llm)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["sent"] is True
