# mypy: disable-error-code="empty-body"
"""parallel, race, debate and await_human: the plan's group and human steps, called from Python."""

from __future__ import annotations

import datetime
import json
from typing import Any, Literal

import pytest
from library_helpers import HANG, ScriptedSink, last_trace, steps
from pydantic import BaseModel

from stratum_core.engine import Engine, ReviewAnswer
from stratum_core.errors import ConfigurationError, HITLTimeoutError, HumanRejected, ParallelValidationFailed
from stratum_core.library import HumanDecision, await_human, compute, contract, debate, flow, infer, parallel, race
from stratum_core.testing import FakeLLM, Fault


@contract
class Review(BaseModel):
    focus: str
    ok: bool


@contract
class Argument(BaseModel):
    position: Literal["ship", "hold"]


@contract
class Approval(BaseModel):
    decision: Literal["send", "discard"]
    note: str | None = None


@infer(intent="Review the code.", retries=0)
def review(code: str, focus: str) -> Review: ...


@compute
def count(text: str) -> int:
    return len(text)


@infer(intent="Argue for shipping.")
def optimist(topic: str, others: dict[str, Any]) -> Argument: ...


@infer(intent="Argue against shipping.")
def critic(topic: str, others: dict[str, Any]) -> Argument: ...


@infer(intent="Decide the debate.")
def decide(topic: str, arguments: dict[str, Any]) -> Argument: ...


def by_focus(failing: set[str]) -> Any:
    def answer(body: dict[str, Any]) -> Any:
        text = body["messages"][1]["content"]
        for focus in ("security", "style", "speed"):
            if f'"{focus}"' in text:
                return Fault(kind="bad_request") if focus in failing else {"focus": focus, "ok": True}
        return {"focus": "?", "ok": False}

    return answer


@flow
async def reviews_all(code: str) -> list[Review]:
    reviews = await parallel(review(code, "security"), review(code, "style"), review(code, "speed"))
    return reviews


@flow
async def reviews_two(code: str) -> list[Review]:
    reviews = await parallel(
        review(code, "security"),
        review(code, "style"),
        review(code, "speed"),
        require=2,
        validate=lambda outputs: all(r.ok for r in outputs),
    )
    return reviews


@flow
async def reviews_collect(code: str) -> list[Any]:
    reviews = await parallel(review(code, "security"), count(code), require=0)
    return reviews


@flow
async def fastest(code: str) -> Review:
    winner = await race(review(code, "security"), review(code, "style"))
    return winner


@flow
async def approve(text: str) -> str:
    decision = await await_human(
        question="Send it?", context={"text": text}, decision_type=Approval, options=["send", "discard"]
    )
    return decision.value.decision


async def test_parallel_runs_every_branch_as_a_step_of_one_group(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, by_focus(set()))
    reviews = await reviews_all("x = 1")
    assert reviews == [
        Review(focus="security", ok=True),
        Review(focus="style", ok=True),
        Review(focus="speed", ok=True),
    ]
    trace = last_trace(engine)
    assert sorted(steps(trace)) == [
        ("reviews", "parallel", None, "succeeded"),
        ("reviews.review", "infer", "review", "succeeded"),
        ("reviews.review_2", "infer", "review", "succeeded"),
        ("reviews.review_3", "infer", "review", "succeeded"),
    ]
    assert trace.steps[0].attributes["successes"] == 3


async def test_a_failed_branch_fails_a_group_that_requires_all(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, by_focus({"style"}))
    with pytest.raises(ParallelValidationFailed) as caught:
        await reviews_all("x = 1")
    assert caught.value.step_id == "reviews" and "reviews.review_2" in caught.value.failures


async def test_require_n_keeps_the_successes_and_a_python_validate_can_refuse_them(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, by_focus({"style"}))
    assert [r.focus for r in await reviews_two("x")] == ["security", "speed"]
    fake_llm.reset()
    fake_llm.add_rule('"speed"', {"focus": "speed", "ok": False})
    fake_llm.add_rule(lambda body: True, by_focus(set()))
    with pytest.raises(ParallelValidationFailed, match=r"validate: lambda outputs: all\(r.ok for r in outputs\)"):
        await reviews_two("x")
    assert last_trace(engine).steps[0].status == "failed"


async def test_require_zero_collects_every_outcome_including_compute_branches(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, by_focus({"security"}))
    outcomes = await reviews_collect("abc")
    assert outcomes[0]["ok"] is False and "LLMError" in outcomes[0]["error"]
    assert outcomes[1] == {"ok": True, "output": 3}


async def test_a_race_returns_the_first_success_and_records_the_winner(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, by_focus({"security"}))
    assert await fastest("x") == Review(focus="style", ok=True)
    group = last_trace(engine).steps[0]
    assert group.kind == "race" and group.attributes["winner"] == "winner.review_2"
    fake_llm.reset()
    fake_llm.add_rule(lambda body: True, by_focus({"security", "style"}))
    with pytest.raises(ParallelValidationFailed, match="every branch of race 'winner' failed"):
        await fastest("x")


async def test_parallel_outside_a_flow_is_a_run_of_its_own(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, by_focus(set()))
    results = await parallel(review("x", "security"), review("x", "speed"))
    assert [r.focus for r in results] == ["security", "speed"]
    trace = last_trace(engine)
    assert trace.run.flow == "parallel" and trace.steps[0].step_id == "parallel"


def test_parallel_takes_calls_of_decorated_functions() -> None:
    with pytest.raises(TypeError, match=r"parallel\(\) takes calls of @infer and @compute functions"):
        parallel("not a call")  # type: ignore[call-overload]
    call = review("x", "style")
    group = parallel(call)
    with pytest.raises(RuntimeError, match="already awaited"):
        call.send(None)
    group.close()  # never run: closing it says so (a call dropped without `await` warns, like a coroutine)
    forgotten = review("y", "style")
    with pytest.warns(RuntimeWarning, match="was never awaited"):
        del forgotten


def test_a_plain_call_of_a_sync_compute_function_returns_its_value() -> None:
    assert count("four") == 4  # not awaited, not handed to parallel/race: a normal call, as in the reference
    letters = count("abc")
    assert letters + 1 == 4


async def test_a_debate_runs_rounds_and_a_synthesis(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("Argue for shipping", {"position": "ship"})
    fake_llm.add_rule("Argue against shipping", {"position": "hold"})
    fake_llm.add_rule("Decide the debate", {"position": "hold"})
    verdict = await debate(agents=[optimist, critic], topic="release 2.0", rounds=2, synthesize=decide)
    assert verdict == Argument(position="hold")
    trace = last_trace(engine)
    assert sorted(s.step_id for s in trace.steps) == [
        "debate",
        "debate.critic[1]",
        "debate.critic[2]",
        "debate.decide",
        "debate.optimist[1]",
        "debate.optimist[2]",
    ]
    assert trace.steps[0].attributes == {"rounds": 2, "converged": False}
    second_round = [r for r in fake_llm.requests if "Argue for shipping" in json.dumps(r)][1]
    assert '"critic": {"position": "hold"}' in second_round["messages"][1]["content"]


async def test_a_debate_without_synthesis_converges_early(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("Argue", {"position": "ship"})
    result = await debate(agents=[optimist, critic], topic="x", rounds=3, converge_on="position")
    assert result["converged"] is True and result["rounds"] == 1
    assert result["arguments"] == {"optimist": Argument(position="ship"), "critic": Argument(position="ship")}
    with pytest.raises(TypeError, match="agents take only"):
        debate(agents=[review, critic], topic="x")


async def test_await_human_returns_the_decision_with_who_and_why(engine: Engine, sink: ScriptedSink) -> None:
    sink.answers.append(ReviewAnswer(action="accept", value={"decision": "send"}, reviewer="ada", rationale="fine"))
    decision = await await_human(
        question="Ship?", context={"version": "2.0"}, decision_type=Approval, timeout=datetime.timedelta(hours=1)
    )
    assert isinstance(decision, HumanDecision)
    assert decision.value == Approval(decision="send") and decision.reviewer == "ada" and decision.rationale == "fine"
    assert decision.decided_at is not None and decision.decided_at.tzinfo is datetime.UTC and decision.review_id
    [asked] = sink.asked
    assert asked.question == "Ship?" and asked.context == {"version": "2.0"} and asked.timeout == 3600
    trace = last_trace(engine)
    assert steps(trace) == [("await_human", "human", "await_human", "succeeded")]
    assert trace.reviews[0].value == {"decision": "send"} and trace.reviews[0].reviewer == "ada"


async def test_await_human_in_a_flow_is_a_step_named_after_its_variable(engine: Engine, sink: ScriptedSink) -> None:
    sink.answers.append(ReviewAnswer(action="accept", value={"decision": "discard"}))
    assert await approve("hello") == "discard"
    assert steps(last_trace(engine)) == [("decision", "human", "decision", "succeeded")]
    assert sink.asked[0].schema["properties"]["decision"]["enum"] == ["send", "discard"]


async def test_a_declined_decision_raises_human_rejected(engine: Engine, sink: ScriptedSink) -> None:
    sink.answers.append(ReviewAnswer(action="decline"))
    with pytest.raises(HumanRejected) as caught:
        await approve("no")
    assert caught.value.action == "decline" and caught.value.step_id == "decision"


async def test_a_decision_nobody_gives_in_time_raises_or_falls_back(engine: Engine, sink: ScriptedSink) -> None:
    sink.answers.extend([HANG, HANG])
    with pytest.raises(HITLTimeoutError) as caught:
        await await_human(question="Quick?", decision_type=bool, timeout=0.05)
    assert caught.value.review_id
    fallback = await await_human(question="Quick?", decision_type=bool, timeout=0.05, on_timeout=False)
    assert fallback.value is False and fallback.reviewer is None and fallback.decided_at is None


async def test_a_person_nobody_can_ask_pauses_the_run_and_says_how_to_ask(engine: Engine) -> None:
    engine.review_sink = None
    with pytest.raises(ConfigurationError, match=r"configure\(review_sink=\.\.\.\)") as caught:
        await approve("hello")
    run = engine.store.get_run(str(caught.value.run_id))
    assert run is not None and run.status == "paused"
