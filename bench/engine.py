"""Scheduler overhead per step: 200 sequential compute steps, and 1,000 independent ones, SQLite store on; the
fixed cost of one run of a one-step flow, with the SQLite store and with the in-memory store (wall and CPU,
alternating); and the cost per step of flows of 100 to 10,000 independent steps (it should stay flat).

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
ONE_STEP_RUNS = 2000
WIDE = (100, 1_000, 5_000, 10_000)


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


async def _one_step_runs(sqlite: RunStore, memory: RunStore) -> tuple[float, float, float, float]:
    """Median wall and CPU time (ms) of one run of a one-step flow with each store, alternating blocks of 50 runs."""
    plan = load_plan_text(_plan(1, chained=False), source="bench.stratum.yaml")
    engines = {"sqlite": Engine(store=sqlite), "memory": Engine(store=memory)}
    wall: dict[str, list[float]] = {name: [] for name in engines}
    cpu: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        for _ in range(100):
            await engine.run(plan, "chain", {"n": 0})
    for _ in range(ONE_STEP_RUNS // 50):  # alternate so both see the same machine load
        for name, engine in engines.items():
            for _ in range(50):
                started, started_cpu = time.perf_counter(), time.process_time()
                await engine.run(plan, "chain", {"n": 0})
                cpu[name].append((time.process_time() - started_cpu) * 1000)
                wall[name].append((time.perf_counter() - started) * 1000)
    return (
        statistics.median(wall["sqlite"]),
        statistics.median(wall["memory"]),
        statistics.median(cpu["sqlite"]),
        statistics.median(cpu["memory"]),
    )


async def _wide(steps: int, store_path: Path) -> tuple[float, float]:
    """Median wall and CPU time per step (µs) of a flow of `steps` independent compute steps, SQLite store on."""
    plan = load_plan_text(_plan(steps, chained=False), source="bench.stratum.yaml")
    repeats = max(3, min(REPEATS, 20_000 // steps))
    wall, cpu = [], []
    with SQLiteRunStore(store_path) as store:
        engine = Engine(store=store)
        await engine.run(plan, "chain", {"n": 0})
        for _ in range(repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = await engine.run(plan, "chain", {"n": 0})
            cpu.append((time.process_time() - started_cpu) * 1e6 / steps)
            wall.append((time.perf_counter() - started) * 1e6 / steps)
            assert result.status == "succeeded", result.error
    return statistics.median(wall), statistics.median(cpu)


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
            sqlite_ms, memory_ms, sqlite_cpu, memory_cpu = anyio.run(_one_step_runs, store, MemoryRunStore())
        print(
            f"one run of a one-step compute flow ({ONE_STEP_RUNS:,} runs each, alternating): wall median "
            f"{sqlite_ms:.3f} ms SQLite, {memory_ms:.3f} ms in memory; CPU median {sqlite_cpu:.3f} ms SQLite, "
            f"{memory_cpu:.3f} ms in memory: SQLite/memory {sqlite_cpu / memory_cpu:.2f}x (goal <= 1.2)"
        )
        figures = {steps: anyio.run(_wide, steps, Path(folder) / f"wide{steps}.db") for steps in WIDE}
        print(
            "independent compute steps, per step (wall median / CPU median, SQLite store on): "
            + ", ".join(f"{steps:,}: {wall:.0f} / {cpu:.0f} us" for steps, (wall, cpu) in figures.items())
        )
        first, last = figures[WIDE[0]][1], figures[WIDE[-1]][1]
        print(f"  CPU per step at {WIDE[-1]:,} steps / at {WIDE[0]:,} steps: {last / first:.2f} (goal: flat, ~1.0)")


if __name__ == "__main__":
    main()
