"""The lean path to OpenAI-compatible servers: one chat-completions POST over a shared httpx connection pool.

A call to a server on an `api_base` (`openai/...`, `hosted_vllm/...`: llama.cpp, vLLM, LM Studio, the embedded
model, the test LLM) needs none of what LiteLLM adds for other providers, and LiteLLM's layers (its request
building, the OpenAI SDK, the logging handler, cost calculation) cost several times the HTTP call itself. Here the
request is the body LiteLLM would send, the answer is parsed into what the adapter reads (content, model, usage),
and failures carry what the adapter's classification needs (status, the provider's message, headers). Pricing
stays LiteLLM's: the adapter looks the model's price up in LiteLLM's map once.

The pools live as long as the event loop that made them and are closed when that loop shuts down.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from anyio.lowlevel import RunVar

__all__ = [
    "ChatResponse",
    "ConnectionFailed",
    "HTTPFailure",
    "TimedOut",
    "lean_model_name",
    "send_chat",
]

# LiteLLM providers that are the OpenAI chat API on the given api_base, with the model name after the prefix.
_OPENAI_COMPATIBLE = ("openai", "hosted_vllm", "custom_openai")
# LiteLLM's own arguments, not part of the request body.
_LITELLM_ONLY = frozenset({"model", "messages", "api_base", "api_key", "timeout", "num_retries", "drop_params"})
_POOL_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


def lean_model_name(model: str, api_base: str | None) -> str | None:
    """The model name to send when `model` on `api_base` is an OpenAI-compatible server; else None (LiteLLM).

    Without an api_base the provider is a hosted one (OpenAI itself included, whose cached-token prices LiteLLM
    knows); a model string without a provider prefix is routed by LiteLLM's model map.
    """
    if api_base is None:
        return None
    provider, _, name = model.partition("/")
    return name if name and provider in _OPENAI_COMPATIBLE else None


@dataclass(frozen=True)
class Usage:
    """The usage a server reported, as it sent it (the adapter checks the values)."""

    prompt_tokens: Any = None
    completion_tokens: Any = None
    cached_tokens: Any = None


@dataclass(frozen=True)
class ChatResponse:
    """What the adapter reads of a chat completion."""

    model: str | None
    content: str
    usage: Usage


class HTTPFailure(Exception):
    """The server answered with an error status; `message` is its own words (the error body's message)."""

    def __init__(self, status_code: int, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers


class TimedOut(Exception):
    """The request took longer than its timeout."""


class ConnectionFailed(Exception):
    """The connection failed or dropped before a whole answer came back, or the answer was not a chat completion."""


# The pools of the running event loop (made as calls need them), with the parked generator that closes them when
# that loop shuts down.
_pools: RunVar[tuple[list[httpx.AsyncClient], AsyncIterator[None]]] = RunVar("stratum_openai_http_pools")
# httpcore's pool matches every waiting request against every connection on each event, so its cost grows faster
# than the number of calls in flight (50 parallel calls on one pool cost ~8 ms of CPU each). Calls are spread over
# several pools instead, each holding a few connections.
_SHARDS = 8
_turn = itertools.count()
# Loading the CA bundle takes 0.1 s or more; each new client would do it again. One context serves every pool.
_ssl_context: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def _tls() -> ssl.SSLContext:
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


async def _closing(clients: list[httpx.AsyncClient]) -> AsyncIterator[None]:
    """Parked after its first step: the event loop finalizes its async generators at shutdown, closing the pools."""
    try:
        yield
    finally:
        for client in clients:
            await client.aclose()


async def _shared_pool() -> httpx.AsyncClient:
    try:
        clients = _pools.get()[0]
    except LookupError:
        clients = []
        closer = _closing(clients)
        await closer.__anext__()
        _pools.set((clients, closer))
    turn = next(_turn) % _SHARDS
    if turn >= len(clients):
        clients.append(httpx.AsyncClient(limits=_POOL_LIMITS, verify=_tls()))
        return clients[-1]
    return clients[turn]


async def send_chat(name: str, kwargs: Mapping[str, Any], *, api_key: str | None) -> ChatResponse:
    """POST the chat completion that LiteLLM's `acompletion(**kwargs)` would send to `kwargs['api_base']`.

    `name` is the model name the server knows (`lean_model_name`). `extra_body` is merged into the body, as the
    OpenAI SDK does; LiteLLM's own arguments are left out.
    """
    body: dict[str, Any] = {"model": name, "messages": kwargs["messages"]}
    body.update({key: value for key, value in kwargs.items() if key not in _LITELLM_ONLY and key != "extra_body"})
    body.update(kwargs.get("extra_body") or {})
    headers = {"Authorization": f"Bearer {api_key or 'no-key'}"}
    url = str(kwargs["api_base"]).rstrip("/") + "/chat/completions"
    client = await _shared_pool()
    try:
        answer = await client.post(url, json=body, headers=headers, timeout=float(kwargs["timeout"]))
    except httpx.TimeoutException as e:
        raise TimedOut(f"{type(e).__name__}: {e}") from e
    except httpx.TransportError as e:
        raise ConnectionFailed(f"{type(e).__name__}: {e}") from e
    if answer.status_code >= 400:
        raise HTTPFailure(answer.status_code, _error_message(answer), answer.headers)
    try:
        data = answer.json()
        message = data["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ConnectionFailed(f"the server's answer is not a chat completion: {answer.text[:200]!r}") from e
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    details = usage.get("prompt_tokens_details")
    return ChatResponse(
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        content=str(message.get("content") or "") if isinstance(message, dict) else "",
        usage=Usage(
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            cached_tokens=details.get("cached_tokens") if isinstance(details, dict) else None,
        ),
    )


def _error_message(answer: httpx.Response) -> str:
    """The provider's message in an error answer (`{"error": {"message": ...}}` or a string), else its text."""
    text = answer.text
    try:
        data = json.loads(text)
    except ValueError:
        return text or f"HTTP {answer.status_code}"
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    if not message and isinstance(data, dict):
        message = data.get("message") or data.get("detail")
    return str(message) if message else text
