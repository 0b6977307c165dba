"""MCP sampling: infer steps answered by the calling client's own model (`stratum serve --infer-via sampling`).

Only handshake-era clients (initialize, up to 2025-11-25) that declare the `sampling` capability can be asked; the
2026-07-28 protocol deprecates sampling and has no back-channel, and Claude Code does not implement it. Such calls
fall back to the calling agent (see `_app.py`).

The engine keeps its validate-and-retry loop: `SamplingClient` only turns one `LLMRequest` into one
`sampling/createMessage` (the output schema in the system prompt, since a sampling client has no structured
output) and the answer back into an `LLMResponse` marked with the backend `sampling`. The engine's model client on
a sampling server is a `CallerModel`, which asks the sampling client bound to the current tool call: that covers
runs, resumes and the resumption inside `Engine.submit_agent_output` alike. `Executors` decides, per tool call,
whether the client is asked or the agent gets the steps.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import mcp.types as types
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from server._config import InferVia
from server._hub import connection_of
from stratum_core.engine import Engine
from stratum_core.errors import ConfigurationError, LLMError
from stratum_core.llm import LLMClient, LLMRequest, LLMResponse
from stratum_core.llm._structured import with_schema_instruction

__all__ = [
    "SAMPLING_BACKEND",
    "SAMPLING_MODEL",
    "CallerModel",
    "Executors",
    "SamplingClient",
    "client_can_sample",
    "sampling_through",
]

logger = logging.getLogger("stratum.server")

SAMPLING_BACKEND = "sampling"
SAMPLING_MODEL = "mcp-sampling"
"""The model name infer steps carry on a sampling server with no model configured: "whatever the client uses"."""

DEFAULT_MAX_TOKENS = 4096
_SAMPLABLE = types.ClientCapabilities(sampling=types.SamplingCapability())
_BOUND: ContextVar[LLMClient | None] = ContextVar("stratum_sampling_client", default=None)


def client_can_sample(session: ServerSession) -> bool:
    """Whether the client declared the sampling capability."""
    return session.check_client_capability(_SAMPLABLE)


def _usage(meta: Mapping[str, Any] | None) -> tuple[int, int]:
    """(tokens in, tokens out) when the client reports usage in the result's `_meta` (no standard field exists)."""
    usage = (meta or {}).get("usage")
    if not isinstance(usage, Mapping):
        return 0, 0

    def count(*keys: str) -> int:
        for key in keys:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        return 0

    return (
        count("input_tokens", "inputTokens", "prompt_tokens"),
        count("output_tokens", "outputTokens", "completion_tokens"),
    )


class SamplingClient:
    """An LLMClient that asks the MCP client's model through `sampling/createMessage`, on one tool call's stream."""

    def __init__(self, session: ServerSession, request_id: types.RequestId | None) -> None:
        self._session = session
        self._request_id = request_id

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One sampling request; a refused or failed request is an LLMError naming the client's reason."""
        messages = with_schema_instruction(request.messages, request.schema) if request.schema else request.messages
        system = "\n\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        sampling = [
            types.SamplingMessage(
                role="assistant" if message.get("role") == "assistant" else "user",
                content=types.TextContent(type="text", text=str(message.get("content", ""))),
            )
            for message in messages
            if message.get("role") != "system"
        ]
        hints = (
            types.ModelPreferences(hints=[types.ModelHint(name=request.model)])
            if request.model and request.model != SAMPLING_MODEL
            else None
        )
        started = time.perf_counter()
        with warnings.catch_warnings():  # sampling is deprecated in 2026-07-28; these clients still speak 2025-11-25
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            pending = self._session.create_message(
                sampling,
                max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
                system_prompt=system or None,
                temperature=request.temperature,
                model_preferences=hints,
                related_request_id=self._request_id,
            )
        try:
            result = await pending
        except MCPError as e:
            raise LLMError(
                f"the client's model (MCP sampling) did not answer: {e.error.message}", model=request.model, attempts=1
            ) from e
        content = result.content
        text = content.text if isinstance(content, types.TextContent) else ""
        tokens_in, tokens_out = _usage(result.meta)
        return LLMResponse(
            content=text,
            model=result.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=None,  # the client's model has no price the server knows
            duration_ms=(time.perf_counter() - started) * 1000,
            transport_attempts=1,
            transport_errors=(),
            structured_output="none",
            backend=SAMPLING_BACKEND,
        )


class CallerModel:
    """The engine's model client on a sampling server: the current tool call's sampling client, else `fallback`.

    A step that reaches the model with no sampling client bound (an adaptive function's infer path on a call that
    fell back to the agent) goes to the configured model, or fails with a clear error when there is none.
    """

    def __init__(self, fallback: Callable[[], LLMClient] | None = None) -> None:
        self._fallback_factory = fallback
        self._fallback: LLMClient | None = None

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Ask the bound sampling client, or the fallback model."""
        bound = _BOUND.get()
        if bound is not None:
            return await bound.complete(request)
        if request.model == SAMPLING_MODEL:
            raise ConfigurationError(
                "this step asks the client's model (MCP sampling), and this client cannot sample: connect with a "
                "client that declares sampling, or configure a model (--model / STRATUM_MODEL)"
            )
        if self._fallback is None:
            if self._fallback_factory is None:
                from stratum_core.llm import default_client

                self._fallback_factory = default_client
            self._fallback = self._fallback_factory()
        return await self._fallback.complete(request)


@contextmanager
def sampling_through(client: LLMClient | None) -> Iterator[None]:
    """Within the block (and the tasks it starts), a `CallerModel` asks `client`; None binds nothing."""
    if client is None:
        yield
        return
    token = _BOUND.set(client)
    try:
        yield
    finally:
        _BOUND.reset(token)


class Executors:
    """Who does the infer steps of one tool call, given the server's `--infer-via`.

    `server` and `agent` are the engine's own configuration. `sampling` asks the client's model when the client can
    be asked; otherwise (no capability, or 2026-07-28, which has no back-channel) the call gets the calling-agent
    executor: a view of the engine that shares its store, run locks and caches, configured for agent steps. The
    fallback is logged once per connection.
    """

    def __init__(self, infer_via: InferVia) -> None:
        self.infer_via: InferVia = infer_via
        self._told: weakref.WeakSet[Any] = weakref.WeakSet()

    def for_call(
        self, engine: Engine, session: ServerSession, request_id: types.RequestId | None, *, modern: bool
    ) -> tuple[Engine, LLMClient | None]:
        """The engine for this call, and the sampling client to bind while it runs (None: not sampling)."""
        if self.infer_via != "sampling":
            return engine, None
        if not modern and client_can_sample(session):
            return engine, SamplingClient(session, request_id)
        connection = connection_of(session)
        if connection is None or connection not in self._told:
            if connection is not None:
                self._told.add(connection)
            why = "speaks 2026-07-28, which has no sampling" if modern else "did not declare sampling"
            logger.info("the client %s: its infer steps go to the calling agent (stratum_step_done)", why)
        view = copy.copy(engine)
        view.config = dataclasses.replace(engine.config, infer_via="agent")
        return view, None
