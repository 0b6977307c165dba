"""Long runs: a call answers with a handle (or a task) and the run goes on; status, await, cancel; restarts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client
from server_helpers import HERE, make_server, serve_command, server_env, stdio_params, text_of
from tasks_client import CreateTaskResult, TasksExtension, call_for_task, cancel_task, get_task, update_task

from server import RESUME_TOOL, StratumServer
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Reply

LONG_PLANS = HERE / "long_plans"
DRAFT = {"title": "Rain tomorrow", "words": 3}
SUMMARY = {"title": "Rain tomorrow", "words": 3, "shout": "RAIN TOMORROW"}


class Gate:
    """The test LLM answers the draft step only once the test opens the gate: a flow as long as the test wants."""

    def __init__(self, llm: FakeLLM) -> None:
        self.opened = threading.Event()
        self.llm = llm
        llm.reset()
        llm.add_rule("Draft a title", self._answer)

    def _answer(self, body: dict[str, Any]) -> Reply:
        self.opened.wait(60)
        return Reply(json=DRAFT, prompt_tokens=40, completion_tokens=10)

    def open(self) -> None:
        self.opened.set()

    async def reached(self) -> None:
        """Wait until the run's model call has reached the test LLM (the draft step is running)."""
        assert await anyio.to_thread.run_sync(lambda: self.llm.wait_for_requests(1, timeout=60))


@pytest.fixture
def gate(fake_llm: FakeLLM) -> Iterator[Gate]:
    gate = Gate(fake_llm)
    yield gate
    gate.open()


def long_server(llm: FakeLLM, *, store: Path | None = None, **config: Any) -> StratumServer:
    config.setdefault("wait", 0.2)
    config.setdefault("task_wait", 0.05)
    config.setdefault("task_poll_interval", 0.05)
    return make_server(LONG_PLANS, store=store, model=llm.model, api_base=llm.url, api_key="test", **config)


def handle_of(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and "stratum_run" in result.structured_content, result
    handle = result.structured_content["stratum_run"]
    assert isinstance(handle, dict)
    return handle


async def settled(server: StratumServer, run_id: str) -> None:
    """Wait until the server's background run has reached its next settled state (finished or paused)."""
    active = server.runs.get(run_id)
    if active is not None:
        with anyio.fail_after(30):
            await active.settled.wait()


async def direct_result(llm: FakeLLM, flow: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """What the flow's tool answers when the run finishes within the call."""
    Gate(llm).open()
    server = long_server(llm, wait=60)
    try:
        async with Client(server, mode="legacy") as client:
            return await client.call_tool(flow, arguments)
    finally:
        server.close()


async def test_a_long_flow_answers_a_handle_and_await_returns_what_the_direct_call_would(
    gate: Gate, fake_llm: FakeLLM, mode: str
) -> None:
    server = long_server(fake_llm)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with Client(server, mode=mode) as client:
        first = await client.call_tool("summarize_long", {"text": "it will rain"}, progress_callback=on_progress)
        handle = handle_of(first)
        assert handle["status"] == "running" and handle["flow"] == "summarize_long"
        assert first.meta is not None and first.meta["stratum/status"] == "running"
        assert text_of(first).startswith("RUNNING (not failed)") and "stratum_await" in text_of(first)
        run_id = handle["run_id"]
        await gate.reached()
        status = await client.call_tool("stratum_status", {"run_id": run_id})
        assert not status.is_error and status.structured_content is not None
        assert status.structured_content["status"] == "running"
        assert status.structured_content["progress"]["steps_total"] == 2
        assert status.structured_content["progress"]["running"] == ["draft"]
        looked = await client.call_tool("stratum_await", {"run_id": run_id, "timeout": 0})
        assert handle_of(looked)["status"] == "running"
        active = server.runs.get(run_id)
        assert active is not None
        outcome: list[types.CallToolResult] = []

        async def wait_for_it() -> None:
            arguments = {"run_id": run_id, "timeout": 30}
            outcome.append(await client.call_tool("stratum_await", arguments, progress_callback=on_progress))

        async with anyio.create_task_group() as group:
            group.start_soon(wait_for_it)
            with anyio.fail_after(30):
                while not active.followers:  # the await call follows the run: now let the model answer
                    await anyio.sleep(0)
            gate.open()
        [done] = outcome
        finished = await client.call_tool("stratum_status", {"run_id": run_id})
    server.close()
    direct = await direct_result(fake_llm, "summarize_long", {"text": "it will rain"})
    assert not done.is_error, text_of(done)
    assert done.structured_content == direct.structured_content == SUMMARY
    assert text_of(done) == text_of(direct)
    assert finished.structured_content is not None and finished.structured_content["output"] == SUMMARY
    assert [p[:2] for p in progress] == [(1, 2), (2, 2)]  # the await call got the run's progress


async def test_a_tasks_client_gets_a_task_whose_result_is_what_the_direct_call_would_return(
    gate: Gate, fake_llm: FakeLLM
) -> None:
    server = long_server(fake_llm)
    async with Client(server, extensions=[TasksExtension()]) as client:
        created = await call_for_task(client, "summarize_long", {"text": "it will rain"})
        assert isinstance(created, CreateTaskResult) and created.status == "working"
        assert created.poll_interval_ms == 50 and created.ttl_ms is None
        await gate.reached()
        working = await get_task(client, created.task_id)
        assert working["status"] == "working" and working["resultType"] == "complete"
        assert working["statusMessage"].startswith("0/2 steps done; running: draft")
        assert working["_meta"]["stratum/progress"]["steps_total"] == 2
        gate.open()
        await settled(server, created.task_id)
        completed = await get_task(client, created.task_id)
    server.close()
    direct = await direct_result(fake_llm, "summarize_long", {"text": "it will rain"})
    assert completed["status"] == "completed"
    result = types.CallToolResult.model_validate(completed["result"])
    assert result.structured_content == direct.structured_content == SUMMARY
    assert not result.is_error and text_of(result) == text_of(direct)


async def test_a_tasks_client_gets_the_result_itself_when_the_run_finishes_within_the_task_wait(
    fake_llm: FakeLLM,
) -> None:
    Gate(fake_llm).open()
    server = long_server(fake_llm, task_wait=60)
    async with Client(server, extensions=[TasksExtension()]) as client:
        result = await call_for_task(client, "summarize_long", {"text": "it will rain"})
    server.close()
    assert isinstance(result, types.CallToolResult) and result.structured_content == SUMMARY


async def test_tasks_methods_need_the_extension_and_a_known_task(fake_llm: FakeLLM) -> None:
    from mcp.shared.exceptions import MCPError

    server = long_server(fake_llm)
    async with Client(server, extensions=[TasksExtension()]) as client:
        with pytest.raises(MCPError) as unknown:
            await get_task(client, "nope")
    async with Client(server) as plain:
        with pytest.raises(MCPError) as undeclared:
            await get_task(plain, "nope")
    server.close()
    assert unknown.value.error.code == types.INVALID_PARAMS
    assert undeclared.value.error.code == -32021


async def test_stratum_cancel_stops_a_running_run(gate: Gate, fake_llm: FakeLLM, mode: str) -> None:
    server = long_server(fake_llm)
    async with Client(server, mode=mode) as client:
        run_id = handle_of(await client.call_tool("summarize_long", {"text": "stop me"}))["run_id"]
        cancelled = await client.call_tool("stratum_cancel", {"run_id": run_id})
        after = await client.call_tool("stratum_await", {"run_id": run_id, "timeout": 5})
    run = server.store.get_run(run_id)
    server.close()
    assert not cancelled.is_error and cancelled.structured_content == {
        "run_id": run_id,
        "flow": "summarize_long",
        "status": "cancelled",
    }
    assert run is not None and run.status == "cancelled"
    assert after.is_error and "RunCancelled" in text_of(after)


async def test_tasks_cancel_cancels_the_run(gate: Gate, fake_llm: FakeLLM) -> None:
    server = long_server(fake_llm)
    async with Client(server, extensions=[TasksExtension()]) as client:
        created = await call_for_task(client, "summarize_long", {"text": "stop me"})
        assert isinstance(created, CreateTaskResult)
        ack = await cancel_task(client, created.task_id)
        task = await get_task(client, created.task_id)
    server.close()
    assert ack["resultType"] == "complete"
    assert task["status"] == "cancelled" and "cancelled" in task["statusMessage"]


async def test_a_human_step_is_answered_through_tasks_update_and_an_invalid_answer_is_asked_again(
    fake_llm: FakeLLM,
) -> None:
    Gate(fake_llm).open()
    server = long_server(fake_llm)
    async with Client(server, extensions=[TasksExtension()]) as client:
        created = await call_for_task(client, "publish_after_review", {"text": "it will rain"})
        assert isinstance(created, CreateTaskResult)
        await settled(server, created.task_id)
        asking = await get_task(client, created.task_id)
        assert asking["status"] == "input_required"
        [(key, request)] = asking["inputRequests"].items()
        assert request["method"] == "elicitation/create"
        assert (
            request["params"]["message"].startswith("Publish this draft?")
            and "Rain tomorrow" in request["params"]["message"]
        )
        assert request["params"]["requestedSchema"]["properties"]["priority"]["maximum"] == 5
        wrong = {"action": "accept", "content": {"approve": True, "priority": 9, "reason": "urgent"}}
        await update_task(client, created.task_id, {key: wrong})
        again = await get_task(client, created.task_id)
        [(key2, request2)] = again["inputRequests"].items()
        assert (
            key2 != key
            and "not accepted (priority: 9 is greater than the maximum of 5)" in request2["params"]["message"]
        )
        await update_task(client, created.task_id, {key: wrong})  # an answered key is ignored
        right = {"action": "accept", "content": {"approve": True, "priority": 4, "reason": "useful"}}
        await update_task(client, created.task_id, {key2: right})
        await settled(server, created.task_id)
        done = await get_task(client, created.task_id)
    reviews = server.store.list_reviews(status=None, run_id=created.task_id)
    server.close()
    assert done["status"] == "completed"
    assert done["result"]["structuredContent"] == {"title": "Rain tomorrow", "approved": True, "priority": 4}
    [review] = reviews
    assert (review.action, review.value) == ("accept", {"approve": True, "priority": 4, "reason": "useful"})


async def test_a_decision_met_after_the_handle_is_asked_when_the_client_awaits_the_run(
    gate: Gate, fake_llm: FakeLLM, mode: str
) -> None:
    seen: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": False, "priority": 2, "reason": "later"})

    server = long_server(fake_llm)
    async with Client(server, mode=mode, elicitation_callback=answer) as client:
        run_id = handle_of(await client.call_tool("publish_after_review", {"text": "it will rain"}))["run_id"]
        gate.open()
        await settled(server, run_id)  # paused: no call was there to ask the person
        done = await client.call_tool("stratum_await", {"run_id": run_id, "timeout": 30})
    server.close()
    assert len(seen) == 1 and seen[0].startswith("Publish this draft?")
    assert not done.is_error, text_of(done)
    assert done.structured_content == {"title": "Rain tomorrow", "approved": False, "priority": 2}


async def test_invalid_answers_are_asked_again_within_a_bound_in_both_eras_and_nothing_is_recorded(
    fake_llm: FakeLLM, mode: str
) -> None:
    Gate(fake_llm).open()
    seen: list[str] = []

    async def wrong(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True, "priority": 0, "reason": "x"})

    server = long_server(fake_llm, wait=30)
    async with Client(server, mode=mode, elicitation_callback=wrong) as client:
        paused = await client.call_tool("publish_after_review", {"text": "it will rain"})
        handle = handle_of(paused)
        review_id = handle["review"]["review_id"]
        fixed = await client.call_tool(
            RESUME_TOOL, {"review_id": review_id, "answer": {"approve": True, "priority": 1, "reason": "ok"}}
        )
    review = server.store.get_review(review_id)
    server.close()
    assert len(seen) == 3  # asked, then asked again twice with what was wrong
    assert all("not accepted (priority: 0 is less than the minimum of 1)" in message for message in seen[1:])
    assert handle["status"] == "paused" and handle["waiting_for"] == "person"
    assert "3 answers did not fit the decision" in text_of(paused) and "review is still open" in text_of(paused)
    assert (
        review is not None
        and review.action == "accept"
        and review.value
        == {
            "approve": True,
            "priority": 1,
            "reason": "ok",
        }
    )
    assert not fixed.is_error and fixed.structured_content is not None
    assert fixed.structured_content["output"] == {"title": "Rain tomorrow", "approved": True, "priority": 1}


async def test_over_stdio_a_long_run_survives_a_server_restart(
    tmp_path: Path, gate: Gate, fake_llm: FakeLLM, mode: str
) -> None:
    store = tmp_path / "runs.db"
    params = stdio_params(serve_command(LONG_PLANS, store, "--wait", "0.3", "--poll", "0"), server_env(fake_llm))
    extensions = [TasksExtension()] if mode == "auto" else []
    async with Client(params, mode=mode) as client:
        run_id = handle_of(await client.call_tool("summarize_long", {"text": "it will rain"}))["run_id"]
        await gate.reached()  # the run is in its model call
    with SQLiteRunStore(store) as runs:  # the server stopped: the run was put down, not cancelled
        put_down = runs.get_run(run_id)
    assert put_down is not None and put_down.status == "paused" and "interrupted" in put_down.attributes
    gate.open()
    async with Client(params, mode=mode, extensions=extensions) as client:  # a new server picks it up
        done = await client.call_tool("stratum_await", {"run_id": run_id, "timeout": 60})
        task = await get_task(client, run_id) if mode == "auto" else None
    assert not done.is_error, text_of(done)
    assert done.structured_content == SUMMARY  # what the direct call answers (see the first test)
    if task is not None:
        assert task["status"] == "completed" and task["result"]["structuredContent"] == SUMMARY
