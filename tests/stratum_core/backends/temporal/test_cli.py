"""`stratum run --backend temporal` starts the run on Temporal; a `stratum worker` subprocess executes it. They share
the run store: a SQLite file (one host), or a PostgreSQL database (what processes on several hosts share)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from stratum_core.backends import TemporalSettings, open_run_store
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


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, store_path: Path) -> str:
    """The store the CLI and the worker both name with --store."""
    return f"sqlite:///{store_path}" if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


def test_stratum_run_with_the_temporal_backend_is_executed_by_a_stratum_worker(
    settings: TemporalSettings, shared_store: str, fake_llm: FakeLLM, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    fake_llm.add_rule(lambda body: True, answer_summary)
    start_worker(workers, settings, shared_store, fake_llm, tmp_path)
    document = '{"document": {"title": "Economy", "body": "Prices rise. Wages lag."}}'
    done = subprocess.run(
        [
            *(sys.executable, "-m", "server.cli", "run", str(PLANS / "summarize.stratum.yaml"), "summarize"),
            *("--input", document, "--store", shared_store, "--backend", "temporal"),
            *("--temporal-address", settings.address, "--task-queue", settings.task_queue),
        ],
        env=worker_environment(fake_llm),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with closing(open_run_store(shared_store)) as store:
        (run,) = store.list_runs().runs
        assert run.status == "succeeded"
        assert run.attributes["backend"]["name"] == "temporal"  # type: ignore[index,call-overload]
        assert {s.step_id for s in store.get_steps(run.run_id)} == {"points", "summary", "headline", "words", "digest"}
