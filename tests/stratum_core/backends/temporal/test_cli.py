"""`stratum run --backend temporal` starts the run on Temporal; a `stratum worker` subprocess executes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stratum_core.backends import TemporalSettings
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM
from tests.plans.test_plans_run import answer_summary
from tests.stratum_core.backends.temporal.conftest import (
    TEMPORAL_TEST_TIMEOUT,
    WorkerProcess,
    start_worker,
    worker_environment,
)

PLANS = Path(__file__).resolve().parents[4] / "plans"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(TEMPORAL_TEST_TIMEOUT, method="thread")]


def test_stratum_run_with_the_temporal_backend_is_executed_by_a_stratum_worker(
    settings: TemporalSettings, store_path: Path, fake_llm: FakeLLM, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    fake_llm.add_rule(lambda body: True, answer_summary)
    start_worker(workers, settings, store_path, fake_llm, tmp_path)
    document = '{"document": {"title": "Economy", "body": "Prices rise. Wages lag."}}'
    done = subprocess.run(
        [
            *(sys.executable, "-m", "server.cli", "run", str(PLANS / "summarize.stratum.yaml"), "summarize"),
            *("--input", document, "--store", f"sqlite:///{store_path}", "--backend", "temporal"),
            *("--temporal-address", settings.address, "--task-queue", settings.task_queue),
        ],
        env=worker_environment(fake_llm),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with SQLiteRunStore(store_path) as store:
        (run,) = store.list_runs().runs
        assert run.status == "succeeded"
        assert run.attributes["backend"]["name"] == "temporal"  # type: ignore[index,call-overload]
        assert {s.step_id for s in store.get_steps(run.run_id)} == {"points", "summary", "headline", "words", "digest"}
