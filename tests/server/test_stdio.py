"""stdio answers malformed input with JSON-RPC errors, never silence, and keeps serving after each.

`stratum serve` as a subprocess, fed raw lines; and the pieces (`error_reply`, `recover_id`) on their own.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import INITIALIZE, TEST_PLANS, serve_command, server_env

from server._stdin import Oversize
from server._stdio import error_reply, oversize_reply, recover_id

LIMIT = 100_000


class RawClient:
    """A `stratum serve` subprocess spoken to line by line."""

    def __init__(self) -> None:
        env = {**server_env(), "STRATUM_MAX_MESSAGE_BYTES": str(LIMIT)}
        self.process = subprocess.Popen(
            serve_command(TEST_PLANS, ":memory:"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.replies: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.replies.put(line)
        self.replies.put(b"")

    def send(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def reply(self) -> dict[str, Any]:
        """The next reply the server writes, notifications skipped (a guard of 60 s against a hang, not a measure)."""
        while True:
            line = self.replies.get(timeout=60)
            assert line, "the server closed stdout"
            message: dict[str, Any] = json.loads(line)
            if "id" in message:
                return message

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def client() -> Iterator[RawClient]:
    raw = RawClient()
    raw.send(json.dumps(INITIALIZE).encode())
    assert raw.reply()["id"] == 1
    raw.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    yield raw
    raw.close()


def ping(request_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()


BIG = "x" * (LIMIT + 10)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("line", "code", "reply_id"),
    [
        (b"this is not json", -32700, None),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {"x": "\\ud800"}}', -32700, 7),
        (b'[{"jsonrpc": "2.0", "id": 8, "method": "ping"}]', -32600, None),
        (b"42", -32600, None),
        (b'"ping"', -32600, None),
        (b'{"id": 9, "method": "ping"}', -32600, 9),
        (b'{"jsonrpc": "1.0", "id": "nine", "method": "ping"}', -32600, "nine"),
        (b'{"jsonrpc": "2.0", "id": 10, "method": 5}', -32600, 10),
        (
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 11,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": BIG}},
                }
            ).encode(),
            -32600,
            11,
        ),
        (
            json.dumps({"jsonrpc": "2.0", "method": "tools/call", "params": {"text": BIG}, "id": 12}).encode(),
            -32600,
            None,
        ),
    ],
    ids=[
        "garbage",
        "lone-surrogate",
        "batch",
        "number",
        "string",
        "no-jsonrpc",
        "old-jsonrpc",
        "bad-method",
        "over-size",
        "over-size-id-last",
    ],
)
def test_a_malformed_line_gets_an_error_reply_and_the_server_keeps_serving(
    client: RawClient, line: bytes, code: int, reply_id: Any
) -> None:
    client.send(line)
    reply = client.reply()
    assert reply["jsonrpc"] == "2.0" and reply["id"] == reply_id and reply["error"]["code"] == code
    client.send(ping(99))
    assert client.reply() == {"jsonrpc": "2.0", "id": 99, "result": {}}


@pytest.mark.slow
def test_after_a_lone_surrogate_the_same_call_with_valid_text_is_served(client: RawClient) -> None:
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "?"}}}
    client.send(json.dumps(call).replace('"?"', '"\\udfff"').encode())
    reply = client.reply()
    assert reply["id"] == 5 and reply["error"]["code"] == -32700 and "lone surrogate" in reply["error"]["message"]
    client.send(json.dumps(call).replace('"?"', '"fine"').encode())
    assert client.reply()["result"]["structuredContent"] == {"text": "fine", "length": 4}


def test_each_kind_of_malformed_line_gets_its_error_and_message() -> None:
    assert error_reply("{").error.message.startswith("Parse error: not JSON")
    assert error_reply('{"jsonrpc": "2.0", "id": 3, "x": "\\ud800"}').model_dump() == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {
            "code": -32700,
            "message": "Parse error: a string holds a lone surrogate (not valid Unicode)",
            "data": None,
        },
    }
    assert "batches" in error_reply("[]").error.message
    assert error_reply('{"id": true, "method": "ping"}').id is None  # a boolean is no id
    assert error_reply('{"jsonrpc": "2.0", "id": 4}').error.message == (
        "Invalid Request: not a JSON-RPC request, notification or response"
    )
    refused = oversize_reply(Oversize(head='{"jsonrpc": "2.0", "id": "abc", "params": {"text": "xx', limit=10))
    assert refused.id == "abc" and refused.error.data == {"limit": 10} and "max_message_bytes" in refused.error.message


@pytest.mark.parametrize(
    ("head", "found"),
    [
        ('{"jsonrpc": "2.0", "id": 17, "method": "x", "params": {"a": "', 17),
        ('{"id": -3, "method"', -3),
        ('{"id":"a\\"b", "params": {', 'a"b'),
        ('{"method": "x", "params": {"id": 5, "text": "', None),
        ('{"params": {"text": "} , \\"id\\": 6', None),
        ('{"id": 12', None),  # the number may go on: not known whole
        ('{"method": "x", "params": "', None),
    ],
)
def test_the_id_of_a_too_long_line_is_recovered_from_its_top_level_only(head: str, found: Any) -> None:
    assert recover_id(head) == found
