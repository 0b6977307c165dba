"""Standard input for the stdio transport, read in a daemon thread.

The SDK reads stdin in an anyio worker thread, which nothing can interrupt: a server told to stop (Ctrl-C at a
terminal, SIGINT from a client that keeps stdin open) waits for one more line before it can exit. Here the lines
are read by a daemon thread and handed to the event loop; stopping abandons the read, and the process ends.

As the SDK does, file descriptor 0 is pointed at the null device while serving (so code run by a step cannot read the
protocol's input) and restored afterwards; the protocol is read from a private duplicate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["DaemonLines", "Oversize", "claimed_stdin"]

logger = logging.getLogger("stratum.server")


_KEPT_OF_OVERSIZE = 4096
"""How much of a line that is too long is kept: enough to find its request id, which comes first in practice."""


@dataclass(frozen=True)
class Oversize:
    """A line longer than the limit, dropped after its first bytes (`head`): the transport answers it."""

    head: str
    limit: int


class DaemonLines:
    """The lines of a binary stream as text (UTF-8, bad bytes replaced), read by a daemon thread, until EOF.

    A line longer than `max_line` bytes comes as an `Oversize`: its first bytes only.
    """

    def __init__(self, raw: BinaryIO, *, max_line: int | None = None) -> None:
        self._raw = raw
        self._max_line = max_line
        self._send: MemoryObjectSendStream[str | Oversize]
        self._receive: MemoryObjectReceiveStream[str | Oversize]
        self._send, self._receive = anyio.create_memory_object_stream[str | Oversize](1)
        self.started = False
        self.finished = threading.Event()

    def _read(self, token: anyio.lowlevel.EventLoopToken) -> None:
        try:
            while True:
                line = self._raw.readline(self._max_line + 1) if self._max_line is not None else self._raw.readline()
                if not line:
                    break
                item: str | Oversize
                if self._max_line is not None and len(line) > self._max_line and not line.endswith(b"\n"):
                    self._skip_rest()  # never held whole: dropped, its first bytes kept to answer it
                    logger.warning(
                        "stdin: a message longer than %d bytes was refused (the max_message_bytes setting): %r...",
                        self._max_line,
                        line[:80].decode("utf-8", errors="replace"),
                    )
                    head = line[:_KEPT_OF_OVERSIZE].decode("utf-8", errors="replace")
                    item = Oversize(head=head, limit=self._max_line)
                else:
                    item = line.decode("utf-8", errors="replace")
                try:  # a plain call on the loop when the line fits the buffer; a task there only to wait for room
                    anyio.from_thread.run_sync(self._send.send_nowait, item, token=token)
                except anyio.WouldBlock:
                    anyio.from_thread.run(self._send.send, item, token=token)
            with contextlib.suppress(Exception):
                anyio.from_thread.run_sync(self._send.close, token=token)
        except Exception:  # the event loop ended or the stream is closed: nobody reads these lines any more
            pass
        finally:
            self.finished.set()

    def _skip_rest(self) -> None:
        """Read and drop the rest of a line that is too long, a chunk at a time."""
        while True:
            chunk = self._raw.readline(65_536)
            if not chunk or chunk.endswith(b"\n"):
                return

    def __aiter__(self) -> AsyncIterator[str | Oversize]:
        return self

    async def __anext__(self) -> str | Oversize:
        if not self.started:
            self.started = True
            token = anyio.lowlevel.current_token()
            threading.Thread(target=self._read, args=(token,), name="stratum stdin", daemon=True).start()
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


@contextlib.contextmanager
def claimed_stdin(*, max_line: int | None = None) -> Iterator[DaemonLines]:
    """Stdin's lines for the protocol, with fd 0 on the null device meanwhile (restored on exit).

    A line longer than `max_line` bytes is dropped (and logged) without being held in memory whole: it comes as an
    `Oversize` holding its first bytes.
    """
    private = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    lines = DaemonLines(os.fdopen(private, "rb", closefd=False), max_line=max_line)
    try:
        yield lines
    finally:
        os.dup2(private, 0)
        if lines.finished.is_set() or not lines.started:  # else the daemon thread may still block on it
            os.close(private)
