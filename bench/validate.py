"""How long validating plans takes: the example plans in plans/, a generated plan of 1,000 steps, and `stratum
validate` as a whole process against a process that only loads the same plan.

Run from the repository root: python -m bench validate
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from stratum_core.plan import find_plan_files, load_plan, load_plan_text

RUNS = 7
STEPS = 1_000
PLANS = Path(__file__).parents[1] / "plans"


def generated_plan(steps: int = STEPS) -> str:
    """A valid plan whose one flow has `steps` steps: chains, fan-ins, conditions, parallel groups."""
    lines = [
        'version: "1"',
        "contracts:",
        "  Note:",
        "    text: {type: string}",
        "    score: {type: number, minimum: 0, maximum: 1}",
        "    tags: {type: array, items: {type: string}}",
        "functions:",
        "  start:",
        "    mode: compute",
        "    input: {text: {type: string}}",
        "    output: Note",
        "    expr: \"{'text': text, 'score': 0.5, 'tags': []}\"",
        "  refine:",
        "    mode: infer",
        "    intent: Improve the note.",
        "    input: {note: {type: Note}, hint: {type: string}}",
        "    output: Note",
        '    ensure: ["result.score >= note.score and len(result.tags) <= 5", "len(result.text) > 0"]',
        "flows:",
        "  big:",
        "    input: {text: {type: string}}",
        "    output: Note",
        "    steps:",
        "      - {id: s0, function: start, inputs: {text: $.input.text}}",
    ]
    for index in range(1, steps):
        previous, other = f"s{index - 1}", f"s{index // 2}"
        if index % 50 == 0:
            lines += [
                f"      - id: s{index}",
                "        parallel:",
                "          require: any",
                '          validate: "len(outputs) == 1"',
                "          steps:",
                f"            - {{id: s{index}a, function: refine,",
                f"               inputs: {{note: $.steps.{previous}.output, hint: a}}}}",
                f"            - {{id: s{index}b, function: refine,",
                f"               inputs: {{note: $.steps.{other}.output, hint: b}}}}",
            ]
        else:
            lines += [
                f"      - id: s{index}",
                "        function: refine",
                *([f'        when: "steps.{other}.output.score > 0.1"'] if index % 10 == 0 else []),
                f"        inputs: {{note: $.steps.{previous}.output, hint: $.steps.{other}.output.text}}",
            ]
    return "\n".join(lines) + "\n"


def _median_ms(work: object, runs: int = RUNS) -> float:
    assert callable(work)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


PROCESS_RUNS = 7
SMALL_PLAN = PLANS / "summarize.stratum.yaml"
LOAD_ONLY = "import sys; from stratum_core.plan import load_plan; load_plan(sys.argv[1])"


def _process_s(command: list[str]) -> float:
    """Median wall time (s) of `command` as a fresh process, after one warm-up run (bytecode, disk cache)."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(PROCESS_RUNS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def whole_process() -> None:
    """`stratum validate` on a small plan as a whole process, against a process that only loads the plan."""
    command = _process_s([sys.executable, "-m", "server.cli", "validate", str(SMALL_PLAN)])
    load = _process_s([sys.executable, "-c", LOAD_ONLY, str(SMALL_PLAN)])
    print(
        f"whole process, {SMALL_PLAN.name} (median of {PROCESS_RUNS}): `stratum validate` {command:.3f} s, "
        f"the load itself (python -c load_plan) {load:.3f} s: {command / load:.2f}x (goal <= 1.3)"
    )


def main() -> None:
    """Print the median time to validate plans/ (each plan and all of them) and a generated 1,000-step plan."""
    files = find_plan_files(PLANS)
    for file in files:
        load_plan(file)  # warm up: imports of call targets, schema compilation
    print(f"validate: median of {RUNS} runs each")
    for file in files:
        print(f"  {file.name:32} {_median_ms(lambda file=file: load_plan(file)):8.1f} ms")
    total = _median_ms(lambda: [load_plan(file) for file in files])
    print(f"  {'all ' + str(len(files)) + ' plans in plans/':32} {total:8.1f} ms")
    text = generated_plan()
    plan = load_plan_text(text, source="generated")
    size = f"generated plan, {len(plan.flows['big'].steps)} steps ({len(text) // 1024} KiB)"
    print(f"  {size:32} {_median_ms(lambda: load_plan_text(text, source='generated')):8.1f} ms")
    whole_process()


if __name__ == "__main__":
    main()
