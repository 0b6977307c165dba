"""The model client's CPU per call to an OpenAI-compatible server, against raw httpx and aiohttp calls and LiteLLM.

The test LLM runs in a subprocess (so its CPU is not counted), answering at once. In this process, four ways to
make the same chat-completion call with a JSON-schema response format are timed in alternating blocks:
- raw httpx: one `AsyncClient.post` on a kept-alive connection and `response.json()` (the issue's anchor);
- raw aiohttp: one `ClientSession.post` and `json.loads` of the body (the transport Stratum's lean path uses);
- `litellm.acompletion`: LiteLLM's own path (the OpenAI SDK and its HTTP clients);
- Stratum's `LiteLLMClient.complete`: what the engine calls (output strategy, retries, usage checks, price).
Each figure is CPU per call (`time.process_time`), the median over blocks of 50 calls, made one after another and
then 50 at once (as a flow's parallel steps make them); goal: Stratum's client at most 2x raw httpx.

Run: python -m bench llm_client
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import anyio
import httpx

from stratum_core.llm import LiteLLMClient, LLMRequest, register_model
from stratum_core.llm._litellm import load_litellm

BLOCKS = 10
BLOCK = 50
MODEL = "openai/fake-llm"
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["pos", "neg"]}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": "Classify the text."}, {"role": "user", "content": "I loved it."}]
SERVER = """\
import sys, threading
from stratum_core.testing import FakeLLM
fake = FakeLLM().start()
print(fake.url, flush=True)
sys.stdin.read()
"""


async def _blocks(calls: dict[str, Callable[[], Awaitable[object]]], *, at_once: bool) -> dict[str, float]:
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm up: imports, connections
        for _ in range(20):
            await call()

    async def block(call: Callable[[], Awaitable[object]]) -> None:
        if not at_once:
            for _ in range(BLOCK):
                await call()
            return
        async with anyio.create_task_group() as group:
            for _ in range(BLOCK):
                group.start_soon(call)

    for _ in range(BLOCKS):
        for name, call in calls.items():
            started = time.process_time()
            await block(call)
            cpu[name].append((time.process_time() - started) * 1000 / BLOCK)
    return {name: statistics.median(values) for name, values in cpu.items()}


async def _measure(url: str) -> dict[str, dict[str, float]]:
    litellm = load_litellm()
    register_model(MODEL, input_cost_per_token=1e-7, output_cost_per_token=2e-7)
    client = LiteLLMClient()
    request = LLMRequest(model=MODEL, messages=tuple(MESSAGES), schema=SCHEMA, api_base=url, api_key="sk-bench")
    response_format = {"type": "json_schema", "json_schema": {"name": "Out", "schema": SCHEMA, "strict": True}}
    body = {"model": "fake-llm", "messages": MESSAGES, "response_format": response_format}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=256)) as raw, aiohttp.ClientSession() as session:

        async def raw_call() -> object:
            answer = await raw.post(f"{url}/chat/completions", json=body, headers={"Authorization": "Bearer x"})
            return answer.json()["choices"][0]["message"]["content"]

        async def aiohttp_call() -> object:
            async with session.post(f"{url}/chat/completions", json=body, headers={"Authorization": "Bearer x"}) as r:
                return json.loads(await r.read())["choices"][0]["message"]["content"]

        async def litellm_call() -> object:
            return await litellm.acompletion(
                model=MODEL,
                messages=MESSAGES,
                response_format=response_format,
                api_base=url,
                api_key="sk-bench",
                num_retries=0,
            )

        async def stratum_call() -> object:
            return await client.complete(request)

        calls = {
            "raw httpx": raw_call,
            "raw aiohttp": aiohttp_call,
            "litellm.acompletion": litellm_call,
            "Stratum LiteLLMClient": stratum_call,
        }
        return {
            "one after another": await _blocks(calls, at_once=False),
            f"{BLOCK} at once": await _blocks(calls, at_once=True),
        }


def main() -> None:
    """Print CPU per call for each client and Stratum's ratio to raw httpx."""
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        figures = anyio.run(_measure, url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for mode, by_client in figures.items():
        raw = by_client["raw httpx"]
        print(f"CPU per call to an OpenAI-compatible server, {mode} (median of {BLOCKS} blocks of {BLOCK}):")
        for name, value in by_client.items():
            print(f"  {name:24} {value:6.3f} ms  ({value / raw:.2f}x raw httpx)")
        print(f"  Stratum's client / raw httpx: {by_client['Stratum LiteLLMClient'] / raw:.2f} (goal <= 2)")


if __name__ == "__main__":
    main()
