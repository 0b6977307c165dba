"""The small protocol the engine calls models through, so LiteLLM stays in one adapter and tests can swap it."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "BoundingClient",
    "LLMClient",
    "LLMRequest",
    "LLMResponse",
    "Price",
    "Quote",
    "QuotingClient",
    "estimate_quote",
    "prompt_bytes_bound",
]


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


@dataclass(frozen=True)
class Price:
    """What a model charges, in US dollars per token (plans and configuration say it per million tokens)."""

    input_per_token: float
    output_per_token: float

    @classmethod
    def per_million(cls, input_usd: float, output_usd: float) -> Price:
        """The price from dollars per million input and output tokens."""
        return cls(input_usd / 1_000_000, output_usd / 1_000_000)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """What `tokens_in` prompt and `tokens_out` completion tokens cost."""
        return tokens_in * self.input_per_token + tokens_out * self.output_per_token


@dataclass(frozen=True)
class Quote:
    """What a request will cost before it is made: its prompt counted with the model's tokenizer, and its price.

    `prompt_tokens` covers the messages and the output schema as they will be sent. `price` is None when the model
    has no known price. `max_output_tokens` is the most the model can answer (None when unknown). `exact` is False
    when the count is an upper-bound estimate (no tokenizer for the model).
    """

    prompt_tokens: int
    price: Price | None
    max_output_tokens: int | None = None
    exact: bool = True


class LLMClient(Protocol):
    """Anything that can complete an `LLMRequest`; raises `LLMError` when the model cannot be reached."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Make the call, with whatever transport retries the client does; never retries on content."""
        ...


@runtime_checkable
class QuotingClient(Protocol):
    """A client that can price a request before making it, and get ready before a budget's clock starts.

    The engine reserves each call's worst case from the budget with `quote`; a client without it gets a
    conservative estimate and no price. `prepare` does the one-time start-up (imports, tokenizers, a local model)
    for `model`, so that it never counts against a step's time budget.
    """

    async def quote(self, request: LLMRequest) -> Quote:
        """Count the request's prompt tokens with the model's tokenizer, and look up the model's price."""
        ...

    async def prepare(self, model: str) -> None:
        """Do the one-time start-up that calls of `model` need."""
        ...


@runtime_checkable
class BoundingClient(Protocol):
    """A quoting client that can also bound a prompt's tokens without its tokenizer (see `prompt_bytes_bound`).

    The engine reserves with the bound when no budget limits tokens or cost (the count then changes nothing the call
    sends or may spend), and counts with the tokenizer (`quote`) otherwise.
    """

    async def quote_bound(self, request: LLMRequest) -> Quote | None:
        """A quote whose `prompt_tokens` is at least what `quote` would count (`exact` False); None if none."""
        ...


_PER_MESSAGE = 8
"""Tokens a message may add beside its text (OpenAI's count adds 3, and 1 for a name), generously."""

_PER_PROMPT = 16
"""Tokens a prompt may add beside its messages (OpenAI's count adds 3 to prime the reply), generously."""


def prompt_bytes_bound(messages: Sequence[Mapping[str, Any]], extra: Any = None) -> int | None:
    """An upper bound of the tokens of `messages` (and `extra`, sent as JSON) by any byte-level tokenizer.

    A BPE token (tiktoken's, or a byte-level or byte-fallback tokenizer's) stands for at least one byte of the text,
    so a text's UTF-8 length bounds its token count; each message and the prompt get a generous margin for the
    tokens a chat format adds. None when a message holds more than text (images, parts), which only a tokenizer can
    count.
    """
    total = _PER_PROMPT
    for message in messages:
        total += _PER_MESSAGE
        for value in message.values():
            if not isinstance(value, str):
                return None
            total += len(value.encode("utf-8", errors="surrogatepass"))
    if extra is not None:
        total += _PER_MESSAGE + len(json.dumps(extra, default=str).encode("utf-8", errors="surrogatepass"))
    return total


def estimate_quote(request: LLMRequest) -> Quote:
    """A generous quote for a client that cannot count tokens: about 2 characters a token, price unknown."""
    text = json.dumps([dict(message) for message in request.messages], default=str)
    if request.schema is not None:
        text += json.dumps(request.schema, default=str)
    return Quote(prompt_tokens=math.ceil(len(text) / 2), price=None, max_output_tokens=None, exact=False)
