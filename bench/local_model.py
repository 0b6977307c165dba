"""The five-step plan run server-side in-process: on the test LLM, and on the embedded local model.

- test LLM: the scripted OpenAI-compatible test server (stratum_core.testing.FakeLLM) through LiteLLM, answering at
  once with fixed, valid outputs: the engine's and LiteLLM's own cost for five model calls.
- local model: `--model local` (SmolLM2-135M in llama.cpp, in-process), through the engine's default client. Real
  inference on the CPU; a 135M model breaks contracts, so attempts count the engine's retries too.

Both use the plan, text and answers of `python -m bench agent_round_trips` (its calling-agent leg is there), an
engine with a SQLite store, and report the median wall time of a run after warm-up, and attempts (model calls) per
run from the trace. The local model's load time is measured on its own, before any run.
Run: python -m bench local_model
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import anyio

from bench.agent_round_trips import ANSWERS, FLOW, INTENTS, PLAN, TEXT
from stratum_core.engine import Engine, EngineConfig
from stratum_core.llm import LiteLLMClient, LLMClient, default_model, register_model
from stratum_core.llm._local import INSTALL_HINT, shared_local_model
from stratum_core.plan import load_plan
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM

FAKE_RUNS = 20
LOCAL_RUNS = 5
WARMUP = 2


@dataclass
class Figures:
    """Per-run measurements of one configuration."""

    wall_ms: list[float] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


async def _measure(config: EngineConfig, llm: LLMClient | None, store_path: Path, runs: int) -> Figures:
    plan = load_plan(PLAN)
    figures = Figures()
    with SQLiteRunStore(store_path) as store:
        engine = Engine(store=store, llm=llm, config=config)
        for _ in range(WARMUP):  # the first run imports LiteLLM and opens the connection
            await engine.run(plan, FLOW, {"text": TEXT})
        for _ in range(runs):
            started = time.perf_counter()
            result = await engine.run(plan, FLOW, {"text": TEXT})
            figures.wall_ms.append((time.perf_counter() - started) * 1000)
            trace = store.get_trace(result.run_id)
            assert trace is not None
            figures.attempts.append(len(trace.attempts))
            figures.tokens_out.append(sum(a.tokens_out for a in trace.attempts))
            failed = f" ({type(result.error).__name__} at {result.error.step_id})" if result.error else ""
            figures.outcomes[f"{result.status}{failed}"] += 1
    return figures


def _line(name: str, figures: Figures, runs: int) -> str:
    wall = figures.wall_ms
    outcomes = ", ".join(f"{count}x {outcome}" for outcome, count in figures.outcomes.most_common())
    return (
        f"  {name:<34} wall median {statistics.median(wall):8.1f} ms (min {min(wall):.1f}, max {max(wall):.1f})  "
        f"attempts/run {statistics.median(figures.attempts):.0f}  tokens out/run "
        f"{statistics.median(figures.tokens_out):.0f}  [{runs} runs: {outcomes}]"
    )


def main() -> None:
    """Print wall time and attempts per run of the five-step plan on the test LLM and on the local model."""
    print(f"local_model: {PLAN.name} (5 infer steps), in-process engine, SQLite store, after {WARMUP} warm-up runs")
    with tempfile.TemporaryDirectory() as name, FakeLLM() as fake:
        folder = Path(name)
        for step, intent in INTENTS.items():
            fake.add_rule(intent, ANSWERS[step])
        register_model(fake.model)
        config = EngineConfig(model=fake.model, api_base=fake.url)
        figures = anyio.run(_measure, config, LiteLLMClient(), folder / "fake.db", FAKE_RUNS)
        print(_line("test LLM (FakeLLM via LiteLLM)", figures, FAKE_RUNS))

        if default_model() != "local":
            print(f"  local model: not installed ({INSTALL_HINT})")
            return
        model = shared_local_model()
        started = time.perf_counter()
        model.start()
        load_s = time.perf_counter() - started
        print(f"  local model load: {load_s:.2f} s (n_threads={model.n_threads}, n_parallel={model.n_parallel})")
        figures = anyio.run(_measure, EngineConfig(model="local"), None, folder / "local.db", LOCAL_RUNS)
        print(_line("local model (--model local)", figures, LOCAL_RUNS))


if __name__ == "__main__":
    main()
