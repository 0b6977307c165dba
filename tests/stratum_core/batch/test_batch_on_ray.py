"""Batches on a local Ray cluster (2 CPUs, no dashboard, loopback only): the same results as in this process, and a
worker lost mid-batch loses nothing finished while its items run elsewhere."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from batch_helpers import (
    EXPECTED,
    EXPECTED_CORRECT,
    ITEMS,
    MODEL,
    PRICE,
    done_items,
    script_faults,
    write_items,
    write_plan,
)

from stratum_core.batch import Batch, Expectation, ItemResult, RayItemRunner, read_items
from stratum_core.cli import main
from stratum_core.engine import Engine, EngineConfig
from stratum_core.plan import load_plan
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One local cluster for the whole session (starting one takes seconds and half a gigabyte)."""
    from stratum_core.batch import LOOPBACK_ENV, start_local_ray

    # Read when Ray is imported: loopback only, and no auth token written under the home folder for a test cluster.
    for name, value in {**LOOPBACK_ENV, "RAY_AUTH_MODE": "disabled"}.items():
        os.environ.setdefault(name, value)
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'stratum[ray]'; CI installs it)")
    start_local_ray(num_cpus=2)
    assert "node:127.0.0.1" in ray.cluster_resources()
    yield ray
    ray.shutdown()


def ray_batch(tmp_path: Path, fake: FakeLLM, store: SQLiteRunStore) -> tuple[Batch, RayItemRunner]:
    config = EngineConfig(model=MODEL, api_base=fake.url, prices={MODEL: PRICE}, max_retry_wait=1.0)
    plan = load_plan(write_plan(tmp_path))
    runner = RayItemRunner("auto", config=config, workers=2)
    items = read_items(write_items(tmp_path), plan, "triage")
    batch = Batch(
        Engine(store=store, config=config),
        plan,
        "triage",
        items,
        concurrency=8,
        expect=Expectation.parse("label"),
        runner=runner,
    )
    return batch, runner


async def test_a_batch_on_ray_gives_the_same_results_as_in_this_process(
    ray_cluster: Any, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    requests = script_faults(fake_llm)
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        batch, _ = ray_batch(tmp_path, fake_llm, store)
        summary = await batch.run()

        assert (summary.succeeded, summary.failed, summary.failures) == (
            EXPECTED["succeeded"],
            EXPECTED["failed"],
            EXPECTED["failures"],
        )
        assert (summary.judged, summary.correct) == (ITEMS, EXPECTED_CORRECT)
        runs = store.list_runs(batch=batch.id, limit=ITEMS + 1).runs
        assert len(runs) == ITEMS and all(run.lease_holder is None for run in runs)
        failed = next(run for run in runs if run.attributes["batch"]["index"] == 7)  # type: ignore[index,call-overload]
        trace = store.get_trace(failed.run_id)
        assert trace is not None and [a.number for a in trace.attempts] == [1, 2]
        assert "result.confidence > 0.5" in trace.attempts[-1].violations[0]
        assert summary.tokens == sum(run.tokens_in + run.tokens_out for run in runs)

        # run again on this process: everything done on Ray is read back, nothing is asked again
        before = sum(requests.values())
        again = await Batch(batch.engine, batch.plan, "triage", batch.items).run()
        assert again.reused == ITEMS and sum(requests.values()) == before


async def test_a_worker_lost_mid_batch_loses_no_finished_item_and_its_items_run_elsewhere(
    ray_cluster: Any, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    script_faults(fake_llm)
    fake_llm.latency = 0.05
    killed: list[int] = []

    with SQLiteRunStore(tmp_path / "runs.db") as store:
        batch, runner = ray_batch(tmp_path, fake_llm, store)
        done_before_kill: dict[int, str] = {}
        pids: list[int] = []

        async def on_result(result: ItemResult) -> None:
            if killed:
                return
            if not pids:
                pids.extend(await runner.worker_pids())
            done_before_kill[result.index] = str(result.run_id)
            busy = [i for i, slot in enumerate(runner.slots) if slot.running > 0]
            if len(done_before_kill) >= ITEMS // 4 and busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])

        summary = await batch.run(on_result)

        assert killed and runner.lost >= 1
        assert (summary.succeeded, summary.failed, summary.failures) == (
            EXPECTED["succeeded"],
            EXPECTED["failed"],
            EXPECTED["failures"],
        )
        runs = store.list_runs(batch=batch.id, limit=ITEMS + 1).runs
        assert len(runs) == ITEMS  # one run per item: the lost ones were recorded once, from the worker that ran them
        by_index = {run.attributes["batch"]["index"]: run.run_id for run in runs}  # type: ignore[index,call-overload]
        assert all(by_index[index] == run_id for index, run_id in done_before_kill.items())


async def test_items_in_flight_on_ray_when_the_batch_is_cancelled_are_recorded_as_cancelled(
    ray_cluster: Any, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    script_faults(fake_llm)
    fake_llm.latency = 0.05
    delivered: list[ItemResult] = []

    with SQLiteRunStore(tmp_path / "runs.db") as store:
        batch, runner = ray_batch(tmp_path, fake_llm, store)

        async def on_result(result: ItemResult) -> None:  # Ctrl-C as the first item ends, with others on workers
            delivered.append(result)
            if any(slot.running for slot in runner.slots):
                scope.cancel()

        with anyio.CancelScope() as scope:
            await batch.run(on_result)

        cancelled = [result for result in delivered if result.status == "cancelled"]
        assert cancelled and scope.cancelled_caught
        runs = {run.run_id: run for run in store.list_runs(batch=batch.id, limit=ITEMS + 1).runs}
        assert {runs[str(result.run_id)].status for result in cancelled} == {"cancelled"}
        assert all(runs[str(result.run_id)].error["type"] == "RunCancelled" for result in cancelled)  # type: ignore[index]


def test_stratum_batch_with_ray_writes_the_same_results_file(
    ray_cluster: Any, tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    script_faults(fake_llm)
    plan, items = write_plan(tmp_path), write_items(tmp_path, 20)
    out = tmp_path / "results.jsonl"
    options = ["--model", MODEL, "--api-base", fake_llm.url, "--store", str(tmp_path / "runs.db")]
    options += ["--price", f"{MODEL}={PRICE[0]},{PRICE[1]}", "--ray", "auto", "--ray-workers", "2"]
    code = main(
        ["batch", str(plan), "triage", "--input", str(items), "--output", str(out), "--expect", "label", *options]
    )

    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert (summary["succeeded"], summary["failed"], summary["correct"]) == (16, 4, 14)
    assert summary["failures"] == {"ParseFailure": 2, "PostconditionFailed": 2}
    assert sorted(done_items(out)) == list(range(20))
