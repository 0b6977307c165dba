"""The stdio transport's writer: answers written from the event loop to a pipe, whole, without blocking the loop."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import anyio.to_thread

from server._stdio import wire_writer


def _read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.read(fd, min(65_536, size - got))
        assert chunk, "the pipe closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


async def test_a_message_larger_than_the_pipe_arrives_whole_while_the_loop_goes_on() -> None:
    read_end, write_end = os.pipe()
    message = b"".join(b"%07d," % i for i in range(200_000)) + b"\n"  # 1.6 MB: many times a pipe's buffer
    try:
        async with wire_writer(write_end) as writer:
            assert writer.on_loop and not os.get_blocking(write_end)
            written = anyio.Event()
            async with anyio.create_task_group() as group:

                async def write() -> None:
                    await writer.write(message)
                    written.set()

                group.start_soon(write)
                # nobody reads yet: the pipe is full and the write waits, but the event loop still runs other tasks
                with anyio.fail_after(30):
                    await anyio.lowlevel.checkpoint()
                    await anyio.sleep(0)
                assert not written.is_set()
                received = await anyio.to_thread.run_sync(_read_exactly, read_end, len(message))
                with anyio.fail_after(30):
                    await written.wait()
        assert received == message
        assert os.get_blocking(write_end)  # the descriptor's mode is given back
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_messages_are_written_in_order_and_never_interleaved() -> None:
    read_end, write_end = os.pipe()
    lines = [(b"%d:" % i) + b"x" * (i * 997 % 70_000) + b"\n" for i in range(40)]
    try:
        async with wire_writer(write_end) as writer:

            async def write_all() -> None:
                for line in lines:
                    await writer.write(line)

            async with anyio.create_task_group() as group:
                group.start_soon(write_all)
                received = await anyio.to_thread.run_sync(_read_exactly, read_end, sum(map(len, lines)))
        assert received.splitlines(keepends=True) == lines
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_a_regular_file_is_written_through_a_thread_and_left_blocking(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        async with wire_writer(fd) as writer:
            assert not writer.on_loop
            await writer.write(b'{"jsonrpc": "2.0"}\n')
        assert os.get_blocking(fd)
    finally:
        os.close(fd)
    with open(path, "rb") as file:
        assert file.read() == b'{"jsonrpc": "2.0"}\n'
