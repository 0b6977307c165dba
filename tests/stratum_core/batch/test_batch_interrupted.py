"""`stratum batch` stopped half way (Ctrl-C, then a kill) and run again: it completes and re-runs no done item."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from batch_helpers import EXPECTED, ITEMS, MODEL, PRICE, done_items, script_faults, write_items, write_plan

from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM

REPO = Path(__file__).parents[3]
pytestmark = pytest.mark.slow


def start_batch(tmp_path: Path, fake: FakeLLM) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LITELLM_OFFLINE_MODE": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "STRATUM_MAX_RETRY_WAIT": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "server.cli", "batch", str(tmp_path / "triage.stratum.yaml"), "triage"]
    command += ["--input", str(tmp_path / "items.jsonl"), "--output", str(tmp_path / "results.jsonl")]
    command += ["--concurrency", "4", "--expect", "label", "--store", str(tmp_path / "runs.db")]
    command += ["--model", MODEL, "--api-base", fake.url, "--price", f"{MODEL}={PRICE[0]},{PRICE[1]}"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_half_way(process: subprocess.Popen[str], fake: FakeLLM, requests: int, how: signal.Signals) -> int:
    assert fake.wait_for_requests(requests, timeout=300), "the batch did not get going"
    process.send_signal(how)
    process.communicate(timeout=120)
    return process.returncode


def test_a_batch_interrupted_then_killed_completes_on_the_next_run_without_repeating_done_items(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    requests = script_faults(fake_llm)
    fake_llm.latency = 0.02
    write_plan(tmp_path)
    write_items(tmp_path)
    results = tmp_path / "results.jsonl"

    # Ctrl-C: the items in flight are cancelled and recorded; the results file holds every item done
    assert stop_half_way(start_batch(tmp_path, fake_llm), fake_llm, ITEMS // 3, signal.SIGINT) == 130
    first = done_items(results)
    assert 0 < len(first) < ITEMS
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        statuses = Counter(run.status for run in store.list_runs(limit=ITEMS).runs)
    assert statuses["running"] == 0  # nothing left half recorded
    assert statuses["succeeded"] + statuses["failed"] == len(first)

    # a kill leaves no chance to tidy up: the next run still skips what is done
    seen_before_kill = Counter(requests)
    killed = stop_half_way(start_batch(tmp_path, fake_llm), fake_llm, 2 * ITEMS // 3, signal.SIGKILL)
    assert killed == -signal.SIGKILL
    second = done_items(results)  # whole lines only, whatever the kill cut
    assert set(first) <= set(second)
    assert all(requests[index] == seen_before_kill[index] for index in first)

    seen_before_last = Counter(requests)
    last = start_batch(tmp_path, fake_llm)
    out, err = last.communicate(timeout=600)
    assert last.returncode == 0, err
    summary = json.loads(out)
    assert (summary["succeeded"], summary["failed"], summary["failures"]) == (
        EXPECTED["succeeded"],
        EXPECTED["failed"],
        EXPECTED["failures"],
    )
    assert summary["reused"] >= len(second)
    final = done_items(results)
    assert list(final) == list(range(ITEMS))
    for index in second:  # no done item was asked of the model again
        assert requests[index] == seen_before_last[index]
        assert final[index]["run_id"] == second[index]["run_id"]
