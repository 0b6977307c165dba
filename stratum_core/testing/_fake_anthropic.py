"""A scripted Anthropic Messages API on a loopback port (FakeLLM's scripting behind `POST /v1/messages`).

Queue, rules, faults and usage are FakeLLM's, so LiteLLM's `anthropic/` provider and the Anthropic SDKs reach the same
fake.

Point LiteLLM at it with `model=fake.model` (`anthropic/claude-haiku-4-5`) and `api_base=fake.url`, or an Anthropic
SDK with `baseURL=fake.url`. Rules match the system prompt and the messages' text. The answer is a text block, or a
`tool_use` block when the request forces a tool (how LiteLLM asks models without native structured output).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from stratum_core.testing._fake_llm import (
    FakeLLM,
    Reply,
    _estimate_tokens,
    _Handler,
    minimal_instance,
)

__all__ = ["FakeAnthropic", "anthropic_request_schema", "anthropic_request_text"]

_ERROR_TYPES = {
    HTTPStatus.BAD_REQUEST: "invalid_request_error",
    HTTPStatus.NOT_FOUND: "not_found_error",
    HTTPStatus.TOO_MANY_REQUESTS: "rate_limit_error",
    HTTPStatus.INTERNAL_SERVER_ERROR: "api_error",
}


def anthropic_request_text(body: Mapping[str, Any]) -> str:
    """The system prompt and every text block of the messages, joined by newlines."""
    parts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    elif isinstance(system, list):
        parts.extend(str(b.get("text", "")) for b in system if isinstance(b, Mapping) and b.get("type") == "text")
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(b.get("text", "")) for b in content if isinstance(b, Mapping) and b.get("type") == "text")
    return "\n".join(parts)


def _forced_tool(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choice = body.get("tool_choice")
    if not isinstance(choice, Mapping) or choice.get("type") != "tool":
        return None
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping) and tool.get("name") == choice.get("name"):
            return tool
    return None


def anthropic_request_schema(body: Mapping[str, Any]) -> Any:
    """The JSON schema asked for: `output_config.format`, the beta `output_format`, or a forced tool's input."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        return fmt.get("schema")
    tool = _forced_tool(body)
    return tool.get("input_schema") if tool is not None else None


class FakeAnthropic(FakeLLM):
    """FakeLLM speaking the Anthropic Messages API (`POST /v1/messages`)."""

    def __init__(self, *, model_name: str = "claude-haiku-4-5") -> None:
        super().__init__(model_name=model_name)

    @property
    def url(self) -> str:
        """The api_base (LiteLLM) or baseURL (SDKs): `http://127.0.0.1:PORT`, to which `/v1/messages` is added."""
        return super().url.removesuffix("/v1")

    @property
    def model(self) -> str:
        """The LiteLLM model string that reaches this server through its Anthropic provider."""
        return f"anthropic/{self.model_name}"

    server_error_text = "Internal server error (scripted)"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _AnthropicHandler

    def _generated_content(self, body: Mapping[str, Any]) -> str:
        schema = anthropic_request_schema(body)
        return "{}" if schema is None else json.dumps(minimal_instance(schema))

    def _response(self, body: dict[str, Any], reply: Reply, content: str) -> dict[str, Any]:
        return self._message(body, reply, content)

    def _request_text(self, body: Mapping[str, Any]) -> str:
        return anthropic_request_text(body)

    def _message(self, body: Mapping[str, Any], reply: Reply, content: str) -> dict[str, Any]:
        text = anthropic_request_text(body)
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _estimate_tokens(text)
        completion = reply.completion_tokens if reply.completion_tokens is not None else _estimate_tokens(content)
        block: dict[str, Any] = {"type": "text", "text": content}
        stop = "end_turn"
        tool = _forced_tool(body)
        if tool is not None:
            try:
                block = {"type": "tool_use", "id": f"toolu_fake_{next(self._ids)}", "name": tool["name"]}
                block["input"] = json.loads(content)
                stop = "tool_use"
            except ValueError:
                block = {"type": "text", "text": content}
        return {
            "id": f"msg_fake_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": str(body.get("model") or self.model_name),
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }


class _AnthropicHandler(_Handler):
    """The Messages API over FakeLLM's handler: its routes, `count_tokens`, and Anthropic's error body."""

    CHAT_ROUTES = ("/v1/messages", "/messages")

    def do_GET(self) -> None:
        self._send_error(HTTPStatus.NOT_FOUND, f"no route GET {self.path}", "not_found_error")

    def _served_elsewhere(self, route: str, raw: bytes) -> bool:
        """`count_tokens`: about 4 characters a token of the request's text (not a scripted answer, not logged)."""
        if route not in ("/v1/messages/count_tokens", "/messages/count_tokens"):
            return False
        try:
            body = json.loads(raw)
        except ValueError as e:
            self._send_error(HTTPStatus.BAD_REQUEST, f"invalid JSON body: {e}", "invalid_request_error")
            return True
        tokens = _estimate_tokens(anthropic_request_text(body)) if isinstance(body, dict) else 1
        self._send_json(HTTPStatus.OK, {"input_tokens": tokens})
        return True

    def _send_error(
        self, status: HTTPStatus, message: str, error_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        payload = {"type": "error", "error": {"type": _ERROR_TYPES.get(status, error_type), "message": message}}
        self._send_json(status, payload, headers)
