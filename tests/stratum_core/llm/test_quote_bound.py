"""The quote's byte bound: never below the tokenizer's count, so a reservation made with it is never too small."""

from __future__ import annotations

from typing import Any

import pytest

from stratum_core.llm import LiteLLMClient, LLMRequest, register_model
from stratum_core.llm._protocol import prompt_bytes_bound

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["pos", "neg"]}, "note": {"type": "string"}},
    "required": ["label"],
    "additionalProperties": False,
}

TEXTS = [
    "Classify: I loved it",
    "",
    "Überprüfe die Größe — naïve café, déjà vu; Ελληνικά, русский текст",
    "中文文本，日本語のテキスト、한국어 텍스트" * 20,
    "emoji 🧪🚀👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵" * 10,
    '\x01\x02\t\n\r control and escapes " \\ ' * 30,
    "    indented code\n\tdef f(x):\n\t\treturn x ** 2  # comment\n" * 50,
    "a" * 5000,
    " ".join(str(n) for n in range(2000)),
]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "gpt-3.5-turbo", "openai/bench-unknown-model"])
@pytest.mark.parametrize("schema", [None, SCHEMA], ids=["no-schema", "schema"])
@pytest.mark.parametrize("text", TEXTS, ids=[f"text{i}" for i in range(len(TEXTS))])
async def test_the_byte_bound_is_at_least_the_tokenizer_count(model: str, schema: Any, text: str) -> None:
    register_model("openai/bench-unknown-model")
    client = LiteLLMClient()
    request = LLMRequest(
        model=model,
        messages=({"role": "system", "content": "Answer briefly. " + text[:50]}, {"role": "user", "content": text}),
        schema=schema,
    )
    exact = await client.quote(request)
    bound = await client.quote_bound(request)
    assert bound is not None and not bound.exact
    assert bound.prompt_tokens >= exact.prompt_tokens
    assert (bound.price, bound.max_output_tokens) == (exact.price, exact.max_output_tokens)


def test_a_message_with_parts_has_no_byte_bound() -> None:
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    assert prompt_bytes_bound([{"role": "user", "content": parts}]) is None  # type: ignore[dict-item]
    assert prompt_bytes_bound([{"role": "user", "content": "hi"}]) == 16 + 8 + len("user") + len("hi")
