"""MCP overhead: a one-step compute flow over stdio against a bare SDK tool, and 100 concurrent calls over HTTP.

- stdio: median round trip of `tools/call` on `stratum serve` (SQLite store, a one-step compute flow; Stratum's
  own stdio transport, `server/_stdio.py`) and on a bare low-level SDK server whose tool returns the same value
  (the SDK's `stdio_server`), measured in the same run, alternating; goal: the ratio is at most 1.3. Each server's
  CPU time over the measured calls (from /proc, on Linux) is reported too: it varies less with the machine's load.
- HTTP: 100 concurrent calls of the same flow on `stratum serve --http` (and on the bare tool, for scale); goal: no
  error; p50/p99 reported.

Run: python -m bench mcp
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

CALLS = 300
WARMUP = 20
CONCURRENT = 100

PLAN = """\
version: "1"
functions:
  inc:
    mode: compute
    input: {n: {type: integer}}
    output: {type: integer}
    expr: "n + 1"
flows:
  inc:
    description: Add one.
    input: {n: {type: integer}}
    output: {type: integer}
    steps:
      - {id: inc, function: inc, inputs: {n: $.input.n}}
"""

BARE_SERVER = """\
import sys
import anyio
import mcp.types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
OUTPUT = {"type": "object", "properties": {"result": {"type": "integer"}}, "required": ["result"]}

async def list_tools(ctx, params):
    return types.ListToolsResult(tools=[types.Tool(name="inc", input_schema=SCHEMA, output_schema=OUTPUT)])

async def call_tool(ctx, params):
    out = {"result": params.arguments["n"] + 1}
    return types.CallToolResult(content=[types.TextContent(type="text", text=str(out))], structured_content=out)

server = Server("bare", on_list_tools=list_tools, on_call_tool=call_tool)

async def main():
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())

if len(sys.argv) > 1:  # http PORT
    import uvicorn
    print(f"stratum: listening on http://127.0.0.1:{sys.argv[2]}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
else:
    anyio.run(main)
"""


_TOKEN = "bench-token"


def _env() -> dict[str, str]:
    return {**os.environ, "LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _stratum(plans: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", "serve", "--plans", str(plans), "--store", str(store), *extra]


async def _round_trips(client: Client, count: int) -> list[float]:
    times = []
    for n in range(count):
        started = time.perf_counter()
        result = await client.call_tool("inc", {"n": n})
        times.append((time.perf_counter() - started) * 1000)
        assert result.structured_content == {"result": n + 1}, result
    return times


def _children_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process's child servers, by kind ("stratum" or "bare"), from /proc."""
    found: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) != os.getpid():
            continue
        kind = "stratum" if b"server.cli" in command else "bare" if b"-c" in command else None
        if kind is not None:
            found[kind] = (int(fields[11]) + int(fields[12])) / tick
    return found


async def _stdio(folder: Path) -> tuple[float, float, dict[str, float]]:
    stratum = StdioServerParameters(command=sys.executable, args=_stratum(folder, folder / "runs.db")[1:], env=_env())
    bare = StdioServerParameters(command=sys.executable, args=["-c", BARE_SERVER], env=_env())
    stratum_ms: list[float] = []
    bare_ms: list[float] = []
    async with Client(stratum, mode="legacy") as ours, Client(bare, mode="legacy") as theirs:
        await _round_trips(ours, WARMUP)
        await _round_trips(theirs, WARMUP)
        cpu_before = _children_cpu() if Path("/proc/self/stat").exists() else {}
        for _ in range(CALLS // 50):  # alternate blocks so both see the same machine load
            stratum_ms += await _round_trips(ours, 50)
            bare_ms += await _round_trips(theirs, 50)
        cpu_after = _children_cpu() if cpu_before else {}
    cpu = {kind: (cpu_after[kind] - cpu_before[kind]) * 1000 / CALLS for kind in cpu_before if kind in cpu_after}
    return statistics.median(stratum_ms), statistics.median(bare_ms), cpu


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _http(command: list[str]) -> tuple[list[float], int]:
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    url = ""
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("stratum: listening on "):
                url = line.split()[-1]
                break
        if not url:
            raise RuntimeError("stratum serve --http did not start")
        threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
        times: list[float] = []
        errors = 0
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = create_mcp_http_client(headers={"Authorization": f"Bearer {_TOKEN}"})  # the bare server ignores it
        async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            await _round_trips(client, WARMUP)

            async def one(n: int) -> None:
                nonlocal errors
                started = time.perf_counter()
                try:
                    result = await client.call_tool("inc", {"n": n})
                    if result.is_error or result.structured_content != {"result": n + 1}:
                        errors += 1
                except Exception:
                    errors += 1
                times.append((time.perf_counter() - started) * 1000)

            async with anyio.create_task_group() as tg:
                for n in range(CONCURRENT):
                    tg.start_soon(one, n)
        return times, errors
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    """Print the stdio ratio and the HTTP concurrency numbers."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "inc.stratum.yaml").write_text(PLAN, encoding="utf-8")
        ours, theirs, cpu = anyio.run(_stdio, folder)
        print(
            f"stdio, one-step compute flow, median of {CALLS} calls: stratum {ours:.2f} ms, bare SDK tool "
            f"{theirs:.2f} ms, ratio {ours / theirs:.2f} (goal <= 1.3)"
        )
        if len(cpu) == 2:
            print(
                f"stdio, server CPU per call (user + system, /proc): stratum {cpu['stratum']:.2f} ms, bare SDK tool "
                f"{cpu['bare']:.2f} ms, ratio {cpu['stratum'] / cpu['bare']:.2f}"
            )
        commands = {
            "stratum": [*_stratum(folder, folder / "http.db"), "--http", "127.0.0.1:0", "--token", _TOKEN],
            "bare SDK tool": [sys.executable, "-c", BARE_SERVER, "http", str(_free_port())],
        }
        for name, command in commands.items():
            times, errors = anyio.run(_http, command)
            print(
                f"HTTP, {CONCURRENT} concurrent calls in one session, {name}: {errors} errors, "
                f"p50 {_percentile(times, 0.5):.1f} ms, p99 {_percentile(times, 0.99):.1f} ms"
            )


if __name__ == "__main__":
    main()
