"""A scripted OpenAI-compatible chat server on a loopback port, for tests that go through the real LLM path.

Point LiteLLM (or any OpenAI client) at `FakeLLM.url` with the model `FakeLLM.model`; answers come from a FIFO queue,
then from rules, then from a generated minimal instance of the request's JSON schema. Faults (429, 500, 400, hangs,
dropped connections, broken JSON) and latency are scripted the same way. Standard library only.
"""

from __future__ import annotations

import itertools
import json
import math
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias

__all__ = ["Answer", "FakeLLM", "Fault", "Reply", "minimal_instance"]

HANG_LIMIT_S = 60.0
_POLL_S = 0.02
BROKEN_JSON = '{"label": "pos'


@dataclass
class Reply:
    """One scripted answer.

    `content` is sent as is; else `json` is serialised; with neither, the content is generated from the request's
    schema (so a Reply can script only tokens or latency). Token counts default to a chars/4 estimate.
    A positive `latency` overrides `FakeLLM.latency` for this answer.
    """

    content: str | None = None
    json: Any = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency: float = 0.0


@dataclass
class Fault:
    """One scripted failure, answered instead of a completion.

    rate_limit: 429 (with `Retry-After` when `retry_after` is set); server_error: 500; bad_request: 400;
    broken_json: 200 whose content is truncated JSON; disconnect: the socket closes with no answer;
    hang: no answer until `FakeLLM.stop()`, the client goes away, or 60 s pass. `message` replaces the error
    text of a 400 or 500 (e.g. what a server says when it refuses a JSON schema).
    """

    kind: Literal["rate_limit", "server_error", "hang", "broken_json", "disconnect", "bad_request"]
    retry_after: float | None = None
    latency: float = 0.0
    message: str | None = None


Answer: TypeAlias = Reply | Fault | str | Mapping[str, Any]
AnswerFactory: TypeAlias = Callable[[dict[str, Any]], Answer]
Matcher: TypeAlias = str | Callable[[dict[str, Any]], bool]


@dataclass
class _Rule:
    match: Matcher
    answer: Answer | AnswerFactory
    remaining: int | None


Dialect: TypeAlias = Literal["openai", "vllm", "llamacpp"]


class FakeLLM:
    """A local HTTP server speaking the OpenAI chat-completions API, with scripted answers.

    Use as a context manager, or call `start()` and `stop()`. Thread-safe: requests are served concurrently.
    `dialect` says which request fields carry a JSON schema the server honours when it generates an answer:
    openai: `response_format`; vllm: also `structured_outputs: {json}` and `guided_json`; llamacpp: also the
    top-level `json_schema`. A schema in a field the dialect does not know is ignored, as real servers ignore
    unknown fields.
    """

    def __init__(self, *, model_name: str = "fake-llm", dialect: Dialect = "openai") -> None:
        self.model_name = model_name
        self.dialect: Dialect = dialect
        self.latency: float = 0.0
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Answer] = deque()
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._in_flight = 0

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> FakeLLM:
        """Start serving on a free loopback port (idempotent) and return self."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        server = _Server(("127.0.0.1", 0), self._handler_class())
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": _POLL_S}, name="FakeLLM", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still waiting (latency, hang) are dropped without an answer."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The api_base to give a client: `http://127.0.0.1:PORT/v1`."""
        if self._server is None:
            raise RuntimeError("FakeLLM is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def model(self) -> str:
        """The LiteLLM model string that reaches this server through its OpenAI provider."""
        return f"openai/{self.model_name}"

    # -- scripting -----------------------------------------------------------------------------------------------

    def enqueue(self, *answers: Answer) -> None:
        """Queue answers for the next requests, in order; the queue is used before any rule."""
        with self._lock:
            self._queue.extend(answers)

    def add_rule(self, match: Matcher, answer: Answer | AnswerFactory, *, times: int | None = None) -> None:
        """Answer requests that match: a substring of the messages' text, or a predicate on the request body.

        `answer` may be a callable that builds the answer from the request body. Rules are tried in the order
        they were added, once the queue is empty; a rule with `times` is dropped after that many uses.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._rules.append(_Rule(match, answer, times))

    def reset(self) -> None:
        """Forget queued answers, rules and the request log (latency is kept)."""
        with self._lock:
            self._queue.clear()
            self._rules.clear()
            self.requests.clear()

    def wait_for_requests(self, count: int, *, timeout: float = 5.0) -> bool:
        """Block until at least `count` requests were received in all; False if `timeout` passed first."""
        with self._received:
            return self._received.wait_for(lambda: len(self.requests) >= count, timeout=timeout)

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (waiting out latency, or hanging)."""
        with self._lock:
            return self._in_flight

    def wait_for_idle(self, *, timeout: float = 5.0) -> bool:
        """Block until no request is in progress (e.g. a hang whose client went away); False on timeout."""
        with self._received:
            return self._received.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    # -- serving (called from handler threads) --------------------------------------------------------------------

    server_error_text = "The server had an error (scripted)"
    """What a scripted 500 says (unless the Fault gives its own message)."""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler: the OpenAI chat API here; a subclass may speak another provider's API."""
        return _Handler

    def _generated_content(self, body: Mapping[str, Any]) -> str:
        """The answer's text when neither `content` nor `json` is scripted: an instance of the requested schema."""
        return _auto_content(body, self.dialect)

    def _response(self, body: dict[str, Any], reply: Reply, content: str) -> dict[str, Any]:
        """The provider's response body for an answer (a chat completion here)."""
        return self._completion(body, reply, content)

    def _request_text(self, body: Mapping[str, Any]) -> str:
        """The text rules match against: every message's text."""
        return _message_text(body)

    def _begin(self, body: dict[str, Any]) -> None:
        with self._received:
            self.requests.append(body)
            self._in_flight += 1
            self._received.notify_all()

    def _end(self) -> None:
        with self._received:
            self._in_flight -= 1
            self._received.notify_all()

    def _pick(self, body: dict[str, Any]) -> Answer | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            text = self._request_text(body)
            for rule in self._rules:
                matched = rule.match in text if isinstance(rule.match, str) else rule.match(body)
                if not matched:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                answer = rule.answer
                break
            else:
                return None
        # A factory runs outside the lock so it may script the fake itself.
        return answer(body) if callable(answer) else answer

    def _wait(self, seconds: float) -> bool:
        """Wait, interrupted by stop(); True if the server is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _completion(self, body: dict[str, Any], reply: Reply, content: str) -> dict[str, Any]:
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _estimate_tokens(_message_text(body))
        completion = reply.completion_tokens if reply.completion_tokens is not None else _estimate_tokens(content)
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model_name),
            "system_fingerprint": "fake-llm",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fake: FakeLLM


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.1 keeps connections alive, as real providers do (a new TCP connection per call would inflate the
    # client's per-call cost in benchmarks); a fault that drops the connection closes it.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = {"id": fake.model_name, "object": "model", "created": 0, "owned_by": "stratum"}
            self._send_json(HTTPStatus.OK, {"object": "list", "data": [model]})
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no route GET {self.path}", "not_found_error")

    CHAT_ROUTES: tuple[str, ...] = ("/v1/chat/completions", "/chat/completions")
    """The POST routes that answer from the script."""

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = self.path.split("?", 1)[0].rstrip("/")
        if self._served_elsewhere(route, raw):
            return
        if route not in self.CHAT_ROUTES:
            self._send_error(HTTPStatus.NOT_FOUND, f"no route POST {self.path}", "not_found_error")
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as e:
            self._send_error(HTTPStatus.BAD_REQUEST, f"invalid JSON body: {e}", "invalid_request_error")
            return
        if body.get("stream"):
            message = f"{type(fake).__name__} does not stream; send stream=false"
            self._send_error(HTTPStatus.BAD_REQUEST, message, "invalid_request_error")
            return
        fake._begin(body)
        try:
            self._answer(body)
        finally:
            fake._end()

    def _served_elsewhere(self, route: str, raw: bytes) -> bool:
        """A POST route outside the script (a subclass's); True when it answered."""
        return False

    def _answer(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        try:
            answer = fake._pick(body)
        except Exception as e:  # a test's rule or factory broke: say so in the answer, not on the server's stderr
            message = f"{type(fake).__name__} rule failed: {type(e).__name__}: {e}"
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, message, "server_error")
            return
        if isinstance(answer, Fault):
            self._fault(answer, body)
            return
        reply = _as_reply(answer)
        if fake._wait(reply.latency if reply.latency > 0 else fake.latency):
            return
        if reply.content is not None:
            content = reply.content
        elif reply.json is not None:
            content = json.dumps(reply.json)
        else:
            content = fake._generated_content(body)
        self._send_json(HTTPStatus.OK, fake._response(body, reply, content))

    def _fault(self, fault: Fault, body: dict[str, Any]) -> None:
        fake = self.server.fake
        if fake._wait(fault.latency if fault.latency > 0 else fake.latency):
            return
        match fault.kind:
            case "rate_limit":
                headers = {} if fault.retry_after is None else {"Retry-After": _format_seconds(fault.retry_after)}
                self._send_error(
                    HTTPStatus.TOO_MANY_REQUESTS, "Rate limit reached (scripted)", "rate_limit_exceeded", headers
                )
            case "server_error":
                message = fault.message or fake.server_error_text
                self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, message, "server_error")
            case "bad_request":
                message = fault.message or "Invalid request (scripted)"
                self._send_error(HTTPStatus.BAD_REQUEST, message, "invalid_request_error")
            case "broken_json":
                self._send_json(HTTPStatus.OK, fake._response(body, Reply(), BROKEN_JSON))
            case "disconnect":
                self._drop()
            case "hang":
                self._hang()
                self._drop()

    def _hang(self) -> None:
        fake = self.server.fake
        deadline = time.monotonic() + HANG_LIMIT_S
        while time.monotonic() < deadline and not fake._wait(_POLL_S):
            if self._client_gone():
                return

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_json(self, status: HTTPStatus, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away; nothing to answer

    def _send_error(
        self, status: HTTPStatus, message: str, error_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        error = {"message": message, "type": error_type, "param": None, "code": error_type}
        self._send_json(status, {"error": error}, headers)


def _as_reply(answer: Reply | str | Mapping[str, Any] | None) -> Reply:
    if answer is None:
        return Reply()
    if isinstance(answer, Reply):
        return answer
    if isinstance(answer, str):
        return Reply(content=answer)
    return Reply(json=dict(answer))


def _message_text(body: Mapping[str, Any]) -> str:
    """The text of every message, joined by newlines (text parts of multi-part content included)."""
    parts: list[str] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return "\n".join(parts)


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _auto_content(body: Mapping[str, Any], dialect: Dialect = "openai") -> str:
    schema = _request_schema(body, dialect)
    return "{}" if schema is None else json.dumps(minimal_instance(schema))


def _request_schema(body: Mapping[str, Any], dialect: Dialect = "openai") -> Any:
    """The JSON schema the request asks for, from the fields `dialect` honours (see `FakeLLM`).

    `response_format` works in every dialect: an OpenAI `json_schema`, or a llama.cpp-style `json_object` with a
    `schema`.
    """
    if dialect == "vllm":
        structured = body.get("structured_outputs")
        if isinstance(structured, Mapping) and isinstance(structured.get("json"), Mapping):
            return structured["json"]
        if isinstance(body.get("guided_json"), Mapping):
            return body["guided_json"]
    if dialect == "llamacpp" and isinstance(body.get("json_schema"), Mapping):
        return body["json_schema"]
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping):
        return None
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        return spec.get("schema") if isinstance(spec, Mapping) else None
    return response_format.get("schema")


# -- minimal valid instances of a JSON schema ------------------------------------------------------------------------

_FORMATS = {
    "date-time": "2000-01-01T00:00:00Z",
    "date": "2000-01-01",
    "time": "00:00:00Z",
    "email": "a@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def minimal_instance(schema: Any) -> Any:
    """A small value valid against `schema` (a JSON Schema as dict): first enum value, bounds respected.

    Handles type (and type lists), enum, const, numeric bounds, string lengths and common formats, required
    properties, minItems and uniqueItems, anyOf/oneOf (first branch), allOf (merged), and local `$ref`s.
    `pattern` and `multipleOf` are not solved.
    """
    return _instance(schema, schema, 0, 0)


def _instance(schema: Any, root: Any, variant: int, depth: int) -> Any:
    if depth > 32 or not isinstance(schema, Mapping):
        return None
    if "$ref" in schema:
        merged = {**_resolve(root, str(schema["$ref"])), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _instance(merged, root, variant, depth + 1)
    if "allOf" in schema:
        merged = dict(schema)
        for part in merged.pop("allOf"):
            merged = _merge(merged, _resolve(root, part["$ref"]) if "$ref" in part else part)
        return _instance(merged, root, variant, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        values: Sequence[Any] = schema["enum"]
        return values[variant % len(values)] if values else None
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            branches: Sequence[Any] = schema[key]
            concrete = [b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")]
            return _instance((concrete or branches)[0], root, variant, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((t for t in kind if t != "null"), kind[0] if kind else None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    match kind:
        case "object":
            properties: Mapping[str, Any] = schema.get("properties") or {}
            return {
                name: _instance(properties.get(name, {}), root, variant, depth + 1)
                for name in schema.get("required") or ()
            }
        case "array":
            return _array(schema, root, variant, depth)
        case "string":
            return _string(schema, variant)
        case "integer":
            return int(_number(schema, variant, integer=True))
        case "number":
            return _number(schema, variant, integer=False)
        case "boolean":
            return variant % 2 == 1
        case _:
            return None


def _array(schema: Mapping[str, Any], root: Any, variant: int, depth: int) -> list[Any]:
    prefix: Sequence[Any] = schema.get("prefixItems") or ()
    count = max(int(schema.get("minItems", 0)), len(prefix) if schema.get("minItems") else 0)
    items = schema.get("items", {})
    unique = bool(schema.get("uniqueItems"))
    out: list[Any] = []
    for i in range(count):
        item_schema = prefix[i] if i < len(prefix) else items
        out.append(_instance(item_schema, root, variant + i if unique else variant, depth + 1))
    return out


def _string(schema: Mapping[str, Any], variant: int) -> str:
    if schema.get("format") in _FORMATS and variant == 0:
        return _FORMATS[str(schema["format"])]
    min_length = int(schema.get("minLength", 0))
    text = "" if variant == 0 else str(variant)
    text = text + "x" * max(0, min_length - len(text))
    max_length = schema.get("maxLength")
    return text if max_length is None else text[: int(max_length)]


def _number(schema: Mapping[str, Any], variant: int, *, integer: bool) -> float:
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
    if integer:
        low = None if low is None else math.floor(low) + 1 if low_open else math.ceil(low)
        high = None if high is None else math.ceil(high) - 1 if high_open else math.floor(high)
        low_open = high_open = False
    if low is not None:
        base = low if not low_open else (low + high) / 2 if high is not None else low + 1
    elif high is not None and high <= 0:
        base = high - 1 if high_open else high
    else:
        base = 0.0
    value = base + variant
    if high is not None and (value > high or (high_open and value >= high)):
        # Stay inside the bounds, still distinct per variant (integers may run out of room).
        value = high if integer else base + (high - base) * variant / (variant + 1)
    return float(value)


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    if exclusive in schema and isinstance(schema[exclusive], int | float) and not isinstance(schema[exclusive], bool):
        return float(schema[exclusive]), True
    if inclusive in schema:
        return float(schema[inclusive]), False
    return None, False


def _resolve(root: Any, ref: str) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, not {ref!r}")
    node = root
    for token in filter(None, ref[1:].split("/")):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {ref!r} does not point to a schema")
    return node


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**a, **b}
    if "properties" in a and "properties" in b:
        merged["properties"] = {**a["properties"], **b["properties"]}
    if "required" in a and "required" in b:
        merged["required"] = list(dict.fromkeys([*a["required"], *b["required"]]))
    return merged
