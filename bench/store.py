"""What the run store costs a run: one run of a one-step compute flow with each store (in memory, SQLite, PostgreSQL
on a loopback port), wall and CPU, alternating blocks so all see the same machine load; and the store calls alone.

PostgreSQL is the server named by STRATUM_BENCH_POSTGRES (a URL), else a throwaway cluster started here from the
Debian binaries (as the tests start it, but with fsync on: every commit reaches the disk, as in production). It is
timed twice: as the store opens it (`postgres`: synchronous_commit on, each write waits for its disk flush) and with
`?options=-csynchronous_commit%3Doff` (`pg-async`: SQLite's guarantee, no flush waited for).

Run: python -m bench store
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import anyio

from bench.engine import _plan
from stratum_core.backends import open_run_store
from stratum_core.engine import Engine
from stratum_core.plan import load_plan_text
from stratum_core.store import RunRecord, RunStore, StepRecord, new_holder

RUNS = 1000
BLOCK = 50
CALLS = 500


async def _one_step_runs(stores: dict[str, RunStore]) -> dict[str, tuple[float, float]]:
    """Median wall and CPU ms of one run per store, in alternating blocks of BLOCK runs after a warm-up."""
    plan = load_plan_text(_plan(1, chained=False), source="bench.stratum.yaml")  # bench engine's one-step flow
    engines = {name: Engine(store=store) for name, store in stores.items()}
    wall: dict[str, list[float]] = {name: [] for name in engines}
    cpu: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        for _ in range(BLOCK):
            await engine.run(plan, "chain", {"n": 0})
    for _ in range(RUNS // BLOCK):
        for name, engine in engines.items():
            for _ in range(BLOCK):
                started, started_cpu = time.perf_counter(), time.process_time()
                result = await engine.run(plan, "chain", {"n": 0})
                cpu[name].append((time.process_time() - started_cpu) * 1000)
                wall[name].append((time.perf_counter() - started) * 1000)
                assert result.status == "succeeded", result.error
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in engines}


def _calls(store: RunStore) -> dict[str, float]:
    """Median wall µs of the calls a step makes, one at a time."""
    run = RunRecord(flow="bench", plan_hash="h", plan_text="p", input={"n": 0}, status="paused")
    store.create_run(run)
    holder = new_holder()
    timed: dict[str, Callable[[int], object]] = {
        "upsert_step": lambda i: store.upsert_step(StepRecord(run_id=run.run_id, step_id=f"s{i}", kind="compute")),
        "renew_lease": lambda i: store.renew_lease(run.run_id, holder, ttl=60),
        "get_run": lambda i: store.get_run(run.run_id),
        "update_run": lambda i: store.update_run(run.run_id, tokens_in=i),
    }
    store.acquire_lease(run.run_id, holder, ttl=60)
    figures = {}
    for name, call in timed.items():
        samples = []
        for i in range(CALLS):
            started = time.perf_counter()
            call(i)
            samples.append((time.perf_counter() - started) * 1e6)
        figures[name] = statistics.median(samples)
    started = time.perf_counter()
    store.get_trace(run.run_id)
    figures[f"get_trace ({CALLS} steps)"] = (time.perf_counter() - started) * 1e6
    return figures


def main() -> None:
    """Print the one-step run's cost and the store calls' latency with each store."""
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("STRATUM_BENCH_POSTGRES")
        if not url:
            from tests.fixtures.postgres import PostgresServer

            server = PostgresServer(durable=True)
            stack.callback(server.stop)
            server.start()
            url = server.fresh_url()
        relaxed = url + ("&" if "?" in url else "?") + "options=-csynchronous_commit%3Doff"
        specs = {"memory": "memory:", "sqlite": str(Path(folder) / "runs.db"), "postgres": url, "pg-async": relaxed}
        stores = {name: open_run_store(spec) for name, spec in specs.items()}
        for store in stores.values():
            stack.callback(store.close)
        figures = anyio.run(_one_step_runs, stores)
        memory_cpu = figures["memory"][1]
        print(f"one run of a one-step compute flow ({RUNS:,} runs each, alternating): median wall / CPU")
        for name, (wall, cpu) in figures.items():
            print(f"  {name:8} {wall:7.3f} / {cpu:.3f} ms  (CPU {cpu / memory_cpu:.2f}x memory)")
        print(f"store calls, median wall of {CALLS} (get_trace: once):")
        for name in ("sqlite", "postgres", "pg-async"):
            calls = _calls(stores[name])
            print(f"  {name:8} " + ", ".join(f"{call} {us:.0f} us" for call, us in calls.items()))


if __name__ == "__main__":
    main()
