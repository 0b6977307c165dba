"""Start-up: from spawning `stratum serve` (stdio) to an answered `tools/list`, with 50 plans in the folder.

The client speaks raw JSON-RPC lines (initialize, initialized, tools/list) so only the server is measured; goal:
under 1 s. Also checks that the answer lists every flow.

Run: python -m bench startup
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server._catalog import RESERVED_TOOL_NAMES

PLANS = 50
REPEATS = 7

PLAN = """\
version: "1"
description: Plan {index} of the start-up benchmark.
contracts:
  Measure{index}:
    text: {{type: string, minLength: 1}}
    length: {{type: integer, minimum: 0}}
    tags: {{type: array, items: {{type: string}}, required: false}}
functions:
  measure:
    mode: compute
    input: {{text: {{type: string}}}}
    output: Measure{index}
    expr: "{{'text': text, 'length': len(text)}}"
  classify:
    mode: infer
    intent: Say whether the text is long.
    input: {{text: {{type: string}}}}
    output: {{type: boolean}}
    ensure: ["result in [True, False]"]
flows:
  measure_{index}:
    description: Measure a text (plan {index}).
    input: {{text: {{type: string, minLength: 1}}}}
    output: Measure{index}
    steps:
      - {{id: measure, function: measure, inputs: {{text: $.input.text}}}}
  classify_{index}:
    description: Classify a text (plan {index}).
    input: {{text: {{type: string}}}}
    output: {{type: boolean}}
    steps:
      - {{id: classify, function: classify, inputs: {{text: $.input.text}}}}
"""

MESSAGES = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def _once(folder: Path) -> tuple[float, int]:
    env = {**os.environ, "LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [sys.executable, "-m", "server.cli", "serve", "--plans", str(folder), "--store", str(folder / "runs.db")]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--poll", "0", "--log-level", "warning"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("".join(json.dumps(message) + "\n" for message in MESSAGES))
    process.stdin.flush()
    tools = -1
    for line in process.stdout:
        answer = json.loads(line)
        if answer.get("id") == 2:
            tools = len(answer["result"]["tools"])
            break
    elapsed = time.perf_counter() - started
    process.stdin.close()
    process.wait(timeout=10)
    process.stdout.close()
    return elapsed, tools


def main() -> None:
    """Print the median spawn-to-tools/list time over a few runs."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for index in range(PLANS):
            (folder / f"plan_{index:02d}.stratum.yaml").write_text(PLAN.format(index=index), encoding="utf-8")
        _once(folder)  # warm the OS file cache and the byte-code cache
        times = []
        for _ in range(REPEATS):
            elapsed, tools = _once(folder)
            expected = 2 * PLANS + len(RESERVED_TOOL_NAMES)  # every flow, plus the server's own tools
            assert tools == expected, f"expected {expected} tools, got {tools}"
            times.append(elapsed)
        median = statistics.median(times)
        print(
            f"spawn to answered tools/list with {PLANS} plans ({2 * PLANS} flows): median {median:.3f} s, "
            f"min {min(times):.3f} s over {REPEATS} runs (goal < 1 s)"
        )


if __name__ == "__main__":
    main()
