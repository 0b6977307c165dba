"""A paused run resumed by another server (another process, another working folder) still imports its `call:` modules.

The run records where its plan's modules live; the plan is reloaded with that folder on its module search path,
whatever the resuming process's working folder and sys.path are.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from mcp import Client
from server_helpers import make_server

from server import RESUME_TOOL
from stratum_core._call_targets import _resolve

PLAN = """
version: "1"
contracts:
  Approval:
    approved: {type: boolean}
functions:
  shout:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    call: MODULE:shout
  approve:
    mode: human
    question: Shout it?
    input: {text: {type: string}}
    output: Approval
flows:
  loud:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - {id: first, function: shout, inputs: {text: $.input.text}}
      - {id: ok, function: approve, inputs: {text: $.steps.first.output}}
      - {id: again, function: shout, inputs: {text: $.steps.first.output}}
"""


async def test_a_run_resumed_by_another_server_elsewhere_imports_the_module_beside_its_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"shout_tools_{uuid.uuid4().hex[:8]}"
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / f"{module}.py").write_text("def shout(text):\n    return text.upper() + '!'\n", encoding="utf-8")
    (plans / "loud.stratum.yaml").write_text(PLAN.replace("MODULE", module), encoding="utf-8")
    store = tmp_path / "runs.db"
    monkeypatch.chdir(tmp_path)
    first = make_server(Path("plans"), store=store)  # a relative plans folder, as `stratum serve` is usually given
    try:
        async with Client(first, mode="legacy") as client:
            paused = await client.call_tool("loud", {"text": "hi"})
    finally:
        first.close()
    assert paused.meta is not None and paused.meta["stratum/status"] == "paused", paused

    # Another process: the module was never imported there, and it runs in another folder.
    sys.modules.pop(module, None)
    _resolve.cache_clear()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    second = make_server(elsewhere, store=store)
    try:
        async with Client(second, mode="legacy") as client:
            done = await client.call_tool(
                RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": {"approved": True}}
            )
    finally:
        second.close()
        sys.modules.pop(module, None)
    assert not done.is_error, done.content
    assert done.structured_content is not None and done.structured_content["output"] == "HI!!"
