"""One process advances a run at a time, at the server: two servers on one SQLite file answering the same review
make the next model call once; a run a killed server left running is found at start and resumed by run id."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client
from server_helpers import HttpServer, make_server, serve_command, server_env, text_of
from tasks_client import TERMINAL, TasksExtension, get_task

from server import RESUME_TOOL
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Reply

PLAN = """\
version: "1"
contracts:
  Approval:
    approved: {type: boolean, description: Go on?}
  Outline:
    points: {type: integer, minimum: 0}
  Draft:
    title: {type: string}
functions:
  approve:
    mode: human
    question: Go on?
    input: {text: {type: string}}
    output: Approval
  outline:
    mode: infer
    intent: Outline the text.
    input: {text: {type: string}}
    output: Outline
    retries: 0
  draft:
    mode: infer
    intent: Draft a title for the text.
    input: {text: {type: string}}
    output: Draft
    retries: 0
flows:
  review_then_draft:
    input: {text: {type: string}}
    output: Draft
    steps:
      - {id: approve, function: approve, inputs: {text: $.input.text}}
      - {id: draft, function: draft, inputs: {text: $.input.text}, depends_on: [approve]}
  outline_then_draft:
    input: {text: {type: string}}
    output: Draft
    steps:
      - {id: outline, function: outline, inputs: {text: $.input.text}}
      - {id: draft, function: draft, inputs: {text: $.input.text}, depends_on: [outline]}
"""


class Gate:
    """The test LLM answers the draft step only once the test opens the gate; it counts what it was asked."""

    def __init__(self, llm: FakeLLM) -> None:
        self.opened = threading.Event()
        self.llm = llm
        llm.reset()
        llm.add_rule("Draft a title", self._draft)
        llm.add_rule("Outline the text", Reply(json={"points": 3}))

    def _draft(self, body: dict[str, Any]) -> Reply:
        self.opened.wait(120)
        return Reply(json={"title": "Rain"})

    def asked(self, intent: str) -> int:
        return sum(1 for body in self.llm.requests if intent in str(body.get("messages")))

    async def reached_draft(self, times: int = 1) -> None:
        def wait() -> bool:
            with self.llm._received:  # the fake's own condition: notified at every request
                return self.llm._received.wait_for(lambda: self.asked("Draft a title") >= times, timeout=120)

        assert await anyio.to_thread.run_sync(wait)


@pytest.fixture
def plans(tmp_path: Path) -> Path:
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "lease.stratum.yaml").write_text(PLAN, encoding="utf-8")
    return folder


@pytest.fixture
def gate(fake_llm: FakeLLM) -> Any:
    gate = Gate(fake_llm)
    yield gate
    gate.opened.set()


async def test_two_servers_answering_the_same_review_make_the_next_model_call_once(
    plans: Path, tmp_path: Path, fake_llm: FakeLLM, gate: Gate
) -> None:
    store = tmp_path / "runs.db"
    config = {"model": fake_llm.model, "api_base": fake_llm.url, "api_key": "test"}
    first, second = make_server(plans, store=store, **config), make_server(plans, store=store, **config)
    answers: dict[str, types.CallToolResult] = {}
    try:
        async with Client(first, mode="legacy") as one, Client(second, mode="legacy") as two:
            paused = await one.call_tool("review_then_draft", {"text": "rain"})
            assert paused.meta is not None, text_of(paused)
            review_id = paused.meta["stratum/review_id"]

            async def answer(name: str, client: Client) -> None:
                answers[name] = await client.call_tool(
                    RESUME_TOOL, {"review_id": review_id, "answer": {"approved": True}}
                )

            async with anyio.create_task_group() as group:
                group.start_soon(answer, "one", one)
                group.start_soon(answer, "two", two)
                await gate.reached_draft()
                with anyio.fail_after(120):  # the loser answers without waiting for the model
                    while len(answers) < 1:
                        await anyio.sleep(0.01)
                gate.opened.set()
    finally:
        first.close()
        second.close()
    outcomes = sorted(answers.values(), key=lambda result: bool(result.is_error))
    won, lost = outcomes
    assert not won.is_error and won.structured_content is not None, text_of(won)
    assert won.structured_content["output"] == {"title": "Rain"}
    assert lost.is_error and "is being advanced elsewhere" in text_of(lost), text_of(lost)
    assert gate.asked("Draft a title") == 1
    with SQLiteRunStore(store) as runs:
        run = runs.get_run(paused.meta["stratum/run_id"])
    assert run is not None and run.status == "succeeded" and run.lease_holder is None


@pytest.mark.slow
async def test_runs_left_running_by_a_killed_server_are_found_at_start_and_taken_up_over_mcp(
    plans: Path, tmp_path: Path, fake_llm: FakeLLM, gate: Gate
) -> None:
    store = tmp_path / "runs.db"
    command = serve_command(plans, store, "--wait", "0.5")
    killed = HttpServer(command, server_env(fake_llm))
    try:
        run_ids: list[str] = []
        async with killed.client("legacy") as client:
            for text in ("resumed", "polled", "cancelled"):
                handle = await client.call_tool("outline_then_draft", {"text": text})
                assert handle.meta is not None and handle.meta["stratum/status"] == "running", text_of(handle)
                run_ids.append(handle.meta["stratum/run_id"])
        await gate.reached_draft(3)  # each run's outline step is done and recorded; its draft step is at the model
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(timeout=30)
    finally:
        killed.stop()
    resumed, polled, cancelled = run_ids
    with SQLiteRunStore(store) as runs:
        left = [runs.get_run(run_id) for run_id in run_ids]
    assert all(run is not None and run.status == "running" and run.lease_holder is not None for run in left)

    gate.opened.set()
    server = HttpServer(command, server_env(fake_llm))
    try:
        found = "".join(server.lines)
        for run_id in run_ids:
            assert f"run {run_id} of 'outline_then_draft' was left running by a server that stopped" in found
        async with server.client("legacy") as client:
            status = await client.call_tool("stratum_status", {"run_id": resumed})
            assert status.structured_content is not None and "interrupted" in status.structured_content
            first = await client.call_tool(RESUME_TOOL, {"run_id": resumed})
            assert first.meta is not None and first.meta["stratum/status"] in ("running", "succeeded"), text_of(first)
            awaited = await client.call_tool("stratum_await", {"run_id": resumed, "timeout": 600})
            assert not awaited.is_error and awaited.structured_content == {"title": "Rain"}, text_of(awaited)
            done = await client.call_tool(RESUME_TOOL, {"run_id": resumed})  # a finished run: its outcome
            stopped = await client.call_tool("stratum_cancel", {"run_id": cancelled})
        async with server.client("auto", extensions=[TasksExtension()]) as tasks:
            with anyio.fail_after(600):  # a guard against a hang: tasks/get takes the run up, then reports it
                task = await get_task(tasks, polled)
                while task["status"] not in TERMINAL:
                    await anyio.sleep(0.05)
                    task = await get_task(tasks, polled)
    finally:
        server.stop()
    assert done.structured_content is not None, text_of(done)
    assert done.structured_content["status"] == "succeeded" and done.structured_content["output"] == {"title": "Rain"}
    assert stopped.structured_content is not None and stopped.structured_content["status"] == "cancelled"
    assert task["status"] == "completed" and task["result"]["structuredContent"] == {"title": "Rain"}, task
    assert gate.asked("Outline the text") == 3  # no finished step was redone
    assert gate.asked("Draft a title") == 5  # the three the killed server was in, then two made again once each
