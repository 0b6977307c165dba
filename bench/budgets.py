"""What reserving a call's budget costs: `LiteLLMClient.quote` (the prompt counted with the model's tokenizer over
the messages and every schema strategy, and the price looked up), in CPU per call; and the cold-start work a run no
longer pays inside its time budget (LiteLLM's import and its tokenizer), measured in a fresh interpreter.

Run: python -m bench budgets
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import anyio

from stratum_core.llm import LiteLLMClient, LLMRequest, register_model

CALLS = 200
REPEATS = 5
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reasoning": {"type": "string"},
    },
    "required": ["label", "confidence", "reasoning"],
}
REQUEST = LLMRequest(
    model="openai/bench-model",
    messages=(
        {"role": "system", "content": "Classify the sentiment of the customer's message. " * 8},
        {"role": "user", "content": "The export is broken again and I need it fixed today. " * 6},
    ),
    schema=SCHEMA,
    api_base="http://127.0.0.1:9/v1",
)
COLD = (
    "import time; t = time.perf_counter(); from stratum_core.llm._litellm import load_litellm; load_litellm(); "
    "print(time.perf_counter() - t)"
)


async def _quote_cpu_ms() -> list[float]:
    client = LiteLLMClient()
    await client.quote(REQUEST)  # the first quote after the import: tables are loaded by then
    samples = []
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(CALLS):
            await client.quote(REQUEST)
        samples.append((time.process_time() - started) * 1000 / CALLS)
    return samples


def _cold_start() -> float:
    done = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    register_model(REQUEST.model, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    quote = anyio.run(_quote_cpu_ms)
    print(
        f"quote (count + price) per call: median {statistics.median(quote):.2f} ms CPU "
        f"(min {min(quote):.2f}, max {max(quote):.2f}; {REPEATS} runs of {CALLS})"
    )
    cold = [
        float(subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    ]
    print(
        f"cold LiteLLM import + tokenizer (kept off every budget's clock): median {statistics.median(cold):.2f} s "
        f"(min {min(cold):.2f}, max {max(cold):.2f}; 3 fresh interpreters)"
    )
