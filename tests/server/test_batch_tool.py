"""`stratum_batch` over MCP: an agent starts a batch, follows it by its handle, reads the summary; cancels one."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import Client
from server_helpers import HERE, make_server, text_of

from stratum_core.testing import FakeLLM, Reply

BATCH_PLANS = HERE / "batch_plans"
_ITEM = re.compile(r"\bitem (\d+)\b")


def handle_of(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None and "stratum_batch" in result.structured_content, result
    handle = result.structured_content["stratum_batch"]
    assert isinstance(handle, dict)
    return handle


def answer(body: dict[str, Any]) -> Reply:
    text = "\n".join(str(m.get("content")) for m in body["messages"])
    found = _ITEM.search(text)
    index = int(found.group(1)) if found else 0
    confidence = 0.1 if index % 5 == 4 else 0.9  # every fifth item breaks the ensure
    return Reply(json={"label": "pos", "confidence": confidence}, prompt_tokens=50, completion_tokens=10)


async def test_an_agent_starts_a_batch_follows_its_handle_and_reads_the_summary(fake_llm: FakeLLM) -> None:
    fake_llm.reset()
    fake_llm.add_rule(lambda body: True, answer)
    server = make_server(BATCH_PLANS, model=fake_llm.model, api_base=fake_llm.url, api_key="test", wait=30)
    items = [{"text": f"item {i}", "label": "pos"} for i in range(20)]
    async with Client(server) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert "stratum_batch" in tools
        (flow_tool,) = (
            tools
            - {"stratum_batch", "stratum_status", "stratum_await", "stratum_cancel"}
            - {name for name in tools if name.startswith("stratum_")}
        )
        started = await client.call_tool(
            "stratum_batch", {"tool": flow_tool, "items": items, "concurrency": 4, "expect": "label"}
        )
        assert not started.is_error, text_of(started)
        handle = handle_of(started)
        assert handle["status"] in ("running", "finished")
        with anyio.fail_after(120):
            while handle["status"] == "running":
                handle = handle_of(await client.call_tool("stratum_batch", {"batch_id": handle["batch_id"], "wait": 5}))
        summary = handle["summary"]
        assert (summary["succeeded"], summary["failed"]) == (16, 4)
        assert summary["failures"] == {"PostconditionFailed": 4}
        assert (summary["correct"], summary["judged"]) == (16, 20)
        assert [line["index"] for line in handle["results"]] == list(range(20))
        run_id = handle["results"][0]["run_id"]
        trace = await client.read_resource(f"stratum://runs/{run_id}")  # each item is an ordinary run
        assert run_id in str(trace)


async def test_a_batch_cancelled_by_the_agent_stops_and_says_so(fake_llm: FakeLLM) -> None:
    fake_llm.reset()
    gate = threading.Event()

    def held(body: dict[str, Any]) -> Reply:
        gate.wait(30)
        return Reply(json={"label": "pos", "confidence": 0.9})

    fake_llm.add_rule(lambda body: True, held)
    server = make_server(BATCH_PLANS, model=fake_llm.model, api_base=fake_llm.url, api_key="test", wait=30)
    try:
        async with Client(server) as client:
            flow_tool = next(t.name for t in (await client.list_tools()).tools if not t.name.startswith("stratum_"))
            items = [{"text": f"item {i}"} for i in range(10)]
            handle = handle_of(await client.call_tool("stratum_batch", {"tool": flow_tool, "items": items}))
            assert handle["status"] == "running" and handle["progress"]["done"] == 0
            cancelled = handle_of(
                await client.call_tool("stratum_batch", {"batch_id": handle["batch_id"], "cancel": True})
            )
            assert cancelled["status"] == "cancelled"
            assert cancelled["summary"]["succeeded"] == 0 and cancelled["summary"]["cancelled"] >= 1
            assert {line["status"] for line in cancelled["results"]} == {"cancelled"}
    finally:
        gate.set()


async def test_a_batch_of_an_unknown_tool_or_without_items_is_refused(fake_llm: FakeLLM) -> None:
    server = make_server(BATCH_PLANS, model=fake_llm.model, api_base=fake_llm.url, api_key="test")
    async with Client(server) as client:
        unknown = await client.call_tool("stratum_batch", {"tool": "nope", "items": [{}]})
        assert unknown.is_error and "Unknown flow tool 'nope'" in text_of(unknown)
        missing = await client.call_tool("stratum_batch", {"batch_id": "b0"})
        assert missing.is_error and "No batch 'b0'" in text_of(missing)


async def test_a_batch_belongs_to_whoever_started_it(fake_llm: FakeLLM) -> None:
    from server._identity import Identity

    fake_llm.reset()
    fake_llm.add_rule(lambda body: True, answer)
    server = make_server(BATCH_PLANS, model=fake_llm.model, api_base=fake_llm.url, api_key="test", wait=30)
    alice, bob, root = Identity("alice"), Identity("bob"), Identity("root", operator=True)
    tool = next(iter(server.folder.catalog.tools))
    async with server.batches.serving():
        started = handle_of(await server.batches.call({"tool": tool, "items": [{"text": "item 1"}]}, alice))
        batch_id = started["batch_id"]
        hidden = await server.batches.call({"batch_id": batch_id, "wait": 30}, bob)
        assert hidden.is_error and f"No batch '{batch_id}'" in text_of(hidden)
        refused = await server.batches.call({"batch_id": batch_id, "cancel": True}, bob)
        assert refused.is_error
        mine = handle_of(await server.batches.call({"batch_id": batch_id, "wait": 30}, alice))
        assert mine["status"] == "finished" and mine["summary"]["succeeded"] == 1
        assert handle_of(await server.batches.call({"batch_id": batch_id}, root))["status"] == "finished"
        run_id = mine["results"][0]["run_id"]
        run = server.store.get_run(run_id)
        assert run is not None and run.owner == "alice"


async def test_after_a_restart_a_batch_reads_from_the_store_and_starting_it_again_runs_what_is_not_done(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.reset()
    gate = threading.Event()

    def held_from_item_3(body: dict[str, Any]) -> Reply:
        found = _ITEM.search("\n".join(str(m.get("content")) for m in body["messages"]))
        if found and int(found.group(1)) >= 3:
            gate.wait(60)
        return answer(body)

    fake_llm.add_rule(lambda body: True, held_from_item_3)
    store = tmp_path / "runs.db"
    items = [{"text": f"item {i}"} for i in range(10)]
    first = make_server(BATCH_PLANS, store=store, model=fake_llm.model, api_base=fake_llm.url, api_key="test", wait=30)
    try:
        async with Client(first) as client:
            tool = next(t.name for t in (await client.list_tools()).tools if not t.name.startswith("stratum_"))
            arguments = {"tool": tool, "items": items, "concurrency": 1}
            batch_id = handle_of(await client.call_tool("stratum_batch", arguments))["batch_id"]
            assert await anyio.to_thread.run_sync(lambda: fake_llm.wait_for_requests(4, timeout=60))  # item 3 asks
        # the server stopped: items 0 to 2 done, item 3 cancelled, the rest never started
    finally:
        gate.set()
        first.close()
    second = make_server(BATCH_PLANS, store=store, model=fake_llm.model, api_base=fake_llm.url, api_key="test", wait=30)
    try:
        async with Client(second) as client:
            stored = await client.call_tool("stratum_batch", {"batch_id": batch_id})
            handle = handle_of(stored)
            assert not stored.is_error, text_of(stored)
            assert (handle["status"], handle["tool"], handle["from"]) == ("interrupted", tool, "store")
            summary = handle["summary"]
            assert (summary["total"], summary["succeeded"], summary["cancelled"], summary["not_run"]) == (10, 3, 1, 6)
            assert [(line["index"], line["status"]) for line in handle["results"]] == [
                (0, "succeeded"),
                (1, "succeeded"),
                (2, "succeeded"),
                (3, "cancelled"),
            ]
            assert "7 items not done" in handle["next"]
            asked_before = len(fake_llm.requests)
            again = handle_of(await client.call_tool("stratum_batch", arguments))
            assert again["batch_id"] == batch_id
            with anyio.fail_after(120):
                while again["status"] == "running":
                    again = handle_of(await client.call_tool("stratum_batch", {"batch_id": batch_id, "wait": 5}))
    finally:
        second.close()
    assert (again["summary"]["succeeded"], again["summary"]["failed"], again["summary"]["reused"]) == (8, 2, 3)
    asked_again = [str(request) for request in fake_llm.requests[asked_before:]]
    assert not any(f"item {i}" in text for i in range(3) for text in asked_again)  # the done items were not run again
