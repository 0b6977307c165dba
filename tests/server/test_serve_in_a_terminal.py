"""`stratum serve` started by hand at a terminal says what it is for and how to connect a client, and the first
Ctrl-C stops it (a real process whose stdin is a pseudo-terminal)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from server_helpers import TEST_PLANS, server_env

pytestmark = pytest.mark.slow

PROCESS_GUARD_S = 60  # a bound on a hung process, not a speed target


def test_serve_at_a_terminal_explains_itself_and_stops_on_the_first_ctrl_c() -> None:
    stratum = str(Path(sys.executable).with_name("stratum"))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [stratum, "serve", "--plans", str(TEST_PLANS), "--store", ":memory:", "--poll", "0"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(),
    )
    watchdog = threading.Timer(PROCESS_GUARD_S, process.kill)
    watchdog.start()
    try:
        assert process.stderr is not None
        said: list[str] = []
        for line in process.stderr:
            said.append(line)
            if "press Ctrl-C to stop" in line:
                break
        # Someone types at the terminal (here: a ping); once it is answered, stdin is being read for the next line.
        os.write(leader, b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n')
        assert process.stdout is not None
        pong = json.loads(process.stdout.readline())
        process.send_signal(signal.SIGINT)  # once
        rest, tail = process.communicate()
        said.append(tail)
    finally:
        watchdog.cancel()
        os.close(follower)
        os.close(leader)
    text = "".join(said)
    assert process.returncode == 0, text  # not killed by the watchdog
    assert "an MCP client starts it" in text
    assert f"claude mcp add stratum -- {stratum} serve --plans {TEST_PLANS.resolve()}" in text
    assert "stratum serve --http 127.0.0.1:8765" in text
    assert pong == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert all(json.loads(line) for line in rest.splitlines())  # stdout carries only the protocol
    assert "stratum serve: stopped" in text
