"""50 independent infer steps with 200 ms latency each: wall time over the critical path (one call's latency).

Two figures: through Stratum's model client (`LiteLLMClient`) to the test LLM over HTTP (the real path), and through
an in-process client that only sleeps for the latency (the scheduler's own overlap, without the client's CPU cost per
call). The test LLM runs in a subprocess, as a model server would: its own CPU is not this process's. The CPU time
of this process per step is printed too (it varies less than the wall time with the machine's load).

Run: python -m bench parallel
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import anyio

from stratum_core.engine import Engine, EngineConfig
from stratum_core.llm import LiteLLMClient, LLMClient, LLMRequest, LLMResponse, register_model
from stratum_core.plan import load_plan_text
from stratum_core.store import SQLiteRunStore

STEPS = 50
LATENCY = 0.2
REPEATS = 5
MODEL = "openai/fake-llm"
SERVER = """\
import sys
from stratum_core.testing import FakeLLM
fake = FakeLLM().start()
fake.latency = float(sys.argv[1])
print(fake.url, flush=True)
sys.stdin.read()
"""


def _plan() -> str:
    lines = [
        'version: "1"',
        "contracts:",
        "  Answer:",
        "    text: {type: string}",
        "functions:",
        "  ask:",
        "    mode: infer",
        "    intent: Answer briefly.",
        "    input: {n: {type: integer}}",
        "    output: Answer",
        "    retries: 0",
        "flows:",
        "  fan:",
        "    input: {}",
        "    max_concurrency: 64",
        "    steps:",
    ]
    lines += [f"      - {{id: s{i}, function: ask, inputs: {{n: {i}}}}}" for i in range(STEPS)]
    return "\n".join(lines) + "\n"


class SleepingClient:
    """Answers every request after `LATENCY` seconds, without any HTTP: the engine's share of the overhead."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        await anyio.sleep(LATENCY)
        return LLMResponse(
            content='{"text": "ok"}',
            model=request.model,
            tokens_in=10,
            tokens_out=5,
            cost_usd=0.0,
            duration_ms=LATENCY * 1000,
            transport_attempts=1,
            transport_errors=(),
            structured_output="json_schema",
        )


async def _measure(url: str, store_path: Path, client: LLMClient) -> tuple[list[float], float]:
    register_model(MODEL)
    plan = load_plan_text(_plan(), source="bench.stratum.yaml")
    ratios = []
    with SQLiteRunStore(store_path) as store:
        engine = Engine(store=store, llm=client, config=EngineConfig(model=MODEL, api_base=url, max_concurrency=64))
        await engine.run(plan, "fan", {})  # warm up: the first LiteLLM call imports and connects
        cpu = time.process_time()
        for _ in range(REPEATS):
            started = time.perf_counter()
            result = await engine.run(plan, "fan", {})
            elapsed = time.perf_counter() - started
            assert result.status == "succeeded", result.error
            ratios.append(elapsed / LATENCY)
        cpu = time.process_time() - cpu
    return ratios, cpu / (REPEATS * STEPS)


def main() -> None:
    """Print the median ratio of wall time to the critical path (one call's latency)."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(LATENCY)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        _report(url)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _report(url: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, client in (
            ("LiteLLMClient -> test LLM over HTTP", LiteLLMClient()),
            ("in-process client (engine only)", SleepingClient()),
        ):
            ratios, cpu = anyio.run(_measure, url, Path(folder) / f"{len(name)}.db", client)
            print(
                f"{STEPS} independent infer steps, {LATENCY * 1000:.0f} ms latency each, {name}: wall/critical "
                f"path median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}; "
                f"{REPEATS} runs); this process's CPU {cpu * 1000:.2f} ms per step"
            )


if __name__ == "__main__":
    main()
