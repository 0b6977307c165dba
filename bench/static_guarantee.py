"""The static guarantee, measured: generate thousands of plans, run every one the checker accepts against a model
answering random schema-conforming values, and count the runs that failed for another reason than a condition
false on the data or a budget (violations; the goal is 0).

Run from the repository root: python -m bench static_guarantee [COUNT]   (default 3,000 generated plans)
"""

from __future__ import annotations

import collections
import random
import sys
import time

import anyio

from stratum_core.errors import Problem
from tests.fixtures.static_guarantee import generate_plan, listed, load, run_plan, violation

COUNT = 3_000


async def _measure(count: int) -> None:
    started = time.perf_counter()
    accepted = 0
    outcomes: collections.Counter[str] = collections.Counter()
    violations: list[tuple[int, str]] = []
    at_listed: list[tuple[int, str]] = []
    with_checks = 0
    for seed in range(count):
        rng = random.Random(seed)
        checks: list[Problem] = []
        plan = load(generate_plan(rng), checks)
        if plan is None:
            continue
        accepted += 1
        with_checks += bool(checks)
        result = await run_plan(plan, rng)
        outcomes[result.status if result.error is None else type(result.error).__name__] += 1
        found = violation(result)
        if found is not None and listed(result, checks):
            at_listed.append((seed, found))
        elif found is not None:
            violations.append((seed, found))
    elapsed = time.perf_counter() - started
    print(f"{count} plans generated, {accepted} accepted by the checker and run, {count - accepted} refused")
    print("outcomes: " + ", ".join(f"{name} {n}" for name, n in outcomes.most_common()))
    print(f"{with_checks} accepted plans have run-time checks listed by --strict; {len(at_listed)} runs failed at one")
    for seed, found in at_listed[:5]:
        print(f"  seed {seed}: {found[:300]}")
    print(f"violations: {len(violations)} (goal 0); {elapsed:.1f} s in all")
    for seed, found in violations[:20]:
        print(f"  seed {seed}: {found[:300]}")


def main() -> None:
    """Print how many generated plans were accepted and run, their outcomes, and the violations."""
    count = int(sys.argv[2]) if len(sys.argv) > 2 else COUNT
    anyio.run(_measure, count)
