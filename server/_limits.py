"""Size limits on what clients send and what the server answers, the same on stdio and HTTP.

A flow's arguments (and a `stratum_run` plan with its input), an agent's report (`stratum_step_done`) and a run's
output are measured as the JSON they are (UTF-8 bytes), without building that JSON and stopping as soon as the
limit is passed, so a 20 MB string costs a few milliseconds to refuse. Over HTTP the request body is bounded
before it is read into memory; over stdio a line is (see `_stdio.py`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyLimit", "json_size", "too_large"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def json_size(value: Any, limit: int) -> int:
    """The size of `value` as JSON in UTF-8 bytes, exact up to `limit`; past it, a number over `limit`.

    Counts escapes as one byte (a lower bound), so a value under the limit may encode a little longer.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            total += len(item) + 2 if item.isascii() else len(item.encode("utf-8", "surrogatepass")) + 2
        elif kind is dict:
            total += 1 + 2 * len(item) if item else 2  # braces, a colon per entry, commas between
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind in (list, tuple):
            total += 1 + len(item) if item else 2
            stack.extend(item)
        elif item is None or item is True:
            total += 4
        elif item is False:
            total += 5
        else:
            total += len(repr(item))
        if total > limit:
            return total
    return total


def too_large(what: str, limit: int, setting: str) -> str:
    """The message refusing something too large: what, the limit, and the setting that changes it."""
    return f"{what}: too large (more than {limit:,} bytes as JSON; the limit is the server's {setting} setting)"


class BodyLimit:
    """ASGI middleware: an HTTP request body larger than `limit` bytes is answered 413, before it is all read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []  # read here, up to the limit, then replayed to the app
        seen = 0
        while True:
            message = await receive()
            if message.get("type") != "http.request":  # the client went away
                await self.app(scope, _replay([], message), send)
                return
            chunk = bytes(message.get("body", b""))
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"error": "request_too_large", "error_description": f"a request body may have at most {self.limit} bytes"}
        ).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def _replay(chunks: list[bytes], last: Message | None, receive: Receive | None = None) -> Receive:
    """A `receive` that first gives the body read so far (as one message), then what the client sends next."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
    if last is not None:
        pending = [last]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replay
