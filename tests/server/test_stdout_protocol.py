"""Under `serve` on stdio, stdout carries JSON-RPC and nothing else, however loud LiteLLM is made to be."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

from server_helpers import serve_command, server_env

from stratum_core.testing import FakeLLM, Reply

PLAN = """
version: "1"
contracts:
  Mood:
    mood: {type: string, enum: [good, bad]}
functions:
  loud:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    call: loud_litellm:same
  mood:
    mode: infer
    intent: Say whether the text is in a good or a bad mood.
    input: {text: {type: string}}
    output: Mood
    retries: 0
flows:
  mood:
    input: {text: {type: string}}
    output: Mood
    budget: {usd: 0.05, tokens: 20000}
    steps:
      - {id: same, function: loud, inputs: {text: $.input.text}}
      - {id: judge, function: mood, inputs: {text: $.steps.same.output}}
"""

# Imported when the plan is checked, inside the server: LiteLLM at its most verbose, and a stray print.
LOUD = """
import litellm

litellm.set_verbose = True
litellm._turn_on_debug()
print("a stray print from a plan's module")


def same(text: str) -> str:
    print("a stray print while a step runs")
    return text
"""


def test_a_stdio_session_with_litellm_at_its_most_verbose_stays_valid_json_rpc(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.reset()  # the server tests share one test LLM
    (tmp_path / "loud.stratum.yaml").write_text(PLAN, encoding="utf-8")
    (tmp_path / "loud_litellm.py").write_text(LOUD, encoding="utf-8")
    fake_llm.enqueue(Reply(json={"mood": "good"}, prompt_tokens=20, completion_tokens=5))
    env = {
        **server_env(fake_llm),
        "LITELLM_LOG": "DEBUG",
        "STRATUM_PRICES": f"{fake_llm.model}=1,2",
        "PYTHONPATH": str(tmp_path),
    }
    lines: list[dict[str, Any]] = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "mood", "arguments": {"text": "Yay!"}}},
    ]
    process = subprocess.Popen(
        [*serve_command(tmp_path, ":memory:", "--poll", "0"), "--log-level", "debug"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(120, process.kill)  # a hang guard, not a budget
    watchdog.start()
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n".join(json.dumps(line) for line in lines) + "\n")
    process.stdin.flush()
    answers: list[dict[str, Any]] = []
    while not any(answer.get("id") == 3 for answer in answers):
        line = process.stdout.readline()
        assert line, "the server closed stdout before answering"
        answers.append(json.loads(line))  # fails on anything but JSON on stdout
    _, stderr = process.communicate(timeout=60)
    watchdog.cancel()

    assert all(answer["jsonrpc"] == "2.0" for answer in answers)
    by_id = {answer.get("id"): answer for answer in answers}
    assert "mood" in {tool["name"] for tool in by_id[2]["result"]["tools"]}
    assert by_id[3]["result"]["structuredContent"] == {"mood": "good"}, by_id[3]
    assert len(fake_llm.requests) == 1
    # what was printed went to stderr, and the model call is logged once by Stratum
    assert "a stray print from a plan's module" in stderr and "a stray print while a step runs" in stderr
    assert stderr.count("stratum.llm: model call:") == 1
