"""`stratum run` at a terminal: a human step that times out ends the run, and the process exits by itself.

A real process whose stdin is a pseudo-terminal that nobody types into: before, the abandoned question kept a
thread reading the terminal and the process waited for Enter after printing the result.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLAN = """
version: "1"
contracts:
  Approval:
    approved: {type: boolean}
functions:
  approve:
    mode: human
    question: Ship it?
    input: {text: {type: string}}
    output: Approval
    timeout: 1s
    on_timeout: {approved: false}
flows:
  ship:
    input: {text: {type: string}}
    output: Approval
    steps: [{id: ok, function: approve, inputs: {text: $.input.text}}]
"""
PROCESS_GUARD_S = 120  # a bound on a hung process, not a speed target


def test_a_timed_out_question_at_a_terminal_prints_the_fallback_and_exits(tmp_path: Path) -> None:
    plan = tmp_path / "ship.stratum.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("stratum")), "run", str(plan), "ship", "--input", '{"text": "v2"}',
             "--store", str(tmp_path / "runs.db")],
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=PROCESS_GUARD_S,
            check=False,
            env={**os.environ, "LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        )  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"approved": False}
    assert "Ship it?" in done.stderr and "no answer to 'Ship it?' in time" in done.stderr
