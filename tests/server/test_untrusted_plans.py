"""Plans sent by a client: the model allow-list is checked when the plan is validated or loaded, and the patterns of
its contracts run in RE2 (a catastrophic pattern on a long input is answered at once, on every path to a check)."""

from __future__ import annotations

from typing import Any

from mcp import Client
from server_helpers import make_server, text_of

from server import RESUME_TOOL
from stratum_core.testing import FakeLLM

REDOS = "^(a+)+$"
LONG = "a" * 100_000 + "!"

PLAN = """\
version: "1"
contracts:
  Word:
    text: {type: string, pattern: "PATTERN"}
functions:
  name_it:
    mode: infer
    intent: Name it.
    input: {word: {type: Word}}
    output: {type: string}
    MODEL
  confirm:
    mode: human
    question: Which word?
    input: {word: {type: Word}}
    output: Word
flows:
  main:
    input: {word: {type: Word}}
    output: {type: string}
    steps:
      - {id: name_it, function: name_it, inputs: {word: $.input.word}}
  ask:
    input: {word: {type: Word}}
    output: Word
    steps:
      - {id: confirm, function: confirm, inputs: {word: $.input.word}}
"""


def plan(pattern: str = "^[a-z]+$", model: str = "") -> str:
    return PLAN.replace("PATTERN", pattern).replace("MODEL", f"model: {model}" if model else "")


async def test_a_model_the_server_does_not_offer_is_refused_when_the_plan_is_validated_and_when_it_is_run(
    fake_llm: FakeLLM,
) -> None:
    server = make_server(model=fake_llm.model, api_base=fake_llm.url, api_key="test")
    requests = len(fake_llm.requests)
    async with Client(server, mode="legacy") as client:
        report = await client.call_tool("stratum_validate", {"plan": plan(model="o1-pro")})
        run = await client.call_tool(
            "stratum_run", {"plan": plan(model="o1-pro"), "flow": "main", "input": {"word": {"text": "rain"}}}
        )
        allowed = await client.call_tool("stratum_validate", {"plan": plan(model=fake_llm.model)})
    server.close()
    assert report.structured_content is not None and not report.structured_content["valid"]
    [problem] = report.structured_content["problems"]
    assert problem["path"] == "functions.name_it.model" and problem["line"] == 11
    assert f"the model 'o1-pro' is not one of the server's configured models ({fake_llm.model})" in problem["message"]
    assert run.is_error and "functions.name_it.model" in text_of(run) and "o1-pro" in text_of(run)
    assert len(fake_llm.requests) == requests  # nothing was called
    assert allowed.structured_content is not None and allowed.structured_content["valid"]


async def test_with_one_model_forced_on_every_step_any_name_is_allowed(fake_llm: FakeLLM) -> None:
    server = make_server(model=fake_llm.model, api_base=fake_llm.url, api_key="test", force_model=True)
    async with Client(server, mode="legacy") as client:
        report = await client.call_tool("stratum_validate", {"plan": plan(model="o1-pro")})
    server.close()
    assert report.structured_content is not None and report.structured_content["valid"], report.structured_content


async def test_a_pattern_re2_cannot_run_is_refused_when_validated() -> None:
    server = make_server()
    async with Client(server, mode="legacy") as client:
        report = await client.call_tool("stratum_validate", {"plan": plan(r"(a)\\1")})
    server.close()
    assert report.structured_content is not None and not report.structured_content["valid"]
    [problem] = report.structured_content["problems"]
    assert problem["path"] == "contracts.Word.text.pattern" and "RE2" in problem["message"]


async def test_a_catastrophic_pattern_on_a_long_input_is_answered_on_every_path_to_a_check() -> None:
    server = make_server()
    word: dict[str, Any] = {"text": LONG}
    async with Client(server, mode="legacy") as client:
        report = await client.call_tool("stratum_validate", {"plan": plan(REDOS)})
        refused = await client.call_tool("stratum_run", {"plan": plan(REDOS), "flow": "ask", "input": {"word": word}})
        paused = await client.call_tool(
            "stratum_run", {"plan": plan(REDOS), "flow": "ask", "input": {"word": {"text": "aaa"}}}
        )
        assert paused.meta is not None, text_of(paused)
        answered = await client.call_tool(RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": word})
        accepted = await client.call_tool(
            RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": {"text": "aa"}}
        )
    server.close()
    assert report.structured_content is not None and report.structured_content["valid"]  # RE2 runs it: allowed
    assert refused.is_error and "does not match '^(a+)+$'" in text_of(refused)
    assert answered.is_error and "does not match" in text_of(answered)
    assert accepted.structured_content is not None and accepted.structured_content["output"] == {"text": "aa"}
