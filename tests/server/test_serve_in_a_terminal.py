"""`stratum serve` started by hand at a terminal says what it is for and how to connect a client, and the first
Ctrl-C stops it (a real process whose stdin is a pseudo-terminal)."""

from __future__ import annotations

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
    assert rest == ""  # stdout carries only the protocol: nothing was written to it
