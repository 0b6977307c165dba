"""End to end: `stratum serve` as a subprocess, over stdio and streamable HTTP, with the SDK client in both eras."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.subscriptions import ResourceUpdated
from server_helpers import (
    TEST_PLANS,
    HttpServer,
    links_of,
    post_initialize,
    serve_command,
    server_env,
    stdio_params,
    text_of,
)

from server import RESUME_TOOL
from server._catalog import RESERVED_TOOL_NAMES, PlanFolder
from server._handles import with_handle
from stratum_core.testing import FakeLLM

pytestmark = pytest.mark.slow


class Inbox:
    """What a client receives besides results: elicitation answers it gives, and resource updates it hears."""

    def __init__(self) -> None:
        self.answers: deque[tuple[str, dict[str, Any] | None]] = deque()
        self.asked: list[types.ElicitRequestParams] = []
        self.updated: dict[str, anyio.Event] = {}

    async def elicit(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        action, content = self.answers.popleft()
        return types.ElicitResult(action=action, content=content)

    async def message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updated.setdefault(str(message.params.uri), anyio.Event()).set()

    def client(self, target: Any, mode: str, **kwargs: Any) -> Client:
        return Client(target, mode=mode, elicitation_callback=self.elicit, message_handler=self.message, **kwargs)


async def read_json(client: Client, uri: str) -> Any:
    contents = (await client.read_resource(uri)).contents[0]
    assert isinstance(contents, types.TextResourceContents)
    return json.loads(contents.text)


async def cancel_a_call(client: Client, inbox: Inbox, mode: str) -> None:
    """Start a flow that never ends, cancel the call once its first step finished, and see the run cancelled."""
    warmed = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        warmed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: client.call_tool("wait_forever", {"text": "zzz"}, progress_callback=on_progress))
        with anyio.fail_after(20):
            await warmed.wait()
        [run] = (await read_json(client, "stratum://runs?flow=wait_forever&status=running"))["runs"]
        uri = run["uri"]
        if mode == "legacy":
            await client.subscribe_resource(uri)
            tg.cancel_scope.cancel()
            with anyio.fail_after(20):
                await inbox.updated.setdefault(uri, anyio.Event()).wait()
        else:
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                tg.cancel_scope.cancel()
                with anyio.fail_after(20):
                    assert await subscription.__anext__() == ResourceUpdated(uri=uri)
    trace = await read_json(client, uri)
    assert trace["status"] == "cancelled"


async def exercise(client: Client, inbox: Inbox, mode: str) -> None:
    """Everything a client does with the server, checked over one connection."""
    folder = PlanFolder(TEST_PLANS)
    folder.scan()
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {*folder.catalog.tools, *RESERVED_TOOL_NAMES}
    for name, tool in folder.catalog.tools.items():
        assert tools[name].input_schema == tool.input_schema and tools[name].output_schema == with_handle(
            tool.output_schema
        )

    echo = await client.call_tool("echo", {"text": "wire"})
    assert echo.structured_content == {"text": "wire", "length": 4} and json.loads(text_of(echo)) == {
        "text": "wire",
        "length": 4,
    }
    trace = await read_json(client, links_of(echo)[0])
    assert trace["status"] == "succeeded" and trace["steps"][0]["status"] == "succeeded"

    bad = await client.call_tool("echo", {"text": 1})
    assert bad.is_error and "text: 1 is not of type 'string'" in text_of(bad)

    mood = await client.call_tool("mood", {"text": "sunny"})
    assert not mood.is_error, text_of(mood)
    assert mood.structured_content is not None and set(mood.structured_content) == {"label", "confidence"}

    inbox.answers.extend([("accept", {"approved": True}), ("decline", None), ("cancel", None)])
    accepted = await client.call_tool("approve_text", {"text": "yes?"})
    declined = await client.call_tool("approve_text", {"text": "no?"})
    cancelled = await client.call_tool("approve_text", {"text": "maybe?"})
    assert accepted.structured_content == {"text": "yes?", "approved": True}
    assert declined.is_error and '"action": "decline"' in text_of(declined)
    assert cancelled.is_error and '"action": "cancel"' in text_of(cancelled)
    asked = inbox.asked[-1]
    assert isinstance(asked, types.ElicitRequestFormParams)
    assert asked.requested_schema["properties"]["approved"]["type"] == "boolean"

    seen: list[float] = []
    both = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)
        if len(seen) == 2:
            both.set()

    await client.call_tool("two_steps", {"text": "p"}, progress_callback=on_progress)
    with anyio.fail_after(10):
        await both.wait()
    assert seen == [1, 2]

    await cancel_a_call(client, inbox, mode)


async def resume_after_restart(start: Any, mode: str, store: Path) -> None:
    """Pause a run in one server process, answer it through a second one."""
    async with start() as target, Client(target, mode=mode) as client:
        paused = await client.call_tool("approve_text", {"text": "restart"})
    assert paused.meta is not None and paused.meta["stratum/status"] == "paused"
    async with start() as target, Client(target, mode=mode) as client:
        done = await client.call_tool(
            RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": {"approved": True}}
        )
    assert done.structured_content is not None
    assert done.structured_content["output"] == {"text": "restart", "approved": True}


# -- stdio -------------------------------------------------------------------------------------------------------


async def test_over_stdio_a_client_does_everything(tmp_path: Path, fake_llm: FakeLLM, mode: str) -> None:
    inbox = Inbox()
    command = serve_command(TEST_PLANS, tmp_path / "runs.db")
    async with inbox.client(stdio_params(command, server_env(fake_llm)), mode, log_level="info") as client:
        await exercise(client, inbox, mode)


async def test_over_stdio_a_paused_run_resumes_after_a_restart(tmp_path: Path, mode: str) -> None:
    store = tmp_path / "runs.db"
    params = stdio_params(serve_command(TEST_PLANS, store), server_env())

    class Spawn:
        async def __aenter__(self) -> Any:
            return params

        async def __aexit__(self, *exc: Any) -> None:
            return None

    await resume_after_restart(Spawn, mode, store)


def test_over_stdio_nothing_but_protocol_reaches_stdout() -> None:
    """Raw JSON-RPC lines in, only JSON-RPC lines out; a broken line is answered, not fatal."""
    lines = [
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
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": ["not", "a", "map"]},
        },
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "ok"}}},
    ]
    process = subprocess.Popen(
        serve_command(TEST_PLANS, ":memory:", "--poll", "0"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(),
    )
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n".join(json.dumps(line) for line in lines[:2]) + "\n{not json\n")
    process.stdin.write("\n".join(json.dumps(line) for line in lines[2:]) + "\n")
    process.stdin.flush()
    answers: list[dict[str, Any]] = []
    while not any(answer.get("id") == 3 for answer in answers):
        line = process.stdout.readline()
        assert line, "the server closed stdout before answering"
        answers.append(json.loads(line))  # every line on stdout is JSON-RPC
    _, stderr = process.communicate(timeout=30)  # closes stdin: the server exits
    watchdog.cancel()
    by_id = {answer.get("id"): answer for answer in answers}
    assert all(answer["jsonrpc"] == "2.0" for answer in answers)
    assert "error" in by_id[2]
    assert by_id[3]["result"]["structuredContent"] == {"text": "ok", "length": 2}
    assert "serving" in stderr and process.returncode == 0


# -- streamable HTTP ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM) -> Iterator[HttpServer]:
    store = tmp_path_factory.mktemp("http") / "runs.db"
    server = HttpServer(serve_command(TEST_PLANS, store), server_env(fake_llm))
    yield server
    server.stop()


async def test_over_http_a_client_does_everything(http_server: HttpServer, mode: str) -> None:
    inbox = Inbox()
    async with http_server.client(
        mode, elicitation_callback=inbox.elicit, message_handler=inbox.message, log_level="info"
    ) as client:
        await exercise(client, inbox, mode)


async def test_over_http_a_paused_run_resumes_after_a_restart(tmp_path: Path, mode: str) -> None:
    store = tmp_path / "runs.db"

    class Spawn:
        async def __aenter__(self) -> Any:
            self.server = HttpServer(serve_command(TEST_PLANS, store), server_env())
            self.http = create_mcp_http_client(headers={"Authorization": f"Bearer {self.server.token}"})
            return streamable_http_client(self.server.url, http_client=self.http)

        async def __aexit__(self, *exc: Any) -> None:
            await self.http.aclose()
            self.server.stop()

    await resume_after_restart(Spawn, mode, store)


post = post_initialize


async def test_over_http_dns_rebinding_is_refused(http_server: HttpServer) -> None:
    host = http_server.url.split("/")[2]
    auth = {"Authorization": f"Bearer {http_server.token}"}
    assert await anyio.to_thread.run_sync(post, http_server.url, auth) == 200
    assert await anyio.to_thread.run_sync(post, http_server.url, {**auth, "Host": "evil.example"}) == 421
    evil_origin = {**auth, "Host": host, "Origin": "http://evil.example"}
    assert await anyio.to_thread.run_sync(post, http_server.url, evil_origin) == 403


async def test_over_http_a_token_is_required_when_set(tmp_path: Path) -> None:
    server = HttpServer(serve_command(TEST_PLANS, ":memory:", "--token", "s3cret-token"), server_env())
    try:
        assert await anyio.to_thread.run_sync(post, server.url, {}) == 401
        assert await anyio.to_thread.run_sync(post, server.url, {"Authorization": "Bearer wrong"}) == 401
        http = create_mcp_http_client(headers={"Authorization": "Bearer s3cret-token"})
        async with http, Client(streamable_http_client(server.url, http_client=http), mode="legacy") as client:
            result = await client.call_tool("echo", {"text": "auth"})
        assert result.structured_content == {"text": "auth", "length": 4}
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_over_http_a_stop_signal_shuts_down_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """A service manager's SIGTERM stops the server as Ctrl-C does: exit 0, no traceback, the store closed."""
    server = HttpServer(serve_command(TEST_PLANS, tmp_path / "runs.db"), server_env())
    async with server.client("legacy") as client:
        assert (await client.call_tool("echo", {"text": "bye"})).structured_content == {"text": "bye", "length": 3}
    assert server.stop(sig) == 0
    said = "".join(server.lines)
    assert "Traceback" not in said and "ERROR" not in said, said


# -- start-up ----------------------------------------------------------------------------------------------------------

_NO_LITELLM = """
import sys, anyio
from pathlib import Path
from mcp import Client
from server import ServerConfig, build_server

async def main():
    server = build_server(ServerConfig(plans_dir=Path(sys.argv[1]), store_path=None, poll_interval=0))
    for mode in ("legacy", "auto"):
        async with Client(server, mode=mode) as client:
            assert (await client.list_tools()).tools
            assert (await client.call_tool("echo", {"text": "x"})).structured_content
    print("litellm" in sys.modules)

anyio.run(main)
"""


def test_starting_listing_and_running_compute_flows_never_imports_litellm() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_LITELLM, str(TEST_PLANS)],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
