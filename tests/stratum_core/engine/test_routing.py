"""Sequential flows with routing (reference plans): gates and revise loops, on_fail, next, iterations, dispatch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from stratum_core.engine import Engine, EngineConfig, ReviewAnswer, ReviewRequest, RunResult
from stratum_core.errors import GateKilled, PostconditionFailed, RoutingLimitExceeded
from stratum_core.llm import LiteLLMClient, register_model
from stratum_core.plan import load_plan, load_plan_text
from stratum_core.store import SQLiteRunStore, StoreError
from stratum_core.testing import FakeLLM, minimal_instance

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).parents[2] / "fixtures" / "reference"


class Decide:
    """A review sink that answers gates with scripted outcomes, in order."""

    def __init__(self, *outcomes: str) -> None:
        self.outcomes = list(outcomes)
        self.asked: list[ReviewRequest] = []

    async def ask(self, request: ReviewRequest) -> ReviewAnswer:
        self.asked.append(request)
        outcome = self.outcomes.pop(0)
        return ReviewAnswer(action="accept", value={"outcome": outcome, "rationale": f"said {outcome}"}, reviewer="ann")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteRunStore]:
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        yield store


@pytest.fixture
def engine(fake_llm: FakeLLM, store: SQLiteRunStore, tmp_path: Path) -> Engine:
    register_model(fake_llm.model)
    config = EngineConfig(model=fake_llm.model, api_base=fake_llm.url, force_model=True, project_dir=str(tmp_path))
    return Engine(store=store, llm=LiteLLMClient(backoff_base=0.01), config=config)


def steps_of(engine: Engine, result: RunResult) -> dict[str, Any]:
    return {record.step_id: record for record in engine.store.get_steps(result.run_id)}


async def finish_with_agent(engine: Engine, result: RunResult, sink: Any = None) -> RunResult:
    """Do every agent step a run hands out with a minimal valid answer, until the run ends."""
    for _ in range(20):
        if result.status != "paused" or not result.agent_tasks:
            return result
        task = result.agent_tasks[0]
        answer = minimal_instance(task.output_schema)
        submission = await engine.submit_agent_output(result.run_id, task.step_id, answer, review_sink=sink)
        assert submission.accepted, submission.violations
        assert submission.result is not None
        result = submission.result
    raise AssertionError("too many agent steps")


# -- the corpus runs --------------------------------------------------------------------------------------------


async def test_the_0_1_corpus_plan_runs_with_the_agent_doing_the_code_less_step(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule("security issues", {"findings": "none found", "risk": "low"})
    plan = load_plan(CORPUS / "v01_review.stratum.yaml")
    result = await finish_with_agent(engine, await engine.run(plan, "review", {"diff": "+x"}, agent=True))
    assert result.status == "succeeded", result.error
    assert set(steps_of(engine, result)) == {"sec", "tests"}
    assert set(result.output) == {"findings", "risk"}  # the last step's output: the agent's Findings


async def test_the_0_2_publish_plan_runs_its_gates_inline_steps_and_sub_flow(engine: Engine) -> None:
    plan = load_plan(CORPUS / "v02_publish.stratum.yaml")
    sink = Decide("approve")
    result = await engine.run(plan, "publish", {"topic": "tea", "audience": "all"}, review_sink=sink)
    assert result.status == "succeeded", result.error
    steps = steps_of(engine, result)
    assert steps["flagged"].attributes["effective_policy"] == "flag"  # policy: flag approves without asking
    assert [request.step_id for request in sink.asked] == ["approve"]
    assert "summary.short" in steps  # the sub-flow's step
    assert result.output == steps["summary"].output  # the last step that ran


async def test_a_skipped_step_records_its_skip_reason(engine: Engine) -> None:
    plan = load_plan(CORPUS / "v02_publish.stratum.yaml")
    result = await engine.run(plan, "publish", {"topic": "internal", "audience": "all"}, review_sink=Decide("approve"))
    assert result.status == "succeeded", result.error
    polish = steps_of(engine, result)["polish"]
    assert polish.status == "skipped"
    assert polish.attributes["skip_reason"] == "internal posts are not polished"


async def test_the_0_2_routing_plan_iterates_until_its_exit_criterion(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue({"text": "a", "score": 0.5, "kind": "answer"})  # first
    for score in (0.2, 0.6, 0.95):
        fake_llm.enqueue({"text": f"try {score}", "score": score, "kind": "answer"})
    result = await engine.run(load_plan(CORPUS / "v02_routing.stratum.yaml"), "solve", {"task": "t"})
    assert result.status == "succeeded", result.error
    steps = steps_of(engine, result)
    assert "rescue" not in steps  # `next` jumped over it
    assert steps["improve"].attributes["iteration_outcome"] == "exit_success"
    assert [s for s in steps if s.startswith("improve#")] == ["improve#1", "improve#2", "improve#3"]
    assert result.output["score"] == 0.95


async def test_iterations_stop_when_the_output_stagnates(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue({"text": "a", "score": 0.5, "kind": "answer"})
    for _ in range(3):
        fake_llm.enqueue({"text": "same", "score": 0.1, "kind": "answer"})
    result = await engine.run(load_plan(CORPUS / "v02_routing.stratum.yaml"), "solve", {"task": "t"})
    assert result.status == "succeeded", result.error
    assert steps_of(engine, result)["improve"].attributes["iteration_outcome"] == "exit_stagnation"


async def test_on_fail_routes_a_step_that_keeps_breaking_its_contract(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue({"text": "bad", "score": -1, "kind": "answer"})  # retries: 1 is one attempt
    fake_llm.enqueue({"text": "safe", "score": 0.0, "kind": "fallback"})  # rescue
    fake_llm.add_rule(lambda body: True, {"text": "done", "score": 1.0, "kind": "answer"})
    result = await engine.run(load_plan(CORPUS / "v02_routing.stratum.yaml"), "solve", {"task": "t"})
    assert result.status == "succeeded", result.error
    steps = steps_of(engine, result)
    assert steps["first"].status == "failed"
    assert steps["first"].attributes["routed_to"] == "rescue"
    assert steps["rescue"].output["kind"] == "fallback"
    assert result.output["text"] == "done"


async def test_the_0_3_build_plan_dispatches_one_call_per_task(engine: Engine, fake_llm: FakeLLM) -> None:
    tasks = [{"id": "t1", "description": "parser"}, {"id": "t2", "description": "printer"}]
    fake_llm.add_rule("Split the goal", {"tasks": tasks})
    fake_llm.add_rule("Implement:", {"done": True})
    result = await engine.run(load_plan(CORPUS / "v03_build.stratum.yaml"), "build", {"goal": "a compiler"})
    assert result.status == "succeeded", result.error
    steps = steps_of(engine, result)
    work = steps["work"].output
    assert [t["task_id"] for t in work["tasks"]] == ["t1", "t2"]
    assert (work["completed"], work["failed"], work["outcome"]) == (2, 0, "complete")
    assert steps["work[t1]"].input == {"task": tasks[0], "instruction": "Implement: parser"}
    assert "again.done" in steps


# -- gates --------------------------------------------------------------------------------------------------------

GATED = """\
version: "0.2"
contracts:
  Draft:
    text: {type: string}
functions:
  write:
    mode: infer
    intent: Write a draft.
    input: {topic: {type: string}}
    output: Draft
  review:
    mode: gate
    intent: Publish it?
  cleanup:
    mode: infer
    intent: Clean up after a killed draft.
    input: {}
    output: Draft
flows:
  main:
    input: {topic: {type: string}}
    max_rounds: 3
    steps:
      - {id: draft, function: write, inputs: {topic: "$.input.topic"}}
      - {id: gate, function: review, inputs: {}, on_approve: null, on_revise: draft, on_kill: KILL}
      - {id: publish, intent: Publish the draft., inputs: {text: "$.steps.draft.output.text"}, output_contract: Draft}
      - {id: tidy, function: cleanup, inputs: {}}
"""


def gated(on_kill: str = "null") -> Any:
    return load_plan_text(GATED.replace("KILL", on_kill))


async def test_revise_runs_the_steps_again_from_the_target_and_keeps_earlier_rounds(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue({"text": "v1"}, {"text": "v2"}, {"text": "published v2"}, {"text": "tidy"})
    sink = Decide("revise", "approve")
    result = await engine.run(gated(), "main", {"topic": "tea"}, review_sink=sink)
    assert result.status == "succeeded", result.error
    steps = steps_of(engine, result)
    assert [s for s in steps if not s.startswith("publish")] == ["draft", "gate", "draft@2", "gate@2", "tidy"]
    assert steps["draft"].output == {"text": "v1"} and steps["draft@2"].output == {"text": "v2"}
    assert steps["gate"].output == {"outcome": "revise", "rationale": "said revise"}
    assert steps["publish"].input == {"text": "v2"}
    assert result.output == {"text": "tidy"}


async def test_revise_is_bounded_by_max_rounds(engine: Engine) -> None:
    result = await engine.run(gated(), "main", {"topic": "tea"}, review_sink=Decide("revise", "revise", "revise"))
    assert result.status == "failed"
    assert isinstance(result.error, RoutingLimitExceeded)
    assert result.error.message == "gate 'gate' asked for round 4 (max_rounds: 3)"
    assert [s for s in steps_of(engine, result) if s.startswith("draft")] == ["draft", "draft@2", "draft@3"]


async def test_kill_ends_the_run_at_once_without_a_target(engine: Engine) -> None:
    result = await engine.run(gated(), "main", {"topic": "tea"}, review_sink=Decide("kill"))
    assert result.status == "failed"
    assert isinstance(result.error, GateKilled) and result.error.rationale == "said kill"
    assert set(steps_of(engine, result)) == {"draft", "gate"}


async def test_kill_with_a_target_runs_from_there_and_then_ends_killed(engine: Engine) -> None:
    result = await engine.run(gated("tidy"), "main", {"topic": "tea"}, review_sink=Decide("kill"))
    assert isinstance(result.error, GateKilled)
    assert set(steps_of(engine, result)) == {"draft", "gate", "tidy"}


async def test_a_paused_gate_is_answered_in_the_store_and_the_run_resumes_into_the_next_round(
    engine: Engine, store: SQLiteRunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue({"text": "v1"}, {"text": "v2"})
    paused = await engine.run(gated(), "main", {"topic": "tea"})
    assert paused.status == "paused" and paused.review is not None
    store.answer_review(
        paused.review.review_id, action="accept", value={"outcome": "revise"}, reviewer="bob", rationale=None
    )
    again = await engine.resume(paused.run_id)
    assert again.status == "paused" and again.review is not None and again.review.step_id == "gate@2"
    assert steps_of(engine, again)["draft@2"].output == {"text": "v2"}


# -- bounds and checks --------------------------------------------------------------------------------------------

LOOP = """\
version: "0.2"
contracts:
  Out: {text: {type: string}}
functions:
  f: {mode: infer, intent: Work., output: Out}
flows:
  main:
    input: {}
    max_rounds: 4
    steps:
      - {id: a, function: f}
      - {id: b, function: f, next: a}
"""


async def test_a_next_loop_is_bounded(engine: Engine) -> None:
    result = await engine.run(load_plan_text(LOOP), "main", {})
    assert isinstance(result.error, RoutingLimitExceeded)
    assert result.error.message == "step 'a' would run a 5th time (max_rounds: 4)"


GUARDED = """\
version: "0.2"
contracts:
  Out: {text: {type: string}}
functions:
  f:
    mode: infer
    intent: Answer.
    output: Out
    retries: 2
    guardrails: ["(a+)+b", "sec(ret|urity)"]
flows:
  main:
    input: {}
    steps:
      - {id: a, function: f}
"""


async def test_a_guardrail_match_is_retried_and_no_pattern_backtracks(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue({"text": "the SECRET is out"}, {"text": "a" * 30_000 + "c"})
    result = await engine.run(load_plan_text(GUARDED), "main", {})
    assert result.status == "succeeded", result.error
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    assert [a.violations for a in trace.attempts] == [["guardrail matched: 'sec(ret|urity)'"], []]


FILES = """\
version: "0.1"
contracts:
  Out: {path: {type: string}}
functions:
  f:
    mode: infer
    intent: Name the file you wrote.
    input: {}
    output: Out
    retries: 2
    ensure: ["file_exists(result.path) and file_contains(result.path, 'ok')"]
flows:
  main:
    input: {}
    output: Out
    steps:
      - {id: a, function: f, inputs: {}}
"""


async def test_file_checks_read_only_the_project_folder(engine: Engine, fake_llm: FakeLLM, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("all ok\n", encoding="utf-8")
    fake_llm.enqueue({"path": "../" * 8 + "etc/hostname"}, {"path": "notes.txt"})
    result = await engine.run(load_plan_text(FILES), "main", {})
    assert result.status == "succeeded", result.error
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    (outside,) = trace.attempts[0].violations
    assert "is outside the project folder" in outside
    assert trace.attempts[1].violations == []


async def test_an_output_schema_violation_fails_the_step_with_its_message(engine: Engine, fake_llm: FakeLLM) -> None:
    plan = load_plan(CORPUS / "v01_review.stratum.yaml")
    fake_llm.add_rule(lambda body: True, {"findings": "", "risk": "low"})
    result = await engine.run(plan, "review", {"diff": "+x"}, agent=True)
    assert isinstance(result.error, PostconditionFailed)
    assert list(result.error.history[-1]) == [
        "output_schema violation: schema: result.findings: has 0 characters, expected at least 1"
    ]


def test_gate_decisions_are_a_contract_of_their_own() -> None:
    plan = gated()
    decision: Mapping[str, Any] = plan.contracts["GateDecision"].fields["outcome"].model_dump()
    assert decision["enum"] == ("approve", "revise", "kill")


AGENT_ROUTES = """
version: "0.2"
contracts:
  N:
    n: {type: integer}
functions:
  pick:
    mode: compute
    intent: Pick a positive number.
    output: N
    ensure: ["result.n > 0"]
    retries: 1
  grow:
    mode: compute
    intent: Grow the number.
    output: N
flows:
  main:
    input: {}
    steps:
      - {id: first, function: pick, inputs: {}, on_fail: last}
      - {id: middle, function: pick, inputs: {}}
      - {id: loop, function: grow, inputs: {}, max_iterations: 5, exit_criterion: "result.n > 100"}
      - {id: last, function: grow, inputs: {}}
"""


async def test_an_agent_step_out_of_attempts_follows_on_fail_instead_of_failing_the_run(engine: Engine) -> None:
    paused = await engine.run(load_plan_text(AGENT_ROUTES), "main", {}, agent=True)
    submission = await engine.submit_agent_output(paused.run_id, "first", {"n": -1})
    assert submission.routed_to == "last" and not submission.accepted
    assert submission.violations == ("ensure: result.n > 0 (actual: result.n = -1)",)
    assert submission.result is not None and [t.step_id for t in submission.result.agent_tasks] == ["last"]
    first = steps_of(engine, paused)["first"]
    assert (first.status, first.attributes["routed_to"]) == ("failed", "last")
    done = await engine.submit_agent_output(paused.run_id, "last", {"n": 7})
    assert done.result is not None and (done.result.status, done.result.output) == ("succeeded", {"n": 7})


async def test_closed_agent_steps_are_skipped_or_end_an_iteration_loop(engine: Engine) -> None:
    plan = load_plan_text(AGENT_ROUTES.replace("on_fail: last", "on_fail: middle"))
    paused = await engine.run(plan, "main", {}, agent=True)
    with pytest.raises(StoreError, match=r"'middle' of run .* is not waiting"):
        await engine.close_agent_steps(paused.run_id, ["middle"], status="skipped", reason="x", attribute="skip_reason")
    skipped = await engine.close_agent_steps(
        paused.run_id, ["first"], status="skipped", reason="not needed", attribute="skip_reason"
    )
    assert skipped is not None and [t.step_id for t in skipped.agent_tasks] == ["middle"]
    assert steps_of(engine, paused)["first"].attributes["skip_reason"] == "not needed"
    looping = await engine.submit_agent_output(paused.run_id, "middle", {"n": 1})
    assert looping.result is not None and [t.step_id for t in looping.result.agent_tasks] == ["loop#1"]
    second = await engine.submit_agent_output(paused.run_id, "loop#1", {"n": 2})
    assert second.result is not None and [t.step_id for t in second.result.agent_tasks] == ["loop#2"]
    aborted = await engine.close_agent_steps(
        paused.run_id, ["loop#2"], status="skipped", reason="enough", attribute="iteration_aborted"
    )
    assert aborted is not None and [t.step_id for t in aborted.agent_tasks] == ["last"]
    loop = steps_of(engine, paused)["loop"]
    assert (loop.status, loop.output, loop.attributes["iteration_outcome"]) == ("succeeded", {"n": 2}, "exit_abort")
    assert loop.attributes["iteration_aborted"] == "enough"
