"""The lean path to OpenAI-compatible servers: one chat-completions POST over a shared aiohttp connection pool.

A call to a server on an `api_base` (`openai/...`, `hosted_vllm/...`: llama.cpp, vLLM, LM Studio, the embedded
model, the test LLM) needs none of what LiteLLM adds for other providers, and LiteLLM's layers (its request
building, the OpenAI SDK, the logging handler, cost calculation) cost several times the HTTP call itself. Here the
request is the body LiteLLM would send, the answer is parsed into what the adapter reads (content, model, usage),
and failures carry what the adapter's classification needs (status, the provider's message, headers). Pricing
stays LiteLLM's: the adapter looks the model's price up in LiteLLM's map once.

The transport is aiohttp (a dependency of LiteLLM's): with 50 calls in flight it spent about 0.5 ms of CPU a call
where httpx spent about 3 ms (httpcore matches every waiting request against every connection on each event),
measured side by side against the test LLM (`python -m bench llm_client`, docs/benchmarks.md).

The pool lives as long as the event loop that made it and is closed when that loop shuts down.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
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
_MAX_CONNECTIONS = 256


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


# The session of the running event loop (made by its first call), with the parked generator that closes it when
# that loop shuts down.
_sessions: RunVar[tuple[aiohttp.ClientSession, AsyncIterator[None]]] = RunVar("stratum_openai_http_session")
# Loading the CA bundle takes 0.1 s or more; one context serves every loop's session.
_ssl_context: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def _tls() -> ssl.SSLContext:
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            try:
                import certifi

                _ssl_context = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with LiteLLM
                _ssl_context = ssl.create_default_context()
        return _ssl_context


async def _closing(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    """Parked after its first step: the event loop finalizes its async generators at shutdown, closing the pool."""
    try:
        yield
    finally:
        await session.close()


async def _shared_session() -> aiohttp.ClientSession:
    try:
        return _sessions.get()[0]
    except LookupError:
        pass
    connector = aiohttp.TCPConnector(limit=_MAX_CONNECTIONS, ssl=_tls())
    # proxies are looked up once per server (`_proxy_for`), not by aiohttp's trust_env, which looks them up in a
    # worker thread on every request
    session = aiohttp.ClientSession(connector=connector)
    closer = _closing(session)
    await closer.__anext__()
    _sessions.set((session, closer))
    return session


_proxies: dict[str, str | None] = {}


def _proxy_for(url: str) -> str | None:
    """The proxy `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` name for `url`, unless `NO_PROXY` covers its host.

    Read from the environment once per scheme and host, as httpx and the OpenAI SDK honour them.
    """
    parts = urllib.parse.urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}"
    if key not in _proxies:
        proxies = urllib.request.getproxies_environment()
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        host = parts.hostname or ""
        if proxy and urllib.request.proxy_bypass(f"{host}:{parts.port}" if parts.port else host):
            proxy = None
        _proxies[key] = proxy or None
    return _proxies[key]


async def send_chat(name: str, kwargs: Mapping[str, Any], *, api_key: str | None) -> ChatResponse:
    """POST the chat completion that LiteLLM's `acompletion(**kwargs)` would send to `kwargs['api_base']`.

    `name` is the model name the server knows (`lean_model_name`). `extra_body` is merged into the body, as the
    OpenAI SDK does; LiteLLM's own arguments are left out.
    """
    body: dict[str, Any] = {"model": name, "messages": kwargs["messages"]}
    body.update({key: value for key, value in kwargs.items() if key not in _LITELLM_ONLY and key != "extra_body"})
    body.update(kwargs.get("extra_body") or {})
    headers = {"Authorization": f"Bearer {api_key or 'no-key'}", "Content-Type": "application/json"}
    url = str(kwargs["api_base"]).rstrip("/") + "/chat/completions"
    session = await _shared_session()
    try:
        async with session.post(
            url,
            data=json.dumps(body),
            headers=headers,
            proxy=_proxy_for(url),
            timeout=aiohttp.ClientTimeout(total=float(kwargs["timeout"])),
        ) as answer:
            status, answer_headers, raw = answer.status, answer.headers, await answer.read()
    except TimeoutError as e:
        raise TimedOut(f"{type(e).__name__}: the request took longer than {kwargs['timeout']} s") from e
    except aiohttp.ClientError as e:
        raise ConnectionFailed(f"{type(e).__name__}: {e}") from e
    text = raw.decode("utf-8", errors="replace")
    if status >= 400:
        raise HTTPFailure(status, _error_message(text, status), answer_headers)
    try:
        data = json.loads(text)
        message = data["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ConnectionFailed(f"the server's answer is not a chat completion: {text[:200]!r}") from e
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


def _error_message(text: str, status: int) -> str:
    """The provider's message in an error answer (`{"error": {"message": ...}}` or a string), else its text."""
    try:
        data = json.loads(text)
    except ValueError:
        return text or f"HTTP {status}"
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    if not message and isinstance(data, dict):
        message = data.get("message") or data.get("detail")
    return str(message) if message else text
