"""Constrained decoding on the embedded model: 100 prompts, with and without the output contract's grammar.

Each prompt is one model call (no engine retries) to SmolLM2-135M in llama.cpp, in-process, through the same
LiteLLM client the engine uses:
- constrained: the `json_schema` strategy, the schema in llama.cpp's `json_schema` field (a grammar, llguidance);
- unconstrained: the `text` strategy, the same schema as text in the prompt and no response format.

Three contracts (an enum with a number range; an enum, an integer range and a bounded string; a pattern), 100
prompts in all. It reports, per mode, the share of answers that parse as JSON, the share valid against the schema,
and the mean and median latency per call. Two calls run at a time (the local model's two slots).
Run: python -m bench constrained
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import anyio
import jsonschema

from stratum_core.llm import LiteLLMClient, LLMRequest
from stratum_core.llm._litellm import register_model
from stratum_core.llm._local import INSTALL_HINT, LITELLM_MODEL, LOCAL_OUTPUT_PROFILE, available, shared_local_model
from stratum_core.llm._structured import OutputProfile

PROMPTS = 100
MAX_TOKENS = 96

SENTIMENT = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
TRIAGE = {
    "type": "object",
    "properties": {
        "team": {"type": "string", "enum": ["billing", "shipping", "technical", "other"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "minLength": 1, "maxLength": 80},
    },
    "required": ["team", "priority", "summary"],
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}, "found": {"type": "boolean"}},
    "required": ["order_id", "found"],
    "additionalProperties": False,
}
TEXTS = [
    "My package arrived crushed and the tracking never updated.",
    "Thanks, the new dashboard is wonderful and fast!",
    "I was charged twice for order ABC-1234 this month.",
    "The app crashes every time I open settings on Android.",
    "Where is my refund? It has been three weeks.",
    "Could you change the delivery address for KLM-0042?",
    "Great support today, the agent fixed my login in minutes.",
    "The invoice PDF shows the wrong VAT number.",
    "Order XYZ-9001 still says processing after ten days.",
    "Your API returns 500 errors since this morning.",
]
TASKS: list[tuple[str, dict[str, Any]]] = [
    ("Classify the emotional tone of this support ticket.", SENTIMENT),
    ("Triage this support ticket: choose the team, a priority from 1 to 5 and a short summary.", TRIAGE),
    ("Find the order id (three capital letters, a dash, four digits) in this ticket.", ORDER),
]
UNCONSTRAINED = OutputProfile(strategies=("text",), schema_field="json_schema", reason="bench: no constraint")


@dataclass
class Mode:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    parsed: int = 0
    valid: int = 0
    strategies: set[str] = field(default_factory=set)


def _prompts() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i in range(PROMPTS):
        intent, schema = TASKS[i % len(TASKS)]
        text = TEXTS[(i // len(TASKS) + i) % len(TEXTS)]
        variant = f" (ticket #{i + 1})"
        out.append((f"{intent}\n\nTicket{variant}: {text}", schema))
    return out


async def _measure(mode: Mode, client: LiteLLMClient, api_base: str) -> None:
    prompts = _prompts()
    limiter = anyio.CapacityLimiter(2)

    async def one(prompt: str, schema: dict[str, Any]) -> None:
        async with limiter:
            request = LLMRequest(
                model=LITELLM_MODEL,
                messages=({"role": "user", "content": prompt},),
                schema=schema,
                max_tokens=MAX_TOKENS,
                api_base=api_base,
                api_key="none",
            )
            started = time.perf_counter()
            response = await client.complete(request)
            mode.latencies_ms.append((time.perf_counter() - started) * 1000)
        mode.strategies.add(response.structured_output)
        try:
            value = json.loads(response.content)
        except ValueError:
            return
        mode.parsed += 1
        if jsonschema.Draft202012Validator(schema).is_valid(value):
            mode.valid += 1

    async with anyio.create_task_group() as group:
        for prompt, schema in prompts:
            group.start_soon(one, prompt, schema)


def _line(mode: Mode) -> str:
    n = len(mode.latencies_ms)
    return (
        f"  {mode.name:<13} valid {mode.valid:3d}/{n} ({100 * mode.valid / n:5.1f}%)  parsed as JSON "
        f"{mode.parsed:3d}/{n}  latency mean {statistics.mean(mode.latencies_ms):7.0f} ms, median "
        f"{statistics.median(mode.latencies_ms):7.0f} ms  [strategy: {', '.join(sorted(mode.strategies))}]"
    )


async def _main() -> None:
    model = shared_local_model()
    started = time.perf_counter()
    api_base = model.start()
    print(f"local model loaded in {time.perf_counter() - started:.1f} s; {PROMPTS} prompts a mode, 2 at a time")
    register_model(LITELLM_MODEL, supports_response_schema=True)
    constrained = LiteLLMClient(output_profiles={LITELLM_MODEL: LOCAL_OUTPUT_PROFILE}, request_timeout=300)
    free = LiteLLMClient(output_profiles={LITELLM_MODEL: UNCONSTRAINED}, request_timeout=300)
    modes = [Mode("constrained"), Mode("unconstrained")]
    # Warm up both paths (LiteLLM's import, llama.cpp's first grammar).
    for client in (constrained, free):
        await client.complete(
            LLMRequest(
                model=LITELLM_MODEL,
                messages=({"role": "user", "content": "Say hi."},),
                schema=SENTIMENT,
                max_tokens=8,
                api_base=api_base,
                api_key="none",
            )
        )
    await _measure(modes[0], constrained, api_base)
    await _measure(modes[1], free, api_base)
    for mode in modes:
        print(_line(mode))


def main() -> None:
    if not available():
        raise SystemExit(f"the embedded model is not installed: {INSTALL_HINT}")
    anyio.run(_main)


if __name__ == "__main__":
    main()
