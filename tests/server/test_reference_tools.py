"""`stratum serve --reference-tools`: the reference server's controller tools, driven as its skills drive them.

Reply shapes are checked field by field against the reference's, as measured (shared/REFERENCE-IR.md §3.1-3.4).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from server_helpers import HttpServer, make_server, serve_command, server_env, stdio_params, text_of

from server import ServerConfig, StratumServer
from server._catalog import REFERENCE_TOOL_NAMES, RESERVED_TOOL_NAMES

PLANS = Path(__file__).parent / "reference_plans"
WRITE_POST = (PLANS / "write_post.stratum.yaml").read_text(encoding="utf-8")
LOOP = (PLANS / "loop.stratum.yaml").read_text(encoding="utf-8")
BUILD = (PLANS / "build.stratum.yaml").read_text(encoding="utf-8")
ROUTED = (PLANS / "routed.stratum.yaml").read_text(encoding="utf-8")

REFERENCE_TOOLS = {
    "stratum_plan",
    "stratum_step_done",
    "stratum_resume",
    "stratum_gate_resolve",
    "stratum_audit",
    "stratum_skip_step",
    "stratum_parallel_done",
    "stratum_iteration_start",
    "stratum_iteration_report",
    "stratum_iteration_abort",
    "stratum_check_timeouts",
    "stratum_list_workflows",
}
# The reply shapes of the reference server (REFERENCE-IR.md §3.1: get_current_step_info, completion, §3.4: audit).
EXECUTE_STEP = {
    "status",
    "flow_id",
    "step_number",
    "total_steps",
    "step_id",
    "step_mode",
    "agent",
    "intent",
    "inputs",
    "output_contract",
    "output_fields",
    "ensure",
    "retries_remaining",
}
FUNCTION_STEP = EXECUTE_STEP | {"function", "mode"}
INLINE_STEP = EXECUTE_STEP | {"model"}
ITERATION_STEP = FUNCTION_STEP | {"iteration", "max_iterations", "exit_criterion"}
AWAIT_GATE = {
    "status",
    "flow_id",
    "step_number",
    "total_steps",
    "step_id",
    "step_mode",
    "function",
    "agent",
    "on_approve",
    "on_revise",
    "on_kill",
    "timeout",
}
PARALLEL = {
    "status",
    "flow_id",
    "step_number",
    "total_steps",
    "step_id",
    "step_mode",
    "tasks",
    "max_concurrent",
    "isolation",
    "require",
    "merge",
    "intent_template",
}
COMPLETION = {"status", "flow_id", "output", "trace", "total_duration_ms"}
AUDIT = {
    "flow_id",
    "flow_name",
    "status",
    "steps_completed",
    "total_steps",
    "trace",
    "rounds",
    "iterations",
    "archived_iterations",
    "child_audits",
    "total_duration_ms",
}
ROUND = {"round", "round_start_step_id"}
STEP_RECORD = {"type", "step_id", "function_name", "attempts", "duration_ms", "agent", "step_mode", "child_flow_id"}
GATE_RECORD = {"type", "step_id", "outcome", "rationale", "resolved_by", "duration_ms"}
SKIP_RECORD = {"type", "step_id", "skip_reason"}
ERROR = {"status", "error_type", "message"}


def reply_of(result: types.CallToolResult) -> dict[str, Any]:
    """A reference reply: never isError, the same JSON as text and as structured content."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    return dict(result.structured_content)


def error_of(reply: dict[str, Any], error_type: str) -> str:
    assert ERROR <= set(reply) and reply["status"] == "error", reply
    assert reply["error_type"] == error_type, reply
    return str(reply["message"])


class Agent:
    """A reference client: calls the tools by their reference names and reads the reference replies."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def __call__(self, tool: str, **arguments: Any) -> dict[str, Any]:
        return reply_of(await self.client.call_tool(tool, arguments))


@pytest.fixture
def reference_server() -> Iterator[StratumServer]:
    server = make_server(PLANS, reference_tools=True)
    yield server
    server.close()


async def test_a_skill_loop_runs_through_the_reference_tools_over_stdio(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    command = serve_command(PLANS, store, "--reference-tools")
    async with Client(stdio_client(stdio_params(command, server_env()))) as client:
        call = Agent(client)
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert REFERENCE_TOOLS <= set(tools)
        assert "write-post" in tools and "post" in tools  # the workflow is served under its own name too

        # stratum_plan: the first dispatch is the draft step, with the function's contract and ensure.
        first = await call("stratum_plan", spec=WRITE_POST, flow="post", inputs={"topic": "tea"})
        assert set(first) == FUNCTION_STEP
        flow_id = first["flow_id"]
        assert first == {
            "status": "execute_step",
            "flow_id": flow_id,
            "step_number": 1,
            "total_steps": 3,
            "step_id": "draft",
            "step_mode": "function",
            "agent": "writer",
            "intent": "Write a short post on the topic.",
            "inputs": {"topic": "tea"},
            "output_contract": "Draft",
            "output_fields": {"text": "string", "score": "number"},
            "ensure": ["result.score > 0.5"],
            "retries_remaining": 3,
            "function": "write",
            "mode": "infer",
        }

        # A wrong result: the same step again, with the violation and one attempt fewer.
        wrong = await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "t", "score": 0.2})
        assert set(wrong) == FUNCTION_STEP | {"violations"}
        assert (wrong["status"], wrong["step_id"], wrong["retries_remaining"]) == ("ensure_failed", "draft", 2)
        assert wrong["violations"] == ["ensure: result.score > 0.5 (actual: result.score = 0.2)"]
        typed = await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": 3, "score": 0.9})
        assert typed["status"] == "schema_failed" and typed["retries_remaining"] == 1  # contracts are enforced

    # The store is a real file: a new server process picks the flow up where it stopped, one attempt left.
    async with Client(stdio_client(stdio_params(command, server_env()))) as client:
        call = Agent(client)
        again = await call("stratum_resume", flow_id=flow_id)
        assert again["status"] == "execute_step" and again["step_id"] == "draft"
        polish = await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "t1", "score": 0.9})
        assert set(polish) == INLINE_STEP
        assert (polish["step_id"], polish["step_mode"], polish["step_number"]) == ("polish", "inline", 2)
        assert polish["inputs"] == {"text": "t1"} and polish["retries_remaining"] == 1  # inline default: 1 attempt

        gate = await call("stratum_step_done", flow_id=flow_id, step_id="polish", result={"text": "t2", "score": 0.9})
        assert set(gate) == AWAIT_GATE
        assert gate == {
            "status": "await_gate",
            "flow_id": flow_id,
            "step_number": 3,
            "total_steps": 3,
            "step_id": "approve",
            "step_mode": "function",
            "function": "review",
            "agent": None,
            "on_approve": None,
            "on_revise": "draft",
            "on_kill": None,
            "timeout": 3600,
        }
        waiting = await call("stratum_check_timeouts", flow_id=flow_id)
        assert waiting["status"] == "no_timeout" and 0 < waiting["remaining_seconds"] <= 3600
        refused = await call("stratum_step_done", flow_id=flow_id, step_id="approve", result={})
        error_of(refused, "gate_step_requires_gate_resolve")

        # revise: back to the draft, a second round; the first stays in the audit.
        revised = await call(
            "stratum_gate_resolve",
            flow_id=flow_id,
            step_id="approve",
            outcome="revise",
            rationale="shorter",
            resolved_by="human",
        )
        assert (revised["status"], revised["step_id"], revised["retries_remaining"]) == ("execute_step", "draft", 3)
        assert await call("stratum_resume", flow_id=flow_id) == revised
        await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "t3", "score": 0.8})
        await call("stratum_step_done", flow_id=flow_id, step_id="polish", result={"text": "t4", "score": 0.8})
        done = await call(
            "stratum_gate_resolve",
            flow_id=flow_id,
            step_id="approve",
            outcome="approve",
            rationale="ok",
            resolved_by="human",
        )
        assert set(done) == COMPLETION
        assert (done["status"], done["output"]) == ("complete", {"text": "t4", "score": 0.8})

        report = await call("stratum_audit", flow_id=flow_id)
        assert set(report) == AUDIT
        assert (report["flow_id"], report["flow_name"], report["status"]) == (flow_id, "post", "complete")
        assert (report["steps_completed"], report["total_steps"]) == (3, 3)
        assert report["trace"] == done["trace"]
        for record in report["trace"]:
            assert set(record) == (GATE_RECORD if record["type"] == "gate" else STEP_RECORD) | ROUND
        assert [(r["type"], r["step_id"], r["round"], r["round_start_step_id"]) for r in report["trace"]] == [
            ("step", "draft", 2, "draft"),
            ("step", "polish", 2, "draft"),
            ("gate", "approve", 2, "draft"),
        ]
        [archived] = report["rounds"]
        assert archived["round"] == 1
        assert [(r["step_id"], r.get("attempts"), r.get("outcome")) for r in archived["steps"]] == [
            ("draft", 3, None),
            ("polish", 1, None),
            ("approve", None, "revise"),
        ]
        assert archived["steps"][2]["resolved_by"] == "human" and archived["steps"][2]["rationale"] == "shorter"
        assert (report["iterations"], report["archived_iterations"], report["child_audits"]) == ({}, {}, {})

        # The flow is an ordinary run: its trace is a resource, every attempt recorded.
        contents = (await client.read_resource(f"stratum://runs/{flow_id}")).contents[0]
        assert isinstance(contents, types.TextResourceContents)
        trace = json.loads(contents.text)
        assert trace["status"] == "succeeded"
        steps = {step["step_id"]: step for step in trace["steps"]}
        assert [a["violations"] != [] for a in steps["draft"]["attempts"]] == [True, True, False]  # round 1
        assert steps["draft@2"]["status"] == "succeeded" and steps["approve"]["reviews"][0]["reviewer"] == "human"

        listed = await call("stratum_list_workflows")
        assert listed["errors"] == []
        assert listed["workflows"] == [
            {
                "name": "write-post",
                "description": "Draft a post, polish it, have it approved.",
                "input": {"topic": {"type": "string", "required": True}},
                "path": str((PLANS / "write_post.stratum.yaml").resolve()),
            }
        ]
        outside = await call("stratum_list_workflows", workflows_dir=str(tmp_path))
        assert "outside the plans folder" in error_of(outside, "invalid_workflows_dir")

        # The workflow tool is a typed tool; with no model the step goes to the agent, who reports it with our own
        # stratum_step_done (run_id, output): the server's own tools keep working beside the reference's.
        tool = tools["write-post"]
        assert tool.input_schema["required"] == ["topic"]
        assert tool.description is not None and tool.description.startswith("Draft a post, polish it")
        paused = await client.call_tool("write-post", {"topic": "tea"})
        run_id = (paused.meta or {})["stratum/run_id"]
        ours = await client.call_tool(
            "stratum_step_done", {"run_id": run_id, "step_id": "draft", "output": {"text": "x", "score": 0.9}}
        )
        assert not ours.is_error and "polish" in text_of(ours)


async def test_iterations_run_until_their_exit_criterion_or_an_abort(reference_server: StratumServer) -> None:
    async with Client(reference_server) as client:
        call = Agent(client)
        first = await call("stratum_plan", spec=LOOP, flow="loop", inputs={})
        flow_id = first["flow_id"]
        assert set(first) == ITERATION_STEP and first["iteration"] == 1 and first["max_iterations"] == 4
        assert await call("stratum_iteration_start", flow_id=flow_id, step_id="tune") == {
            "status": "iteration_started",
            "flow_id": flow_id,
            "step_id": "tune",
            "iteration": 1,
            "max_iterations": 4,
            "exit_criterion": "result.score >= 0.9",
        }
        going = await call("stratum_iteration_report", flow_id=flow_id, step_id="tune", result={"score": 0.5})
        assert (going["status"], going["iteration"]) == ("iteration_continue", 2)
        bad = await call("stratum_iteration_report", flow_id=flow_id, step_id="tune", result={"score": "high"})
        assert bad["status"] == "schema_failed" and bad["iteration"] == 2  # each iteration's result is checked
        done = await call("stratum_iteration_report", flow_id=flow_id, step_id="tune", result={"score": 0.95})
        assert done == {
            "status": "iteration_exit",
            "flow_id": flow_id,
            "step_id": "tune",
            "iteration": 2,
            "outcome": "exit_success",
            "final_result": {"score": 0.95},
        }
        # The step is still reported with step_done (as the reference's skills do); the next step follows.
        after = await call("stratum_step_done", flow_id=flow_id, step_id="tune", result={"score": 0.95})
        assert (after["status"], after["step_id"]) == ("execute_step", "again")

        await call("stratum_iteration_start", flow_id=flow_id, step_id="again")
        await call("stratum_iteration_report", flow_id=flow_id, step_id="again", result={"score": 0.1})
        aborted = await call("stratum_iteration_abort", flow_id=flow_id, step_id="again", reason="good enough")
        assert aborted == {
            "status": "iteration_aborted",
            "flow_id": flow_id,
            "step_id": "again",
            "reason": "good enough",
            "final_result": {"score": 0.1},
        }
        extra = await call("stratum_step_done", flow_id=flow_id, step_id="again", result={"score": 0.1})
        assert (extra["step_id"], extra["mode"]) == ("extra", "compute")  # a code-less compute step: the agent's
        last = await call("stratum_skip_step", flow_id=flow_id, step_id="extra", reason="not needed")
        assert last["step_id"] == "last"
        complete = await call("stratum_step_done", flow_id=flow_id, step_id="last", result={"score": 1})
        assert complete["status"] == "complete" and complete["output"] == {"score": 1}

        report = await call("stratum_audit", flow_id=flow_id)
        skip = next(r for r in report["trace"] if r["type"] == "skip")
        assert skip == {
            "type": "skip",
            "step_id": "extra",
            "skip_reason": "not needed",
            "round": 1,
            "round_start_step_id": None,
        }
        assert [e["iteration"] for e in report["iterations"]["tune"]] == [1, 2]
        assert [e["status"] for e in report["iterations"]["again"]] == ["succeeded", "skipped"]
        run = reference_server.store.get_steps(flow_id)
        outcomes = {s.step_id: s.attributes.get("iteration_outcome") for s in run if s.kind == "iteration"}
        assert outcomes == {"tune": "exit_success", "again": "exit_abort"}


async def test_parallel_dispatch_tasks_are_reported_together_and_checked_each(
    reference_server: StratumServer,
) -> None:
    async with Client(reference_server) as client:
        call = Agent(client)
        first = await call("stratum_plan", spec=BUILD, flow="build", inputs={"goal": "ship"})
        flow_id = first["flow_id"]
        assert set(first) == EXECUTE_STEP and first["step_mode"] == "decompose" and first["agent"] == "planner"
        tasks = [{"id": "a", "description": "A"}, {"id": "b", "description": "B"}]
        fan = await call("stratum_step_done", flow_id=flow_id, step_id="plan", result={"tasks": tasks})
        assert set(fan) == PARALLEL
        assert fan == {
            "status": "parallel_dispatch",
            "flow_id": flow_id,
            "step_number": 2,
            "total_steps": 2,
            "step_id": "work",
            "step_mode": "parallel_dispatch",
            "tasks": tasks,
            "max_concurrent": 2,
            "isolation": None,
            "require": "any",
            "merge": "sequential_apply",
            "intent_template": "Implement: {task.description}",
        }
        wrong_tool = await call("stratum_step_done", flow_id=flow_id, step_id="work", result={})
        error_of(wrong_tool, "wrong_step_type")
        conflict = await call(
            "stratum_parallel_done", flow_id=flow_id, step_id="work", task_results=[], merge_status="conflict"
        )
        assert conflict["status"] == "ensure_failed" and conflict["violations"][0].startswith("merge_status: conflict")
        results = [
            {"task_id": "a", "result": {"ok": "yes"}, "status": "complete"},
            {"task_id": "b", "result": None, "status": "failed"},
        ]
        checked = await call("stratum_parallel_done", flow_id=flow_id, step_id="work", task_results=results)
        assert checked["status"] == "ensure_failed"
        assert checked["violations"] == ['task a: schema: result.ok: expected boolean, got "yes"']
        fixed = [{"task_id": "a", "result": {"ok": True}, "status": "complete"}]
        done = await call("stratum_parallel_done", flow_id=flow_id, step_id="work", task_results=fixed)
        assert done["status"] == "complete"
        assert done["output"] == {
            "tasks": [
                {"task_id": "a", "result": {"ok": True}, "status": "complete"},
                {"task_id": "b", "result": None, "status": "failed", "error": "the task failed"},
            ],
            "merge_status": "clean",
            "completed": 1,
            "failed": 1,
            "outcome": "complete",
        }
        late = await call("stratum_parallel_done", flow_id=flow_id, step_id="work", task_results=fixed)
        error_of(late, "flow_complete")


async def test_a_result_out_of_attempts_follows_on_fail_and_a_gate_can_be_killed(
    reference_server: StratumServer,
) -> None:
    async with Client(reference_server) as client:
        call = Agent(client)
        first = await call("stratum_plan", spec=ROUTED, flow="routed", inputs={})
        flow_id = first["flow_id"]
        assert first["retries_remaining"] == 1
        routed = await call("stratum_step_done", flow_id=flow_id, step_id="first", result={"value": -1})
        assert (routed["status"], routed["step_id"], routed["routed_from"]) == ("execute_step", "safe", "first")
        assert routed["violations"] == ["ensure: result.value > 0 (actual: result.value = -1)"]
        gate = await call("stratum_step_done", flow_id=flow_id, step_id="safe", result={"value": 1})
        assert gate["status"] == "await_gate" and gate["timeout"] is None

        error_of(
            await call("stratum_gate_resolve", flow_id=flow_id, step_id="gate", outcome="maybe"), "invalid_outcome"
        )
        bad_resolver = await call(
            "stratum_gate_resolve", flow_id=flow_id, step_id="gate", outcome="approve", resolved_by="robot"
        )
        error_of(bad_resolver, "invalid_resolved_by")
        not_gate = await call("stratum_gate_resolve", flow_id=flow_id, step_id="safe", outcome="approve")
        error_of(not_gate, "not_a_gate_step")
        error_of(await call("stratum_gate_resolve", flow_id=flow_id, step_id="nope", outcome="kill"), "step_not_found")
        error_of(await call("stratum_step_done", flow_id=flow_id, step_id="safe", result={}), "step_mismatch")
        error_of(await call("stratum_skip_step", flow_id=flow_id, step_id="gate"), "gate_step_cannot_be_skipped")
        error_of(await call("stratum_audit", flow_id="no-such-flow"), "flow_not_found")
        assert (await call("stratum_check_timeouts", flow_id=flow_id))["remaining_seconds"] is None

        killed = await call(
            "stratum_gate_resolve", flow_id=flow_id, step_id="gate", outcome="kill", rationale="no", resolved_by="agent"
        )
        assert set(killed) == COMPLETION and killed["status"] == "killed" and killed["output"] is None
        report = await call("stratum_audit", flow_id=flow_id)
        assert report["status"] == "killed"
        assert [(r["step_id"], r["type"]) for r in report["trace"]] == [
            ("first", "step"),
            ("safe", "step"),
            ("gate", "gate"),
        ]
        assert report["trace"][2]["resolved_by"] == "agent"


async def test_a_revise_past_max_rounds_is_refused_and_a_bad_plan_is_a_validation_error(
    reference_server: StratumServer,
) -> None:
    async with Client(reference_server) as client:
        call = Agent(client)
        bad = await call("stratum_plan", spec=WRITE_POST.replace('version: "0.2"', 'version: "0.1"'), flow="post")
        assert bad["error_type"] == "ir_validation_error" and bad["success"] is False and bad["errors"]
        missing = await call("stratum_plan", spec=WRITE_POST, flow="post", inputs={})
        assert "topic" in error_of(missing, "execution_error")  # flow inputs are validated (the reference did not)

        flow_id = (await call("stratum_plan", spec=WRITE_POST, flow="post", inputs={"topic": "x"}))["flow_id"]
        for _ in range(2):  # max_rounds: 3 -- two revisions start rounds 2 and 3
            await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "d", "score": 0.9})
            await call("stratum_step_done", flow_id=flow_id, step_id="polish", result={"text": "p", "score": 0.9})
            revised = await call("stratum_gate_resolve", flow_id=flow_id, step_id="approve", outcome="revise")
            assert revised["step_id"] == "draft"
        await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "d", "score": 0.9})
        await call("stratum_step_done", flow_id=flow_id, step_id="polish", result={"text": "p", "score": 0.9})
        over = await call("stratum_gate_resolve", flow_id=flow_id, step_id="approve", outcome="revise")
        assert "max_rounds" in error_of(over, "max_rounds_exceeded")
        assert (await call("stratum_resume", flow_id=flow_id))["status"] == "await_gate"  # still waiting: decide
        report = await call("stratum_audit", flow_id=flow_id)
        assert [r["round"] for r in report["rounds"]] == [1, 2] and report["status"] == "in_progress"

        flow_id = (await call("stratum_plan", spec=WRITE_POST, flow="post", inputs={"topic": "x"}))["flow_id"]
        for left in (2, 1):
            retry = await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "d", "score": 0})
            assert retry["retries_remaining"] == left
        out = await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "d", "score": 0})
        assert "3 attempts" in error_of(out, "retries_exhausted") and out["step_id"] == "draft"
        assert (await call("stratum_audit", flow_id=flow_id))["status"] == "failed"  # not in_progress, as there


async def test_a_gate_past_its_timeout_is_killed_when_timeouts_are_checked(tmp_path: Path) -> None:
    server = make_server(PLANS, store=tmp_path / "runs.db", reference_tools=True)
    try:
        async with Client(server) as client:
            call = Agent(client)
            flow_id = (await call("stratum_plan", spec=WRITE_POST, flow="post", inputs={"topic": "x"}))["flow_id"]
            await call("stratum_step_done", flow_id=flow_id, step_id="draft", result={"text": "d", "score": 0.9})
            await call("stratum_step_done", flow_id=flow_id, step_id="polish", result={"text": "p", "score": 0.9})
            with sqlite3.connect(tmp_path / "runs.db") as db:  # the clock passes the gate's deadline
                db.execute("UPDATE reviews SET deadline = 1 WHERE run_id = ?", (flow_id,))
            killed = await call("stratum_check_timeouts", flow_id=flow_id)
            assert killed["status"] == "killed" and killed["reason"] == "timeout" and killed["step_id"] == "approve"
            gate = (await call("stratum_audit", flow_id=flow_id))["trace"][-1]
            assert (gate["outcome"], gate["resolved_by"], gate["rationale"]) == ("kill", "system", "timeout")
    finally:
        server.close()


async def test_the_shared_tools_take_both_argument_shapes_only_with_reference_tools() -> None:
    plain = make_server(PLANS)
    try:
        async with Client(plain) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert not (REFERENCE_TOOLS - {"stratum_resume", "stratum_step_done"}) & names
            ours = await client.call_tool("stratum_step_done", {"flow_id": "x", "step_id": "s", "result": {}})
            assert ours.is_error and "run_id" in text_of(ours)
    finally:
        plain.close()
    assert ServerConfig.from_env({"STRATUM_REFERENCE_TOOLS": "1"}).reference_tools is True


def test_no_flow_can_take_the_name_of_a_reference_tool() -> None:
    assert REFERENCE_TOOLS <= RESERVED_TOOL_NAMES | REFERENCE_TOOL_NAMES


NESTED = """
version: "0.2"
contracts:
  T:
    text: {type: string}
functions:
  say:
    mode: infer
    intent: Say something.
    output: T
flows:
  child:
    input: {x: {type: string}}
    steps:
      - {id: inner, function: say, inputs: {x: "$.input.x"}}
  main:
    input: {x: {type: string}}
    steps:
      - {id: pre, function: say, inputs: {x: "$.input.x"}}
      - {id: sub, flow: child, inputs: {x: "$.steps.pre.output.text"}}
"""
VERSION_1 = """
version: "1"
contracts:
  T:
    text: {type: string}
functions:
  shout:
    mode: compute
    input: {x: {type: string}}
    output: T
    expr: "{'text': x.upper()}"
  ok:
    mode: human
    question: Go on?
    output: {type: boolean}
flows:
  main:
    input: {x: {type: string}}
    output: T
    steps:
      - {id: check, function: ok, inputs: {}}
      - {id: loud, function: shout, inputs: {x: $.input.x}, depends_on: [check]}
"""


async def test_a_sub_flow_step_goes_by_its_path_and_a_version_1_human_step_names_its_review(
    reference_server: StratumServer,
) -> None:
    async with Client(reference_server) as client:
        call = Agent(client)
        flow_id = (await call("stratum_plan", spec=NESTED, flow="main", inputs={"x": "a"}))["flow_id"]
        inner = await call("stratum_step_done", flow_id=flow_id, step_id="pre", result={"text": "b"})
        assert set(inner) == FUNCTION_STEP
        assert (inner["step_id"], inner["step_number"], inner["total_steps"], inner["inputs"]) == (
            "sub.inner",
            1,
            1,
            {"x": "b"},
        )
        done = await call("stratum_step_done", flow_id=flow_id, step_id="sub.inner", result={"text": "c"})
        assert (done["status"], done["output"]) == ("complete", {"text": "c"})

        paused = await call("stratum_plan", spec=VERSION_1, flow="main", inputs={"x": "a"})
        assert AWAIT_GATE | {"review_id", "question", "decision_schema", "answer_with"} == set(paused)
        assert (paused["step_id"], paused["question"]) == ("check", "Go on?")
        refused = await call("stratum_gate_resolve", flow_id=paused["flow_id"], step_id="check", outcome="approve")
        assert paused["review_id"] in error_of(refused, "not_a_gate_step")
        answered = await client.call_tool("stratum_resume", {"review_id": paused["review_id"], "answer": True})
        assert not answered.is_error
        finished = await call("stratum_resume", flow_id=paused["flow_id"])
        assert (finished["status"], finished["output"]) == ("complete", {"text": "A"})  # its compute step ran here


@pytest.mark.slow
async def test_a_flow_belongs_to_who_planned_it_and_a_version_1_plan_names_only_configured_models(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-token-0123456789 alice\nbob-token-0123456789 bob\n", encoding="utf-8")
    command = serve_command(PLANS, tmp_path / "runs.db", "--reference-tools", "--tokens", str(tokens))
    server = HttpServer(command, server_env())
    try:
        async with server.client(token="alice-token-0123456789") as alice:
            flow_id = (await Agent(alice)("stratum_plan", spec=WRITE_POST, flow="post", inputs={"topic": "x"}))[
                "flow_id"
            ]
            talk = "  talk: {mode: infer, intent: Talk., input: {}, output: T, model: openai/gpt-4o}\n"
            named = VERSION_1.replace("functions:\n", "functions:\n" + talk)
            refused = await Agent(alice)("stratum_plan", spec=named, flow="main", inputs={"x": "a"})
            assert "openai/gpt-4o" in error_of(refused, "ir_validation_error")
            assert refused["path"] == "functions.talk.model"
        async with server.client(token="bob-token-0123456789") as bob:
            call = Agent(bob)
            for tool, arguments in (
                ("stratum_audit", {}),
                ("stratum_resume", {}),
                ("stratum_step_done", {"step_id": "draft", "result": {"text": "mine now", "score": 1}}),
            ):
                theirs = await call(tool, flow_id=flow_id, **arguments)
                missing = await call(tool, flow_id="0" * 32, **arguments)
                assert error_of(theirs, "flow_not_found").replace(flow_id, "<id>") == error_of(
                    missing, "flow_not_found"
                ).replace("0" * 32, "<id>")
        async with server.client(token="alice-token-0123456789") as alice:
            assert (await Agent(alice)("stratum_resume", flow_id=flow_id))["step_id"] == "draft"
    finally:
        server.stop()
