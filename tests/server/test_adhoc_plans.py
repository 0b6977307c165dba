"""Plans written by the agent: stratum_validate and stratum_run, with `call:` refused and the sandbox holding."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import mcp.types as types
import pytest
from agent_helpers import AGENT_PLANS, ScriptedAgent, meta_of, status_of
from mcp import Client
from server_helpers import answer_with, links_of, make_server, text_of

from server import StratumServer
from stratum_core.plan._untrusted import MAX_TEXT
from tests.fixtures.sandbox_corpus import ESCAPES, HOSTILE_PLANS, NON_JSON, TUPLES, escape_plan

COMPUTE = """\
version: "1"
functions:
  shout:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "text.upper() + '!'"
flows:
  shout:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - {id: shout, function: shout, inputs: {text: $.input.text}}
"""

BROKEN = """\
version: "1"
functions:
  shell:
    mode: compute
    input: {cmd: {type: string}}
    output: {type: string}
    call: os:system
flows:
  go:
    input: {cmd: {type: string}}
    output: {type: string}
    steps:
      - {id: run, function: shell, inputs: {cmd: $.steps.nothing.output}}
"""

AGENT_AND_PERSON = """\
version: "1"
functions:
  title:
    mode: infer
    intent: Write a title for the text.
    input: {text: {type: string}}
    output: {type: string}
    ensure: ["len(result) <= 20"]
  approve:
    mode: human
    question: Publish this title?
    input: {title: {type: string}}
    output: {type: boolean}
flows:
  publish:
    input: {text: {type: string}}
    output: {type: boolean}
    steps:
      - {id: title, function: title, inputs: {text: $.input.text}}
      - {id: ok, function: approve, inputs: {title: $.steps.title.output}}
"""


@pytest.fixture
def agent_server() -> Iterator[StratumServer]:
    server = make_server(AGENT_PLANS)
    yield server
    server.close()


async def test_validate_reports_every_problem_located_in_the_text(agent_server: StratumServer, mode: str) -> None:
    async with Client(agent_server, mode=mode) as client:
        result = await client.call_tool("stratum_validate", {"plan": BROKEN})
        good = await client.call_tool("stratum_validate", {"plan": COMPUTE})
    assert not result.is_error and result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    report: dict[str, Any] = result.structured_content
    assert report["valid"] is False and report["flows"] == []
    problems = {problem["path"]: problem for problem in report["problems"]}
    call = problems["functions.shell.call"]
    assert (call["line"], call["column"]) == (7, 11)
    assert call["message"] == "a plan sent by a client cannot call Python code"
    assert call["hint"] == "use `expr:` (a sandboxed expression) instead of `call:`"
    reference = problems["flows.go.steps[0].inputs.cmd"]
    assert reference["line"] == 13 and "unknown step 'nothing'" in reference["message"]
    assert good.structured_content == {"valid": True, "problems": [], "flows": ["shout"]}


async def test_run_runs_an_agent_plan_and_records_it_like_any_run(agent_server: StratumServer, mode: str) -> None:
    async with Client(agent_server, mode=mode) as client:
        result = await client.call_tool("stratum_run", {"plan": COMPUTE, "input": {"text": "hi"}})
        assert not result.is_error, text_of(result)
        [link] = links_of(result)
        trace = json.loads((await client.read_resource(link)).contents[0].text)  # type: ignore[union-attr]
        listed = [resource.uri for resource in (await client.list_resources()).resources]
    assert result.structured_content is not None
    run_id = result.structured_content["run_id"]
    assert result.structured_content == {"run_id": run_id, "flow": "shout", "status": "succeeded", "output": "HI!"}
    assert trace["status"] == "succeeded" and trace["plan_source"].startswith("<agent plan ")
    assert link in listed


async def test_run_hands_infer_steps_to_the_agent_and_asks_the_person_in_both_eras(
    agent_server: StratumServer, mode: str
) -> None:
    async with Client(agent_server, mode=mode, elicitation_callback=answer_with(content={"value": True})) as client:
        agent = ScriptedAgent(client, {"title": [{"value": "A title far too long to pass"}, {"value": "Short"}]})
        paused = await agent.call("stratum_run", {"plan": AGENT_AND_PERSON, "input": {"text": "a long text"}})
        last = await agent.follow(paused)
    assert status_of(paused) == "paused" and agent.handed == [["title"]]
    assert [status_of(result) for _, _, result in agent.reports] == ["rejected", None]
    assert not last.is_error and last.structured_content is not None
    assert last.structured_content["output"] is True and last.structured_content["flow"] == "publish"
    assert meta_of(last)["stratum/run_id"] == meta_of(paused)["stratum/run_id"]


async def test_run_refuses_a_call_target_with_a_clear_error_and_imports_nothing(
    agent_server: StratumServer, mode: str
) -> None:
    sys.modules.pop("json.tool", None)
    plan = COMPUTE.replace("expr: \"text.upper() + '!'\"", "call: json.tool:main")
    async with Client(agent_server, mode=mode) as client:
        result = await client.call_tool("stratum_run", {"plan": plan, "input": {"text": "hi"}})
    assert result.is_error
    assert text_of(result).splitlines()[:2] == [
        "The plan is not valid (1 problem):",
        "7:11: functions.shout.call: a plan sent by a client cannot call Python code "
        "(use `expr:` (a sandboxed expression) instead of `call:`)",
    ]
    assert "json.tool" not in sys.modules
    assert agent_server.store.list_runs().runs == []


async def test_run_answers_bad_flows_inputs_and_oversized_plans_without_running(agent_server: StratumServer) -> None:
    two_flows = COMPUTE + COMPUTE[COMPUTE.index("  shout:\n    input") :].replace("  shout:\n", "  again:\n", 1)
    async with Client(agent_server, mode="legacy") as client:
        unknown = await client.call_tool("stratum_run", {"plan": COMPUTE, "flow": "whisper"})
        bad_input = await client.call_tool("stratum_run", {"plan": COMPUTE, "input": {"text": 3}})
        which = await client.call_tool("stratum_run", {"plan": two_flows})
        huge = await client.call_tool("stratum_run", {"plan": "#" * (MAX_TEXT + 1)})
    assert "The plan has no flow 'whisper' (flows: shout)." in text_of(unknown)
    assert text_of(bad_input).startswith("Invalid input for flow 'shout':") and "text" in text_of(bad_input)
    assert text_of(which) == "The plan has 2 flows: name one with `flow` (again, shout)."
    assert f"at most {MAX_TEXT} characters" in text_of(huge)
    assert all(result.is_error for result in (unknown, bad_input, which, huge))
    assert agent_server.store.list_runs().runs == []


@pytest.mark.parametrize(("escape", "words"), ESCAPES, ids=[text[:30] for text, _ in ESCAPES])
async def test_sandbox_escapes_fail_through_stratum_run(
    agent_server: StratumServer, escape: str, words: str | tuple[str, ...]
) -> None:
    async with Client(agent_server, mode="auto") as client:
        result = await client.call_tool(
            "stratum_run", {"plan": escape_plan(escape), "input": {"text": "hello", "items": [1, 2, 3]}}
        )
    assert result.is_error
    text = text_of(result)
    if text.startswith("The plan is not valid"):  # refused when loading, with a located problem
        assert "functions.f.expr: expr: " in text, text
        assert agent_server.store.list_runs().runs == []
    else:  # or the run fails in the sandbox, recorded
        assert text.startswith("Flow 'go' failed: ExpressionError at step 's'"), text
        [run] = agent_server.store.list_runs().runs
        assert run.status == "failed" and run.error is not None and run.error["type"] == "ExpressionError"


@pytest.mark.parametrize(("expression", "message"), NON_JSON, ids=[text for text, _ in NON_JSON])
async def test_a_compute_expr_that_returns_no_json_value_fails_with_an_expression_error(
    agent_server: StratumServer, expression: str, message: str
) -> None:
    async with Client(agent_server, mode="auto") as client:
        result = await client.call_tool(
            "stratum_run", {"plan": escape_plan(expression), "input": {"text": "hello", "items": [1, 2, 3]}}
        )
    assert result.is_error
    assert text_of(result).startswith("Flow 'go' failed: ExpressionError at step 's'"), text_of(result)
    assert message in text_of(result)
    [run] = agent_server.store.list_runs().runs
    assert run.status == "failed" and run.error is not None and run.error["type"] == "ExpressionError"


@pytest.mark.parametrize(("expression", "output"), TUPLES, ids=[text for text, _ in TUPLES])
async def test_a_compute_expr_returning_tuples_answers_lists(
    agent_server: StratumServer, expression: str, output: object
) -> None:
    async with Client(agent_server, mode="auto") as client:
        result = await client.call_tool(
            "stratum_run", {"plan": escape_plan(expression), "input": {"text": "hello", "items": [1, 2, 3]}}
        )
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["output"] == output


@pytest.mark.parametrize(
    ("name", "plan", "arguments", "words"), HOSTILE_PLANS, ids=[name for name, *_ in HOSTILE_PLANS]
)
async def test_hostile_plans_end_in_a_bounded_refusal(
    agent_server: StratumServer, name: str, plan: str, arguments: dict[str, Any], words: str
) -> None:
    async with Client(agent_server, mode="auto") as client:
        result = await client.call_tool("stratum_run", {"plan": plan, "input": arguments})
    assert result.is_error
    assert words in text_of(result), text_of(result)
    runs = agent_server.store.list_runs().runs
    if text_of(result).startswith("The plan is not valid"):  # refused when checked
        assert runs == []
    else:
        assert [run.status for run in runs] == ["failed"]


async def test_tools_of_the_server_are_listed_with_schemas(agent_server: StratumServer) -> None:
    async with Client(agent_server, mode="legacy") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    validate, run = tools["stratum_validate"], tools["stratum_run"]
    assert validate.output_schema is not None and validate.output_schema["required"] == ["valid", "problems", "flows"]
    assert validate.annotations is not None and validate.annotations.read_only_hint is True
    assert run.input_schema["required"] == ["plan"] and run.output_schema is None
    assert isinstance(tools["stratum_step_done"], types.Tool)


@pytest.mark.parametrize(
    ("tool", "arguments", "line"),
    [
        ("stratum_validate", {"plan": 5}, "plan: 5 is not of type 'string'"),
        ("stratum_run", {}, "plan: required field is missing"),
        ("stratum_step_done", {"run_id": "r", "step_id": "s"}, "output: required field is missing"),
        ("stratum_resume", {"answer": {}}, "review_id: required field is missing"),
    ],
)
async def test_the_servers_own_tools_answer_bad_arguments_field_by_field(
    agent_server: StratumServer, tool: str, arguments: dict[str, Any], line: str
) -> None:
    async with Client(agent_server, mode="legacy") as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    text = text_of(result)
    assert text.startswith(f"Invalid arguments for '{tool}':")
    assert line in text
