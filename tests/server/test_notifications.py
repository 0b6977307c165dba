from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import Client
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent, ToolsListChanged
from server_helpers import TEST_PLANS, answer_with, make_server

from server import RESUME_TOOL, StratumServer


async def test_progress_is_reported_for_every_finished_step(server: StratumServer, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []
    both = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))
        if len(seen) == 2:
            both.set()

    async with Client(server, mode=mode) as client:
        result = await client.call_tool("two_steps", {"text": "abc"}, progress_callback=on_progress)
        with anyio.fail_after(5):
            await both.wait()
    assert not result.is_error
    assert [(value, total) for value, total, _ in seen] == [(1, 2), (2, 2)]
    assert seen[0][2] is not None and "first" in seen[0][2]


async def test_log_messages_reach_the_client_and_set_level_filters_them(server: StratumServer) -> None:
    logs: list[types.LoggingMessageNotificationParams] = []
    first = anyio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)
        first.set()

    async with Client(server, mode="legacy", logging_callback=on_log) as client:
        await client.set_logging_level("debug")  # step logs are debug: not sent at the default level (info)
        await client.call_tool("echo", {"text": "loud"})
        with anyio.fail_after(5):
            await first.wait()
        heard = len(logs)
        await client.set_logging_level("error")
        await client.call_tool("echo", {"text": "quiet"})
        await client.call_tool("echo", {"text": "quiet"})
    assert logs[0].logger == "stratum" and "measure" in logs[0].data["message"]
    assert len(logs) == heard  # nothing below error after setLevel


async def test_2026_clients_get_log_messages_when_they_opt_in(server: StratumServer) -> None:
    logs: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with Client(server, mode="auto", logging_callback=on_log, log_level="debug") as client:
        await client.call_tool("echo", {"text": "hi"})
    assert any("measure" in entry["message"] for entry in logs)


async def test_cancelling_a_call_cancels_the_run_and_records_it(mode: str) -> None:
    srv = make_server()
    slow = sys.modules["slow_tools"]
    slow.STARTED.clear()
    cancelled = anyio.Event()

    def on_event(event: ServerEvent) -> None:
        if isinstance(event, ResourceUpdated):
            runs = srv.store.list_runs(flow="wait_forever").runs
            if runs and runs[0].status == "cancelled":
                cancelled.set()

    srv.hub.bus.subscribe(on_event)
    async with Client(srv, mode=mode) as client, anyio.create_task_group() as tg:
        tg.start_soon(client.call_tool, "wait_forever", {"text": "zzz"})
        with anyio.fail_after(10):
            await anyio.to_thread.run_sync(slow.STARTED.wait, 10)
        tg.cancel_scope.cancel()
    with anyio.fail_after(10):
        await cancelled.wait()
    [run] = srv.store.list_runs(flow="wait_forever").runs
    assert run.status == "cancelled" and run.error is not None and run.error["type"] == "RunCancelled"


def add_plan(folder: Path, name: str = "extra") -> None:
    (folder / f"{name}.stratum.yaml").write_text(
        'version: "1"\nfunctions:\n  f: {mode: compute, input: {x: {type: integer}}, output: {type: integer}, '
        'expr: "x + 1"}\nflows:\n  plus_one:\n    description: Add one.\n    input: {x: {type: integer}}\n'
        "    output: {type: integer}\n    steps: [{id: f, function: f, inputs: {x: $.input.x}}]\n",
        encoding="utf-8",
    )


async def test_a_new_plan_is_served_and_announced_to_handshake_clients(plans_copy: Path) -> None:
    srv = make_server(plans_copy, poll_interval=0.05)
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with srv.running(), Client(srv, mode="legacy", message_handler=on_message) as client:
        before = {tool.name for tool in (await client.list_tools()).tools}
        add_plan(plans_copy)
        with anyio.fail_after(10):
            await changed.wait()
        after = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("plus_one", {"x": 41})
    assert after - before == {"plus_one"}
    assert result.structured_content == {"result": 42}


async def test_a_changed_plan_is_announced_to_2026_clients_on_listen(plans_copy: Path) -> None:
    srv = make_server(plans_copy)
    async with Client(srv, mode="auto") as client:
        async with client.listen(tools_list_changed=True) as subscription:
            add_plan(plans_copy)
            assert await srv.reload() is True
            with anyio.fail_after(10):
                event = await subscription.__anext__()
        assert isinstance(event, ToolsListChanged)
        tools = {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
    assert "plus_one" in tools


async def test_editing_and_removing_plans_changes_the_tools(plans_copy: Path) -> None:
    srv = make_server(plans_copy)
    path = plans_copy / "basics.stratum.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("  echo:\n", "  echo_again:\n"), encoding="utf-8")
    assert await srv.reload() is True
    assert "echo_again" in srv.folder.catalog.tools and "echo" not in srv.folder.catalog.tools
    path.write_text("version: '1'\nflows: {broken: {steps: []}}\n", encoding="utf-8")
    assert await srv.reload() is True
    assert "two_steps" not in srv.folder.catalog.tools and "approve_text" in srv.folder.catalog.tools
    assert srv.folder.catalog.plans["basics"].error is not None
    (plans_copy / "people.stratum.yaml").unlink()
    assert await srv.reload() is True
    assert "approve_text" not in srv.folder.catalog.tools
    assert await srv.reload() is False


async def test_a_broken_plan_beside_good_ones_is_skipped(tmp_path: Path) -> None:
    shutil.copy(TEST_PLANS / "basics.stratum.yaml", tmp_path)
    (tmp_path / "broken.stratum.yaml").write_text("version: '1'\nflows: {x: {steps: [{id: a, function: nope}]}}\n")
    srv = make_server(tmp_path)
    async with Client(srv, mode="legacy") as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        plan = await client.read_resource("stratum://plans/broken")
    assert "echo" in tools and "x" not in tools
    assert "not served" in plan.contents[0].text  # type: ignore[union-attr]


async def test_subscribers_hear_about_a_run_as_it_progresses(server: StratumServer) -> None:
    updated: list[str] = []
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            heard.set()

    async with Client(server, mode="legacy", message_handler=on_message) as client:
        paused = await client.call_tool("approve_text", {"text": "watch"})
        assert paused.meta is not None
        uri = f"stratum://runs/{paused.meta['stratum/run_id']}"
        await client.subscribe_resource(uri)
        await client.call_tool(
            RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": {"approved": True}}
        )
        with anyio.fail_after(5):
            await heard.wait()
    assert set(updated) == {uri}


async def test_2026_subscribers_hear_about_a_run_on_listen(server: StratumServer) -> None:
    async with Client(server, mode="auto") as client:
        paused = await client.call_tool("approve_text", {"text": "watch"})
        assert paused.meta is not None
        uri = f"stratum://runs/{paused.meta['stratum/run_id']}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await client.call_tool(
                RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": {"approved": True}}
            )
            with anyio.fail_after(5):
                event = await subscription.__anext__()
    assert event == ResourceUpdated(uri=uri)


async def test_elicitation_still_works_while_plans_reload(plans_copy: Path) -> None:
    srv = make_server(plans_copy)
    async with Client(srv, mode="legacy", elicitation_callback=answer_with()) as client:
        add_plan(plans_copy)
        await srv.reload()
        result = await client.call_tool("approve_text", {"text": "ok"})
    assert result.structured_content == {"text": "ok", "approved": True}
