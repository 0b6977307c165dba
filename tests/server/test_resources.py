from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import mcp.types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from server import StratumServer


async def read_json(client: Client, uri: str) -> Any:
    contents = (await client.read_resource(uri)).contents[0]
    assert isinstance(contents, types.TextResourceContents)
    return json.loads(contents.text)


async def test_templates_cover_runs_traces_plans_and_contracts(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert templates == {
        "stratum://runs/{run_id}",
        "stratum://runs/{run_id}/timeline.svg",
        "stratum://runs{?limit,cursor,status,flow}",
        "stratum://plans/{name}",
        "stratum://contracts/{plan}/{contract}",
    }


async def test_the_resource_list_names_runs_plans_contracts_and_recent_runs(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {"text": "listed"})
        uris = [str(r.uri) for r in (await client.list_resources(cache_mode="refresh")).resources]
    assert result.meta is not None
    assert uris[0] == "stratum://runs"
    assert {"stratum://plans/basics", "stratum://plans/people", "stratum://contracts/basics/Measure"} <= set(uris)
    assert f"stratum://runs/{result.meta['stratum/run_id']}" in uris


async def test_the_runs_index_is_newest_first_and_pages(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        ids = []
        for text in ("a", "b", "c"):
            result = await client.call_tool("echo", {"text": text})
            assert result.meta is not None
            ids.append(result.meta["stratum/run_id"])
        first = await read_json(client, "stratum://runs?limit=2")
        second = await read_json(client, first["next"])
        failed = await read_json(client, "stratum://runs?status=failed")
    assert [run["run_id"] for run in first["runs"]] == ids[::-1][:2]
    assert [run["run_id"] for run in second["runs"]] == ids[:1] and second["next_cursor"] is None
    assert first["runs"][0]["status"] == "succeeded" and first["runs"][0]["uri"] == f"stratum://runs/{ids[2]}"
    assert "input" not in first["runs"][0] and "output" not in first["runs"][0]
    assert failed["runs"] == []


async def test_a_trace_holds_steps_attempts_decisions_and_costs(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        paused = await client.call_tool("approve_text", {"text": "traced"})
        assert paused.meta is not None
        trace = await read_json(client, f"stratum://runs/{paused.meta['stratum/run_id']}")
    assert trace["status"] == "paused" and trace["flow"] == "approve_text"
    assert {"tokens_in", "tokens_out", "cost_usd", "created_at_iso", "steps"} <= set(trace)
    [step] = [s for s in trace["steps"] if s["step_id"] == "ask"]
    assert step["reviews"][0]["review_id"] == paused.meta["stratum/review_id"]
    assert "plan_text" not in trace


async def test_plans_and_contract_schemas_are_readable(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        plan = (await client.read_resource("stratum://plans/basics")).contents[0]
        schema = await read_json(client, "stratum://contracts/basics/Measure")
    assert isinstance(plan, types.TextResourceContents) and plan.mime_type == "application/yaml"
    assert "flows:" in plan.text
    assert schema["type"] == "object" and set(schema["properties"]) == {"text", "length"}


@pytest.mark.parametrize(
    "uri",
    [
        "stratum://runs/0123456789abcdef",
        "stratum://runs/../../etc/passwd",
        "stratum://runs/a/b",
        "stratum://plans/nope",
        "stratum://contracts/basics/Nope",
        "stratum://contracts/nope/Measure",
        "stratum://elsewhere",
        "file:///etc/passwd",
    ],
)
async def test_an_unknown_resource_is_not_found(server: StratumServer, uri: str) -> None:
    async with Client(server, mode="legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
    assert caught.value.error.code == -32002


@pytest.mark.parametrize("uri", ["stratum://runs?limit=x", "stratum://runs?cursor=zz", "stratum://runs?admin=1"])
async def test_bad_runs_queries_are_invalid_params(server: StratumServer, uri: str) -> None:
    async with Client(server, mode="legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
    assert caught.value.error.code == types.INVALID_PARAMS


async def test_the_resource_list_pages_through_many_runs(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        for index in range(51):
            await client.call_tool("is_long", {"text": str(index)})
        first = await client.list_resources()
        assert first.next_cursor is not None
        second = await client.list_resources(cursor=first.next_cursor)
    runs = [str(r.uri) for r in first.resources + second.resources if str(r.uri).startswith("stratum://runs/")]
    assert len(runs) == len(set(runs)) == 51
    assert second.next_cursor is None


async def test_a_run_timeline_is_an_svg_resource_with_a_bar_per_step(server: StratumServer) -> None:
    import xml.etree.ElementTree as ET

    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "drawn"})
        assert result.meta is not None
        run_id = result.meta["stratum/run_id"]
        contents = (await client.read_resource(f"stratum://runs/{run_id}/timeline.svg")).contents[0]
        with pytest.raises(MCPError):
            await client.read_resource("stratum://runs/nope/timeline.svg")
    assert isinstance(contents, types.TextResourceContents)
    assert contents.mime_type == "image/svg+xml"
    svg = ET.fromstring(contents.text)
    assert svg.tag.endswith("svg")
    assert run_id in contents.text


async def test_the_runs_index_gives_iso_times_and_an_unknown_cost_as_null(tmp_path: Any) -> None:
    """A model without a price: the index and the trace say null, as the CLI says unknown."""
    import uuid

    from stratum_core.testing import FakeLLM

    with FakeLLM(model_name=f"unpriced-{uuid.uuid4().hex[:8]}") as fake_llm:
        fake_llm.enqueue({"label": "happy"})
        await _run_mood_and_read(tmp_path, fake_llm)


async def _run_mood_and_read(tmp_path: Any, fake_llm: Any) -> None:
    from server_helpers import make_server

    (tmp_path / "mood.stratum.yaml").write_text(
        'version: "1"\ncontracts:\n  Mood:\n    label: {type: string}\nfunctions:\n  mood:\n    mode: infer\n'
        "    intent: Say the mood.\n    input: {text: {type: string}}\n    output: Mood\nflows:\n  mood:\n"
        "    input: {text: {type: string}}\n    steps: [{id: mood, function: mood, inputs: {text: $.input.text}}]\n",
        encoding="utf-8",
    )
    server = make_server(tmp_path, model=fake_llm.model, api_base=fake_llm.url, api_key="test")
    try:
        async with Client(server, mode="legacy") as client:
            result = await client.call_tool("mood", {"text": "sunny"})
            assert not result.is_error, result.content
            index = await read_json(client, "stratum://runs")
            trace = await read_json(client, index["runs"][0]["uri"])
    finally:
        server.close()
    [run] = index["runs"]
    assert run["created_at_iso"].startswith(datetime.fromtimestamp(run["created_at"], tz=UTC).strftime("%Y-%m-%dT%H"))
    assert run["finished_at_iso"] is not None
    assert (run["cost_usd"], run["cost_unknown"]) == (None, True)
    assert (trace["cost_usd"], trace["cost_unknown"]) == (None, True)
    [step] = trace["steps"]
    assert step["cost_usd"] is None and step["tokens_in"] > 0
