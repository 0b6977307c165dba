"""Agent steps: infer steps handed to the calling agent, checked by the engine exactly like a model's answers."""

from __future__ import annotations

from typing import Any

import pytest

from stratum_core.engine import AgentTask, Engine, EngineConfig
from stratum_core.errors import AgentStepRequired, PostconditionFailed
from stratum_core.plan import load_plan_text
from stratum_core.store import MemoryRunStore, StoreError

PLAN = """
version: "1"
contracts:
  Note:
    text: {type: string, minLength: 1}
    score: {type: number, minimum: 0, maximum: 1}
functions:
  pros:
    mode: infer
    intent: List the strongest argument for the proposal.
    input: {proposal: {type: string}}
    output: Note
    ensure: ["result.score > 0.5"]
    retries: 1
  cons:
    mode: infer
    intent: List the strongest argument against the proposal.
    input: {proposal: {type: string}}
    output: Note
  weigh:
    mode: compute
    input: {a: {type: number}, b: {type: number}}
    output: {type: string}
    expr: "'go' if a >= b else 'stop'"
flows:
  decide:
    input: {proposal: {type: string}}
    output: {type: string}
    steps:
      - {id: pro, function: pros, inputs: {proposal: $.input.proposal}}
      - {id: con, function: cons, inputs: {proposal: $.input.proposal}}
      - {id: verdict, function: weigh, inputs: {a: $.steps.pro.output.score, b: $.steps.con.output.score}}
"""


@pytest.fixture
def engine() -> Engine:
    return Engine(store=MemoryRunStore(), config=EngineConfig(infer_via="agent"))


def plan() -> Any:
    return load_plan_text(PLAN, source="decide.stratum.yaml")


def by_step(tasks: tuple[AgentTask, ...]) -> dict[str, AgentTask]:
    return {task.step_id: task for task in tasks}


async def test_independent_agent_steps_are_handed_out_together(engine: Engine) -> None:
    result = await engine.run(plan(), "decide", {"proposal": "four-day week"}, agent=True)
    assert result.status == "paused"
    tasks = by_step(result.agent_tasks)
    assert set(tasks) == {"pro", "con"}
    pro = tasks["pro"]
    assert pro.intent == "List the strongest argument for the proposal."
    assert pro.inputs == {"proposal": "four-day week"}
    assert pro.ensure == ("result.score > 0.5",)
    assert pro.output_schema["properties"]["score"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert (pro.attempt, pro.retries_left) == (1, 1)


async def test_a_violation_is_answered_with_the_actual_value_and_the_step_is_retried(engine: Engine) -> None:
    paused = await engine.run(plan(), "decide", {"proposal": "p"}, agent=True)
    rejected = await engine.submit_agent_output(paused.run_id, "pro", {"text": "cheaper", "score": 0.3})
    assert not rejected.accepted
    assert rejected.violations == ("ensure: result.score > 0.5 (actual: result.score = 0.3)",)
    assert rejected.retries_left == 1
    accepted = await engine.submit_agent_output(paused.run_id, "pro", {"text": "cheaper", "score": 0.8})
    assert accepted.accepted and accepted.result is not None
    # the other step is still handed out; nothing else ran yet
    assert accepted.result.status == "paused"
    assert [t.step_id for t in accepted.result.agent_tasks] == ["con"]
    done = await engine.submit_agent_output(paused.run_id, "con", '{"text": "risky", "score": 0.6}')
    assert done.result is not None and done.result.status == "succeeded"
    assert done.result.output == "go"
    trace = engine.store.get_trace(paused.run_id)
    assert trace is not None
    pro_attempts = [a for a in trace.attempts if a.step_id == "pro"]
    assert [(a.backend, len(a.violations)) for a in pro_attempts] == [("agent", 1), ("agent", 0)]
    steps = {s.step_id: s for s in trace.steps}
    assert steps["pro"].attributes["backend"] == "agent"


async def test_schema_violations_and_broken_json_are_fed_back_too(engine: Engine) -> None:
    paused = await engine.run(plan(), "decide", {"proposal": "p"}, agent=True)
    broken = await engine.submit_agent_output(paused.run_id, "con", '{"text": ')
    assert broken.violations[0].startswith("parse: the answer is not valid JSON")
    assert broken.retries_left == 2
    wrong = await engine.submit_agent_output(paused.run_id, "con", {"text": "", "score": 3})
    assert wrong.violations == (
        "schema: result.score: 3 is greater than the maximum of 1",
        "schema: result.text: has 0 characters, expected at least 1",
    )


async def test_running_out_of_retries_fails_the_run(engine: Engine) -> None:
    paused = await engine.run(plan(), "decide", {"proposal": "p"}, agent=True)
    await engine.submit_agent_output(paused.run_id, "pro", {"text": "x", "score": 0.1})
    last = await engine.submit_agent_output(paused.run_id, "pro", {"text": "x", "score": 0.2})
    assert not last.accepted and last.result is not None
    assert last.result.status == "failed"
    assert isinstance(last.result.error, PostconditionFailed)
    assert len(last.result.error.history) == 2
    run = engine.store.get_run(paused.run_id)
    assert run is not None and run.status == "failed"


async def test_reporting_for_a_step_that_is_not_waiting_is_refused(engine: Engine) -> None:
    paused = await engine.run(plan(), "decide", {"proposal": "p"}, agent=True)
    with pytest.raises(StoreError, match="not waiting for the agent"):
        await engine.submit_agent_output(paused.run_id, "verdict", "go")
    with pytest.raises(StoreError, match="no run"):
        await engine.submit_agent_output("nope", "pro", {})


async def test_without_an_agent_or_a_model_an_agent_step_fails_clearly(engine: Engine) -> None:
    result = await engine.run(plan(), "decide", {"proposal": "p"})
    assert isinstance(result.error, AgentStepRequired)
    assert "MCP server" in result.error.message


async def test_an_engine_keeps_no_lock_for_runs_nobody_is_advancing(engine: Engine) -> None:
    paused = await engine.run(plan(), "decide", {"proposal": "p"}, agent=True)
    await engine.submit_agent_output(paused.run_id, "pro", {"text": "x", "score": 0.9})
    assert engine._locks == {}


DEBATE_PLAN = """
version: "1"
contracts:
  Argument:
    position: {type: string, enum: [merge, hold]}
    point: {type: string}
functions:
  optimist:
    mode: infer
    intent: Argue for merging.
    input: {topic: {type: string}, round: {type: integer}}
    output: Argument
    executor: agent
  critic:
    mode: infer
    intent: Argue against merging.
    input: {topic: {type: string}, others: {type: object}}
    output: Argument
    executor: agent
flows:
  argue:
    input: {topic: {type: string}}
    steps:
      - id: debate
        debate: {agents: [optimist, critic], topic: $.input.topic, rounds: 2, converge_on: position}
"""


async def test_a_debate_between_agent_steps_hands_out_every_agent_of_a_round_and_goes_on_with_their_reports() -> None:
    engine = Engine(store=MemoryRunStore(), config=EngineConfig())
    debate = load_plan_text(DEBATE_PLAN, source="debate.stratum.yaml")
    paused = await engine.run(debate, "argue", {"topic": "merge the diff?"}, agent=True)
    assert paused.status == "paused", paused.error
    assert sorted(task.step_id for task in paused.agent_tasks) == ["debate.critic[1]", "debate.optimist[1]"]
    first = await engine.submit_agent_output(paused.run_id, "debate.optimist[1]", {"position": "merge", "point": "ok"})
    assert first.result is not None and [t.step_id for t in first.result.agent_tasks] == ["debate.critic[1]"]
    second = await engine.submit_agent_output(paused.run_id, "debate.critic[1]", {"position": "hold", "point": "no"})
    assert second.result is not None and second.result.status == "paused"
    assert sorted(t.step_id for t in second.result.agent_tasks) == ["debate.critic[2]", "debate.optimist[2]"]
    critic = by_step(second.result.agent_tasks)["debate.critic[2]"]
    assert critic.inputs["others"] == {"optimist": {"position": "merge", "point": "ok"}}
    await engine.submit_agent_output(paused.run_id, "debate.optimist[2]", {"position": "hold", "point": "fair"})
    done = await engine.submit_agent_output(paused.run_id, "debate.critic[2]", {"position": "hold", "point": "still"})
    assert done.result is not None and done.result.status == "succeeded", done.result
    assert done.result.output["converged"] is True and done.result.output["rounds"] == 2
