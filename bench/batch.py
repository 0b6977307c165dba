"""Batches: items/s and client CPU per item for 1,000 items at 200 ms model latency, in this process at several
concurrency levels, and on a local Ray cluster (2 CPUs, loopback only, no dashboard; skipped without `stratum[ray]`).

The test LLM runs in a process of its own, so the client's CPU (this process; on Ray, this process plus the
workers) is not mixed with the server's. Each configuration is one run of a fresh batch (a new store).

Run: python -m bench batch [ITEMS]
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from stratum_core.batch import Batch, ItemRunner, items_from_lines
from stratum_core.engine import Engine, EngineConfig
from stratum_core.plan import load_plan_text
from stratum_core.store import SQLiteRunStore

ITEMS = 1000
LATENCY_S = 0.2
LOCAL_CONCURRENCY = (8, 32, 128)
RAY_CONCURRENCY = 64
PLAN = """
version: "1"
contracts:
  Label: {label: {type: string, enum: [pos, neg]}, confidence: {type: number}}
functions:
  classify:
    mode: infer
    intent: Classify the sentiment of the text.
    input: {text: {type: string}}
    output: Label
    ensure: ["result.confidence > 0.5"]
flows:
  triage:
    input: {text: {type: string}}
    output: Label
    steps:
      - {id: classify, function: classify, inputs: {text: $.input.text}}
"""


def _serve(port: Any, stop: Any) -> None:
    from stratum_core.testing import FakeLLM, Reply

    with FakeLLM() as fake:
        fake.latency = LATENCY_S
        fake.add_rule(lambda body: True, Reply(json={"label": "pos", "confidence": 0.9}))
        port.value = int(fake.url.split(":")[2].split("/")[0])
        stop.wait()


async def _one(config: EngineConfig, items: int, concurrency: int, runner: ItemRunner | None) -> dict[str, float]:
    plan = load_plan_text(PLAN)
    batch_items = list(items_from_lines(({"text": f"ticket {i}"} for i in range(items)), plan, "triage"))
    with tempfile.TemporaryDirectory() as folder, SQLiteRunStore(Path(folder) / "runs.db") as store:
        engine = Engine(store=store, config=config)
        warm = list(items_from_lines([{"text": "warm-up"}], plan, "triage"))
        await Batch(engine, plan, "triage", warm).run()  # LiteLLM imported and connected before the clock
        batch = Batch(engine, plan, "triage", batch_items, concurrency=concurrency, runner=runner)
        start = getattr(runner, "start", None)
        if start is not None:  # Ray's worker actors started, and ready, before the clock
            await start(batch)
        cpu, wall = time.process_time(), time.perf_counter()
        summary = await batch.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.succeeded == items, summary
    cpu += getattr(runner, "worker_cpu_s", 0.0)
    return {"items_s": items / wall, "cpu_ms": cpu * 1000 / items, "wall_s": wall}


def main() -> None:
    items = int(sys.argv[2]) if len(sys.argv) > 2 else ITEMS
    context = multiprocessing.get_context("spawn")
    port, stop = context.Value("i", 0), context.Event()
    server = context.Process(target=_serve, args=(port, stop), daemon=True)
    server.start()
    while not port.value:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port.value}/v1"
    config = EngineConfig(model="openai/fake-llm", api_base=url, max_concurrency=16)
    print(f"{items} items, model latency {LATENCY_S * 1000:.0f} ms, one run each (machine: {os.cpu_count()} cores)")
    print(f"{'where':<24} {'concurrency':>11} {'items/s':>8} {'CPU ms/item':>12} {'wall s':>7}")
    try:
        for concurrency in LOCAL_CONCURRENCY:
            row = anyio.run(_one, config, items, concurrency, None)
            _print("this process", concurrency, row)
        try:
            from stratum_core.batch import RayItemRunner, start_local_ray

            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            start_local_ray(num_cpus=2)
        except Exception as error:
            print(f"Ray: not measured ({type(error).__name__}: {error})")
            return
        row = anyio.run(_one, config, items, RAY_CONCURRENCY, RayItemRunner("auto", config=config, workers=2))
        _print("Ray, 2 worker actors", RAY_CONCURRENCY, row)
    finally:
        stop.set()
        server.join(timeout=10)


def _print(where: str, concurrency: int, row: dict[str, float]) -> None:
    print(f"{where:<24} {concurrency:>11} {row['items_s']:>8.1f} {row['cpu_ms']:>12.2f} {row['wall_s']:>7.1f}")
