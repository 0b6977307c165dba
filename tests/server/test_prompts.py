"""Prompts (one per flow, review a run, answer a review) and completions of run ids, review ids and more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from server_helpers import make_server

from server import StratumServer

CHOICES_PLAN = """
version: "1"
functions:
  pick:
    mode: compute
    input: {size: {type: string}, loud: {type: boolean, required: false}}
    output: {type: string}
    expr: "size"
flows:
  order_tea:
    description: Order a cup of tea.
    input:
      size: {type: string, enum: [small, medium, large], description: How big a cup}
      loud: {type: boolean, required: false}
    output: {type: string}
    steps: [{id: pick, function: pick, inputs: {size: $.input.size, loud: $.input.loud}}]
"""


def text_of(result: types.GetPromptResult, index: int = 0) -> str:
    content = result.messages[index].content
    assert isinstance(content, types.TextContent)
    return content.text


def values(result: types.CompleteResult) -> list[str]:
    return list(result.completion.values)


async def test_every_flow_has_a_prompt_and_the_run_and_review_prompts_are_listed(
    server: StratumServer, mode: str
) -> None:
    async with Client(server, mode=mode) as client:
        prompts = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {name for name in tools if not name.startswith("stratum_")} <= set(prompts)
    assert prompts["echo"].title == "Run: Echo"
    assert [(a.name, a.required) for a in prompts["echo"].arguments or []] == [("text", False)]
    assert [(a.name, a.required) for a in prompts["review_run"].arguments or []] == [("run_id", True)]
    assert [(a.name, a.required) for a in prompts["answer_review"].arguments or []] == [("review_id", True)]


async def test_a_flow_prompt_explains_the_flow_and_its_inputs_and_asks_for_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "tea.stratum.yaml").write_text(CHOICES_PLAN, encoding="utf-8")
    server = make_server(tmp_path)
    try:
        async with Client(server, mode="legacy") as client:
            bare = await client.get_prompt("order_tea")
            given = await client.get_prompt("order_tea", {"size": "large", "loud": "true"})
            with pytest.raises(MCPError, match="Unknown argument"):
                await client.get_prompt("order_tea", {"colour": "green"})
    finally:
        server.close()
    text = text_of(bare)
    assert "Run the Stratum flow 'order_tea' with the tool `order_tea`" in text
    assert "What it does: Order a cup of tea." in text
    assert '- size (string, one of "small", "medium", "large", required): How big a cup' in text
    assert "- loud (boolean, optional)" in text
    assert "Steps: pick (compute pick)." in text and "Output: string" in text
    assert "Ask me for size first, then call `order_tea`." in text
    assert 'Arguments given: {"size": "large", "loud": true}' in text_of(given)
    assert "Call `order_tea` with these arguments" in text_of(given)


async def test_review_run_summarizes_the_run_and_links_its_trace(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        paused = await client.call_tool("approve_text", {"text": "later"})
        assert paused.meta is not None
        run_id = paused.meta["stratum/run_id"]
        review = await client.get_prompt("review_run", {"run_id": run_id})
        with pytest.raises(MCPError, match="No run with id"):
            await client.get_prompt("review_run", {"run_id": "nope"})
        with pytest.raises(MCPError, match="Missing required argument: run_id"):
            await client.get_prompt("review_run", {})
    text = text_of(review)
    assert f"Review run {run_id} of the Stratum flow 'approve_text' (paused)" in text
    assert "- ask (human): waiting" in text
    assert "waiting for a person: 'Approve this text?'" in text
    link = review.messages[1].content
    assert isinstance(link, types.ResourceLink) and str(link.uri) == f"stratum://runs/{run_id}"


async def test_answer_review_shows_the_question_and_how_to_answer_it(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        paused = await client.call_tool("approve_text", {"text": "publish me"})
        assert paused.meta is not None
        review_id = paused.meta["stratum/review_id"]
        prompt = await client.get_prompt("answer_review", {"review_id": review_id})
    text = text_of(prompt)
    assert "Question: Approve this text?" in text and '"text": "publish me"' in text
    assert f'`stratum_resume`: review_id="{review_id}"' in text
    assert '"approved": {"type": "boolean"' in text


async def test_run_ids_complete_for_the_trace_templates_and_the_review_prompt(server: StratumServer, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        ids = []
        for text in ("a", "b"):
            result = await client.call_tool("echo", {"text": text})
            assert result.meta is not None
            ids.append(result.meta["stratum/run_id"])
        trace = types.ResourceTemplateReference(type="ref/resource", uri="stratum://runs/{run_id}")
        timeline = types.ResourceTemplateReference(type="ref/resource", uri="stratum://runs/{run_id}/timeline.svg")
        prompt = types.PromptReference(type="ref/prompt", name="review_run")
        everything = await client.complete(trace, {"name": "run_id", "value": ""})
        by_prefix = await client.complete(timeline, {"name": "run_id", "value": ids[0][:6]})
        from_prompt = await client.complete(prompt, {"name": "run_id", "value": ids[1][:6].upper()})
    assert values(everything)[:2] == ids[::-1]  # newest first
    assert ids[0] in values(by_prefix) and all(v.startswith(ids[0][:6]) for v in values(by_prefix))
    assert ids[1] in values(from_prompt)


async def test_pending_review_ids_complete_for_the_answer_prompt(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        paused = await client.call_tool("approve_text", {"text": "x"})
        assert paused.meta is not None
        review_id = paused.meta["stratum/review_id"]
        ref = types.PromptReference(type="ref/prompt", name="answer_review")
        pending = await client.complete(ref, {"name": "review_id", "value": review_id[:3]})
        await client.call_tool("stratum_resume", {"review_id": review_id, "answer": {"approved": True}})
        answered = await client.complete(ref, {"name": "review_id", "value": review_id[:3]})
    assert review_id in values(pending)
    assert review_id not in values(answered)  # only the reviews still waiting


@pytest.mark.parametrize(
    ("ref", "argument", "context", "expected"),
    [
        ({"type": "ref/resource", "uri": "stratum://plans/{name}"}, {"name": "name", "value": "pe"}, None, ["people"]),
        (
            {"type": "ref/resource", "uri": "stratum://contracts/{plan}/{contract}"},
            {"name": "contract", "value": "Me"},
            {"plan": "basics"},
            ["Measure"],
        ),
        (
            {"type": "ref/resource", "uri": "stratum://runs{?limit,cursor,status,flow}"},
            {"name": "status", "value": "p"},
            None,
            ["paused"],
        ),
        ({"type": "ref/prompt", "name": "echo"}, {"name": "text", "value": ""}, None, []),
    ],
    ids=["plan-name", "contract-of-plan", "run-status", "free-text-has-none"],
)
async def test_other_template_arguments_complete_from_the_catalog(
    server: StratumServer, ref: dict[str, Any], argument: dict[str, str], context: Any, expected: list[str]
) -> None:
    reference: types.ResourceTemplateReference | types.PromptReference = (
        types.ResourceTemplateReference(**ref) if ref["type"] == "ref/resource" else types.PromptReference(**ref)
    )
    async with Client(server, mode="legacy") as client:
        result = await client.complete(reference, argument, context)
    assert values(result) == expected


async def test_a_flow_prompts_enum_and_boolean_arguments_complete_with_their_values(tmp_path: Path) -> None:
    (tmp_path / "tea.stratum.yaml").write_text(CHOICES_PLAN, encoding="utf-8")
    server = make_server(tmp_path)
    ref = types.PromptReference(type="ref/prompt", name="order_tea")
    try:
        async with Client(server, mode="auto") as client:
            sizes = await client.complete(ref, {"name": "size", "value": ""})
            medium = await client.complete(ref, {"name": "size", "value": "m"})
            loud = await client.complete(ref, {"name": "loud", "value": "t"})
    finally:
        server.close()
    assert values(sizes) == ["small", "medium", "large"]
    assert values(medium) == ["medium"] and values(loud) == ["true"]


async def test_a_flow_prompt_names_each_steps_kind_and_function_and_the_output_record(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        prompt = await client.get_prompt("approve_text", {"text": "hi"})
    text = text_of(prompt)
    assert "Steps: ask (human approve), outcome (compute outcome)." in text
    assert "Output: Outcome {text, approved}" in text
    assert "It may ask a person to decide" in text
