"""The stdio transport: one JSON-RPC message a line each way; a malformed line is answered, never dropped.

The SDK's `stdio_server` hands a line it cannot validate to the session as an exception, and nothing answers it:
the client waits forever. Here each line is validated as the SDK does (`jsonrpc_message_adapter`); one that fails
is answered with a JSON-RPC error, and the server reads on:

- not JSON, or a string escaping a lone surrogate (a high surrogate without its low half): -32700 Parse error;
- a batch (an array; MCP has none), a value that is not an object, `jsonrpc` missing or not "2.0", or an object
  that is no JSON-RPC message: -32600 Invalid Request;
- a line over the size limit (`max_message_bytes`, see `_limits.py`; read by `_stdin.py` without holding it
  whole): -32600 naming the limit.

The reply carries the message's id when it can be recovered (for a line over the limit: from its first bytes, when
`id` comes before the large part, as clients write it), else null.

Answers are written from the event loop when stdout is a pipe or a socket (what an MCP client gives its server): the
descriptor is made non-blocking, each message is written with `os.write` as far as the pipe takes it, and the rest
waits until the pipe has room (`anyio.wait_writable`): a client that stops reading holds up this writer only, never
the loop. The SDK writes each message with a write and a flush in a worker thread (two thread hops a message, about a
sixth of a small call's server time); a terminal or a file is still written that way.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import sys
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp.types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from server._stdin import Oversize

__all__ = ["LineWriter", "error_reply", "oversize_reply", "recover_id", "stdio_streams", "wire_writer"]

logger = logging.getLogger("stratum.server")

RequestId = int | str | None


def _id_of(value: Any) -> RequestId:
    """A message's id if it is a valid one (an integer or a string), else None."""
    if isinstance(value, dict):
        found = value.get("id")
        if (isinstance(found, int) and not isinstance(found, bool)) or isinstance(found, str):
            return found
    return None


def _reply(code: int, message: str, request_id: RequestId, data: Any = None) -> types.JSONRPCError:
    return types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message, data=data)
    )


def error_reply(line: str) -> types.JSONRPCError:
    """The error answering a line the SDK could not validate as a JSON-RPC message."""
    try:
        value = json.loads(line)
    except ValueError as e:
        return _reply(types.PARSE_ERROR, f"Parse error: not JSON ({e})", None)
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return _reply(
            types.PARSE_ERROR, "Parse error: a string holds a lone surrogate (not valid Unicode)", _id_of(value)
        )
    if isinstance(value, list):
        return _reply(types.INVALID_REQUEST, "Invalid Request: batches (JSON arrays) are not supported", None)
    if not isinstance(value, dict):
        return _reply(types.INVALID_REQUEST, "Invalid Request: a message must be a JSON object", None)
    request_id = _id_of(value)
    if value.get("jsonrpc") != "2.0":
        return _reply(types.INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', request_id)
    return _reply(
        types.INVALID_REQUEST, "Invalid Request: not a JSON-RPC request, notification or response", request_id
    )


def recover_id(head: str) -> RequestId:
    """The top-level `id` of a message from its first characters, if it appears there whole; else None.

    Scans the object's top level only (strings and nested values skipped), so an `id` inside `params` is never
    taken for the message's own.
    """
    i, n, depth = 0, len(head), 0
    key: str | None = None
    expecting_value = False
    while i < n:
        char = head[i]
        if char == '"':
            end = _string_end(head, i)
            if end < 0:
                return None
            if depth == 1 and not expecting_value:
                key = json.loads(head[i : end + 1])
            elif depth == 1 and expecting_value and key == "id":
                return json.loads(head[i : end + 1])  # type: ignore[no-any-return]
            i = end + 1
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        elif char == ":" and depth == 1:
            expecting_value = True
            if key == "id":
                number = head[i + 1 :].lstrip()
                digits = len(number) - len(number.lstrip("-0123456789"))
                if digits and digits < len(number):
                    try:
                        return int(number[:digits])
                    except ValueError:
                        return None
        elif char == "," and depth == 1:
            expecting_value, key = False, None
        i += 1
    return None


def _string_end(text: str, start: int) -> int:
    """The index of the quote closing the JSON string that opens at `start`, or -1 when it does not close."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


def oversize_reply(line: Oversize) -> types.JSONRPCError:
    """The error answering a line longer than the limit (with its id when its first bytes hold it)."""
    return _reply(
        types.INVALID_REQUEST,
        f"Invalid Request: the message is larger than {line.limit:,} bytes (the server's max_message_bytes setting)",
        recover_id(line.head),
        {"limit": line.limit},
    )


class LineWriter:
    """Writes whole messages to a descriptor: from the event loop when it is a pipe or socket, else in a thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        mode = os.fstat(fd).st_mode
        self._on_loop = sys.platform != "win32" and (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode))
        self._was_blocking = os.get_blocking(fd) if self._on_loop else True
        self._file: anyio.AsyncFile[bytes] | None = None
        if self._on_loop:
            os.set_blocking(fd, False)
        else:  # a view of the descriptor: closing it leaves the descriptor open
            self._file = anyio.wrap_file(io.FileIO(fd, "wb", closefd=False))

    @property
    def on_loop(self) -> bool:
        """True when messages are written from the event loop (a non-blocking pipe or socket)."""
        return self._on_loop

    async def write(self, data: bytes) -> None:
        """Write all of `data`, waiting for room as often as the descriptor is full (partial writes continued)."""
        if self._file is not None:
            while data:
                written = await self._file.write(data)
                data = data[written or 0 :]
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            view = view[written:]

    def close(self) -> None:
        """Give the descriptor its blocking mode back (it stays open: it is the caller's)."""
        if self._on_loop and self._was_blocking:
            os.set_blocking(self._fd, True)


@asynccontextmanager
async def wire_writer(fd: int) -> AsyncIterator[LineWriter]:
    """A `LineWriter` over `fd` for as long as the context lasts; the descriptor's mode is restored on exit."""
    writer = LineWriter(fd)
    try:
        yield writer
    finally:
        writer.close()


@asynccontextmanager
async def stdio_streams(
    lines: AsyncIterable[str | Oversize], stdout: LineWriter
) -> AsyncIterator[tuple[ObjectReceiveStream[SessionMessage | Exception], ObjectSendStream[SessionMessage]]]:
    """The session's read and write streams over `lines` (stdin) and `stdout`; malformed lines answered here."""
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    replies = write_stream.clone()  # the reader answers malformed lines through the writer, in order

    async def reader() -> None:
        async with read_writer, replies:
            async for line in lines:
                if isinstance(line, Oversize):
                    await replies.send(SessionMessage(oversize_reply(line)))
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValidationError:
                    reply = error_reply(line)
                    logger.warning("stdin: %s (id %r)", reply.error.message, reply.id)
                    await replies.send(SessionMessage(reply))
                    continue
                await read_writer.send(SessionMessage(message))

    async def writer() -> None:
        async with write_reader:
            async for session_message in write_reader:
                text = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                await stdout.write((text + "\n").encode("utf-8"))

    async with anyio.create_task_group() as group:
        group.start_soon(_quietly, reader)
        group.start_soon(_quietly, writer)
        try:
            yield read_stream, write_stream
        finally:
            group.cancel_scope.cancel()


async def _quietly(work: Any) -> None:
    """Run a pump until its stream closes (the session ended): a closed stream is the normal end."""
    try:
        await work()
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        await anyio.lowlevel.checkpoint()
