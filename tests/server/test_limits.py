"""Size limits: a flow's arguments, an agent's report and a run's output are bounded, with a clear error."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from agent_helpers import AGENT_PLANS, tasks_of
from inline_snapshot import snapshot
from mcp import Client
from server_helpers import make_server, text_of

from server._config import ServerConfig
from server._limits import BodyLimit, json_size


@pytest.mark.parametrize(
    "value",
    [None, True, 12, 1.5, "", "héllo", ["a", 1, None], {"a": {"b": [1, 2, "x"]}}, [{"k": "v"}] * 3, "\u2603" * 10],
)
def test_json_size_is_the_length_of_the_value_as_compact_json(value: Any) -> None:
    expected = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    assert json_size(value, 10**6) == expected


def test_json_size_stops_soon_after_the_limit() -> None:
    huge = [["x" * 1_000] * 1_000] * 1_000  # a billion characters it never walks
    assert 10_000 < json_size(huge, 10_000) < 20_000


def test_limits_come_from_the_environment_with_units() -> None:
    config = ServerConfig.from_env({"STRATUM_MAX_ARGUMENT_BYTES": "512k", "STRATUM_MAX_RESULT_BYTES": "2M"})
    assert (config.max_argument_bytes, config.max_result_bytes) == (512_000, 2_000_000)
    with pytest.raises(ValueError, match="STRATUM_MAX_REPORT_BYTES must be a positive number of bytes"):
        ServerConfig.from_env({"STRATUM_MAX_REPORT_BYTES": "lots"})


async def test_arguments_over_the_limit_are_refused_before_anything_runs() -> None:
    server = make_server(max_argument_bytes=1_000)
    async with Client(server) as client:
        big = await client.call_tool("echo", {"text": "x" * 2_000})
        small = await client.call_tool("echo", {"text": "x" * 500})
        plan = await client.call_tool("stratum_run", {"plan": "#" + "x" * 2_000})
    assert big.is_error and text_of(big) == snapshot(
        "The arguments of 'echo': too large (more than 1,000 bytes as JSON; the limit is the server's "
        "max_argument_bytes setting)"
    )
    assert plan.is_error and text_of(plan).startswith("The arguments of 'stratum_run': too large")
    assert not small.is_error
    assert len(server.store.list_runs().runs) == 1  # only the small call ran
    server.close()


async def test_an_agent_report_over_the_limit_is_refused_and_the_step_still_waits() -> None:
    server = make_server(AGENT_PLANS, max_report_bytes=2_000)
    async with Client(server) as client:
        paused = await client.call_tool("explain_then_mood", {"text": "sunny day"})
        [task] = tasks_of(paused)
        report = {"run_id": task["run_id"], "step_id": task["step_id"]}
        big = await client.call_tool("stratum_step_done", {**report, "output": {"value": "x" * 5_000}})
        fine = await client.call_tool("stratum_step_done", {**report, "output": {"value": "A sunny day."}})
    assert big.is_error and text_of(big) == snapshot(
        "The reported output: too large (more than 2,000 bytes as JSON; the limit is the server's max_report_bytes "
        "setting)"
    )
    assert "REJECTED" not in text_of(fine), text_of(fine)
    server.close()


async def test_an_output_over_the_limit_is_not_sent_but_kept_in_the_trace() -> None:
    server = make_server(max_result_bytes=1_000)
    async with Client(server) as client:
        result = await client.call_tool("echo", {"text": "y" * 5_000})
    [run] = server.store.list_runs().runs
    assert result.is_error and text_of(result) == (
        "The output of the run of 'echo': too large (more than 1,000 bytes as JSON; the limit is the server's "
        f"max_result_bytes setting). The run succeeded; its output is in the trace, stratum://runs/{run.run_id}."
    )
    assert run.status == "succeeded" and server.store.get_run(run.run_id).output["length"] == 5_000  # type: ignore[union-attr]
    server.close()


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def test_an_http_body_over_the_limit_is_answered_413_before_the_app_reads_it() -> None:
    transport = httpx.ASGITransport(app=BodyLimit(_echo_app, 1_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        declared = await http.post("/mcp", content=b"x" * 5_000)

        async def chunks() -> Any:  # no content-length: counted as it arrives
            for _ in range(10):
                yield b"x" * 500

        streamed = await http.post("/mcp", content=chunks())
        small = await http.post("/mcp", content=b"x" * 900)
    assert declared.status_code == streamed.status_code == 413
    assert declared.json()["error"] == "request_too_large"
    assert small.status_code == 200 and small.text == "900"


async def test_a_stdio_line_over_the_limit_is_dropped_without_being_held_and_the_next_line_is_read() -> None:
    import io

    from server._stdin import DaemonLines, Oversize

    raw = io.BytesIO(b'{"big": "' + b"x" * 500_000 + b'"}\n{"jsonrpc": "2.0", "method": "ping", "id": 1}\n')
    lines = DaemonLines(raw, max_line=1_000)
    received = [line async for line in lines]
    lines._receive.close()  # what the transport does when it stops reading
    head = ('{"big": "' + "x" * 500_000)[:1_001]  # what was read before the line was known to be too long
    assert received == [Oversize(head=head, limit=1_000), '{"jsonrpc": "2.0", "method": "ping", "id": 1}\n']
