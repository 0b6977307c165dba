"""The small protocol the engine calls models through, so LiteLLM stays in one adapter and tests can swap it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["LLMClient", "LLMRequest", "LLMResponse"]


@dataclass(frozen=True)
class LLMRequest:
    """One chat completion to make.

    `schema` is the JSON Schema (object-rooted) the answer must follow, or None for free text.
    """

    model: str
    messages: tuple[Mapping[str, Any], ...]
    schema: Mapping[str, Any] | None
    schema_name: str = "output"
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    api_key: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class LLMResponse:
    """What a model answered, and what the answer cost.

    `model` is the name the provider reports (it may lack LiteLLM's provider prefix). `cost_usd` is None when the
    model has no known price. `duration_ms` covers the whole call, transport retries and their waits included.
    `transport_errors` has one short text per failed attempt before the one that worked. `backend` names who
    answered when it is not the server's model (`local` for the embedded model), for the trace.
    `structured_output` is the output strategy of the answer (`none` when no schema was asked), and
    `strategy_fallbacks` one text per strategy the provider refused before it ("json_schema: 400 ...").
    """

    content: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    duration_ms: float
    transport_attempts: int
    transport_errors: tuple[str, ...]
    structured_output: Literal["json_schema", "json_object", "text", "none"]
    backend: str | None = None
    strategy_fallbacks: tuple[str, ...] = ()


class LLMClient(Protocol):
    """Anything that can complete an `LLMRequest`; raises `LLMError` when the model cannot be reached."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Make the call, with whatever transport retries the client does; never retries on content."""
        ...
