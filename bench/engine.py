"""Scheduler overhead per step: 200 sequential compute steps, and 1,000 independent ones, SQLite store on; and the
fixed cost of one run of a one-step flow, with the SQLite store and with the in-memory store.

Run: python -m bench engine
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import anyio

from stratum_core.engine import Engine
from stratum_core.plan import load_plan_text
from stratum_core.store import MemoryRunStore, RunStore, SQLiteRunStore

REPEATS = 7


def _plan(steps: int, *, chained: bool) -> str:
    lines = [
        'version: "1"',
        "functions:",
        "  inc:",
        "    mode: compute",
        "    input: {n: {type: integer}}",
        "    output: {type: integer}",
        '    expr: "n + 1"',
        "flows:",
        "  chain:",
        "    input: {n: {type: integer}}",
        "    steps:",
    ]
    for i in range(steps):
        source = f"$.steps.s{i - 1}.output" if chained and i else "$.input.n"
        lines.append(f"      - {{id: s{i}, function: inc, inputs: {{n: {source}}}}}")
    return "\n".join(lines) + "\n"


async def _measure(text: str, steps: int, store_path: Path) -> list[float]:
    plan = load_plan_text(text, source="bench.stratum.yaml")
    per_step_ms = []
    with SQLiteRunStore(store_path) as store:
        engine = Engine(store=store)
        for _ in range(REPEATS):
            started = time.perf_counter()
            result = await engine.run(plan, "chain", {"n": 0})
            elapsed = time.perf_counter() - started
            assert result.status == "succeeded", result.error
            per_step_ms.append(elapsed * 1000 / steps)
    return per_step_ms


async def _one_step_run_ms(store: RunStore) -> float:
    plan = load_plan_text(_plan(1, chained=False), source="bench.stratum.yaml")
    engine = Engine(store=store)
    for _ in range(100):
        await engine.run(plan, "chain", {"n": 0})
    times = []
    for _ in range(1000):
        started = time.perf_counter()
        await engine.run(plan, "chain", {"n": 0})
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    """Print the median scheduler overhead per step for both shapes, and the fixed cost of a run."""
    with tempfile.TemporaryDirectory() as folder:
        for name, steps, chained in (
            ("200 sequential compute steps", 200, True),
            ("1,000 independent compute steps", 1000, False),
        ):
            figures = anyio.run(_measure, _plan(steps, chained=chained), steps, Path(folder) / f"{steps}.db")
            print(
                f"{name}: median {statistics.median(figures):.3f} ms/step "
                f"(min {min(figures):.3f}, max {max(figures):.3f}; {REPEATS} runs, SQLite store on)"
            )
        with SQLiteRunStore(Path(folder) / "one.db") as store:
            sqlite_ms = anyio.run(_one_step_run_ms, store)
    memory_ms = anyio.run(_one_step_run_ms, MemoryRunStore())
    print(
        f"one run of a one-step compute flow: median {sqlite_ms:.3f} ms with the SQLite store, "
        f"{memory_ms:.3f} ms with the in-memory store (1,000 runs each)"
    )


if __name__ == "__main__":
    main()
