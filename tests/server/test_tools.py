from __future__ import annotations

import json
from typing import Any

import mcp.types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from server_helpers import TEST_PLANS, links_of, make_server, text_of

from server import RESUME_TOOL, StratumServer
from server._catalog import RESERVED_TOOL_NAMES
from server._handles import HANDLE_SCHEMA, with_handle
from stratum_core.testing import FakeLLM, Reply


async def test_every_flow_is_listed_with_its_schemas(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    catalog = server.folder.catalog.tools
    assert set(tools) == {*catalog, *RESERVED_TOOL_NAMES} and RESUME_TOOL in RESERVED_TOOL_NAMES
    for name, tool in catalog.items():
        assert tools[name].input_schema == tool.input_schema
        assert tools[name].output_schema == with_handle(tool.output_schema)
        assert tools[name].description == tool.tool.description
    assert tools["echo"].input_schema["properties"] == {"text": {"type": "string"}}
    echo_output = tools["echo"].output_schema
    assert echo_output is not None and echo_output["anyOf"][0]["required"] == ["text", "length"]
    assert echo_output["anyOf"][1] == HANDLE_SCHEMA  # a flow's output, or the handle of a run not finished yet


async def test_the_handshake_announces_list_changed_logging_and_subscriptions(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        capabilities = client.server_capabilities
    assert capabilities.tools is not None and capabilities.tools.list_changed
    assert (
        capabilities.resources is not None and capabilities.resources.subscribe and capabilities.resources.list_changed
    )
    assert capabilities.logging is not None


async def test_a_call_answers_structured_content_the_same_json_as_text_and_a_trace_link(
    server: StratumServer, mode: str
) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {"text": "hello"})
        assert not result.is_error
        assert result.structured_content == {"text": "hello", "length": 5}
        assert json.loads(text_of(result)) == result.structured_content
        [link] = links_of(result)
        assert result.meta is not None and link == f"stratum://runs/{result.meta['stratum/run_id']}"
        trace = json.loads((await client.read_resource(link)).contents[0].text)  # type: ignore[union-attr]
    assert trace["status"] == "succeeded" and trace["output"] == {"text": "hello", "length": 5}
    assert [step["step_id"] for step in trace["steps"]] == ["measure"]


async def test_a_primitive_output_comes_back_as_result(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("is_long", {"text": "a long enough text"})
    assert not result.is_error and result.structured_content == {"result": True}


async def test_bad_arguments_are_an_error_result_with_one_line_per_field(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {"text": 5, "other": True})
        missing = await client.call_tool("echo", {})
    assert result.is_error
    assert text_of(result).splitlines() == [
        "Invalid arguments for 'echo':",
        "other: unknown field (expected: text)",
        "text: 5 is not of type 'string'",
    ]
    assert missing.is_error and "text: required field is missing" in text_of(missing)
    assert server.store.list_runs().runs == []  # nothing ran


async def test_an_unknown_tool_is_a_protocol_error(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("no_such_flow", {})
    assert caught.value.error.code == types.INVALID_PARAMS


async def test_a_failed_run_names_the_error_the_step_the_condition_and_the_run(
    server: StratumServer, mode: str
) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("short_only", {"text": "far too long"})
    assert result.is_error
    text = text_of(result)
    assert "PostconditionFailed" in text and "step 'measure'" in text and "result.length < 5" in text
    run_id = result.meta["stratum/run_id"] if result.meta else None
    assert run_id and f"run_id: {run_id}" in text and links_of(result) == [f"stratum://runs/{run_id}"]
    run = server.store.get_run(run_id)
    assert run is not None and run.status == "failed"


async def test_an_infer_step_without_a_model_says_how_to_configure_one(mode: str) -> None:
    srv = make_server(infer_via="server")  # the default without a model is the calling agent (test_agent_executor)
    async with Client(srv, mode=mode) as client:
        result = await client.call_tool("mood", {"text": "sunny"})
    assert result.is_error
    assert "ConfigurationError" in text_of(result) and "--model" in text_of(result)


async def test_an_infer_step_uses_the_model_configured_for_the_server(fake_llm: FakeLLM, mode: str) -> None:
    fake_llm.reset()
    fake_llm.enqueue(Reply(json={"label": "good", "confidence": 0.9}))
    srv = make_server(model=fake_llm.model, api_base=fake_llm.url, api_key="test")
    async with Client(srv, mode=mode) as client:
        result = await client.call_tool("mood", {"text": "sunny"})
    assert not result.is_error, text_of(result)
    assert result.structured_content == {"label": "good", "confidence": 0.9}
    assert fake_llm.requests and fake_llm.requests[-1]["model"] == "fake-llm"


class _Exploding:
    """An engine whose every call raises: nothing of it may reach the client."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail of the server")

    async def resume(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail of the server")


async def test_an_exception_in_a_call_is_an_error_result_without_its_text(mode: str) -> None:
    srv = make_server()
    srv.engine = _Exploding(srv.store)  # type: ignore[assignment]
    async with Client(srv, mode=mode) as client:
        result = await client.call_tool("echo", {"text": "x"})
        still_fine = await client.list_tools()
    assert result.is_error and "Internal error" in text_of(result) and "secret" not in text_of(result)
    assert still_fine.tools


async def test_an_exception_in_another_handler_is_a_protocol_error_without_its_text(mode: str) -> None:
    srv = make_server()

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail of the store")

    srv.store.get_trace = explode  # type: ignore[method-assign]
    async with Client(srv, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("stratum://runs/abc")
    assert caught.value.error.code == types.INTERNAL_ERROR
    assert "secret" not in caught.value.error.message


@pytest.mark.parametrize(
    "arguments",
    [None, [], "text", {"text": None}, {"text": "x" * 100_000}, {"text": {"$ref": "#"}}],
    ids=["none", "list", "string", "null", "huge", "object"],
)
async def test_nothing_a_client_sends_crashes_a_call(server: StratumServer, arguments: Any) -> None:
    async with Client(server, mode="legacy") as client:
        raw = client.session._dispatcher  # the typed API would refuse to send malformed params
        try:
            answer = await raw.send_raw_request("tools/call", {"name": "echo", "arguments": arguments})
        except MCPError as e:  # refused as invalid params by the SDK, before the tool
            assert e.error.code == types.INVALID_PARAMS
        else:
            result = types.CallToolResult.model_validate(answer)
            assert result.is_error or result.structured_content is not None
        assert (await client.call_tool("echo", {"text": "ok"})).structured_content == {"text": "ok", "length": 2}


def test_test_plans_folder_is_what_the_server_serves() -> None:
    srv = make_server(TEST_PLANS)
    assert {"echo", "is_long", "approve_text", "pick_color"} <= set(srv.folder.catalog.tools)
