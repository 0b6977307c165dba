# mypy: disable-error-code="empty-body"
"""@flow: a Python coroutine whose decorated calls are the steps of one recorded run."""

from __future__ import annotations

from typing import Literal

import anyio
import pytest
from library_helpers import last_trace, steps
from pydantic import BaseModel, Field

from stratum_core.engine import Engine, RunObserver
from stratum_core.errors import BudgetExceeded, ConfigurationError, PlanError, PostconditionFailed
from stratum_core.library import Budget, compute, configure, contract, flow, infer, run
from stratum_core.store import MemoryRunStore
from stratum_core.testing import FakeLLM, Fault, Reply


@contract
class Sentiment(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    confidence: float = Field(ge=0, le=1)


@infer(intent="Classify the tone of the text.", retries=0)
def classify(text: str) -> Sentiment: ...


@compute
def shout(label: str) -> str:
    return label.upper() + "!"


@compute
def fail_on(text: str) -> str:
    if text == "bad":
        raise ValueError("bad text")
    return text


@flow(budget=Budget(ms=60_000))
async def triage(text: str) -> str:
    """Classify a text and shout its label."""
    sentiment = await classify(text)
    loud = await shout(sentiment.label)
    return loud


@flow
async def each(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        checked = await fail_on(text)
        out.append(checked)
    return out


@flow
async def forgiving(text: str) -> str:
    try:
        checked = await fail_on(text)
    except Exception:
        checked = await fail_on("fallback")
    return checked


@flow
async def buggy(text: str) -> str:
    loud = await shout(text)
    raise KeyError(loud)


@flow
async def wrong_output(text: str) -> int:
    loud = await shout(text)
    return loud  # type: ignore[return-value]


@flow
async def outer(text: str) -> str:
    inner = await triage(text)
    again = await shout(inner)
    return again


@flow
async def fan_out(texts: list[str]) -> list[str]:
    results: dict[int, str] = {}

    async def one(index: int, text: str) -> None:
        results[index] = await shout(text)

    async with anyio.create_task_group() as group:
        for index, text in enumerate(texts):
            group.start_soon(one, index, text)
    return [results[i] for i in range(len(texts))]


@flow(budget=Budget(tokens=1000))
async def two_calls(text: str) -> str:
    first = await classify(text)
    second = await classify(first.label)
    return second.label


async def test_a_flow_records_each_call_as_a_step_named_after_its_variable(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue({"label": "negative", "confidence": 0.9})
    assert await triage("It broke.") == "NEGATIVE!"
    trace = last_trace(engine, "triage")
    assert trace.run.status == "succeeded" and trace.run.output == "NEGATIVE!"
    assert trace.run.input == {"text": "It broke."}
    assert steps(trace) == [("sentiment", "infer", "classify", "succeeded"), ("loud", "compute", "shout", "succeeded")]
    assert trace.steps[0].input == {"text": "It broke."}
    assert trace.steps[1].input == {"label": "negative"}
    assert trace.run.plan_source.startswith("python:")


async def test_a_step_called_again_in_a_loop_gets_a_numbered_id(engine: Engine) -> None:
    assert await each(["a", "b", "c"]) == ["a", "b", "c"]
    assert [s.step_id for s in last_trace(engine).steps] == ["checked", "checked#2", "checked#3"]


async def test_a_failed_step_the_flow_catches_is_recorded_and_the_run_goes_on(engine: Engine) -> None:
    assert await forgiving("bad") == "fallback"
    trace = last_trace(engine)
    assert steps(trace) == [
        ("checked", "compute", "fail_on", "failed"),
        ("checked_2", "compute", "fail_on", "succeeded"),
    ]
    assert trace.run.status == "succeeded"


async def test_an_exception_of_the_flow_code_itself_is_raised_as_it_is_and_fails_the_run(engine: Engine) -> None:
    with pytest.raises(KeyError, match="HI!"):
        await buggy("hi")
    trace = last_trace(engine)
    assert trace.run.status == "failed" and trace.run.error is not None
    assert trace.run.error["type"] == "ComputeError" and "KeyError" in str(trace.run.error["message"])
    assert steps(trace) == [("loud", "compute", "shout", "succeeded")]


async def test_a_flow_output_that_breaks_its_type_fails_the_run(engine: Engine) -> None:
    with pytest.raises(PostconditionFailed, match="the output of flow 'wrong_output' does not match its type"):
        await wrong_output("x")
    assert last_trace(engine).run.status == "failed"


async def test_a_sub_flow_is_a_step_whose_steps_are_recorded_under_its_id(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue({"label": "positive", "confidence": 0.9})
    assert await outer("Nice.") == "POSITIVE!!"
    assert steps(last_trace(engine, "outer")) == [
        ("inner", "flow", "triage", "succeeded"),
        ("inner.sentiment", "infer", "classify", "succeeded"),
        ("inner.loud", "compute", "shout", "succeeded"),
        ("again", "compute", "shout", "succeeded"),
    ]


async def test_calls_in_tasks_the_flow_starts_are_steps_of_the_same_run(engine: Engine) -> None:
    assert await fan_out(["a", "b"]) == ["A!", "B!"]
    trace = last_trace(engine, "fan_out")
    assert sorted(s.step_id for s in trace.steps) == ["shout", "shout#2"]
    assert len(engine.store.list_runs().runs) == 1


async def test_the_flow_budget_is_shared_by_its_steps(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"label": "neutral", "confidence": 0.5}, prompt_tokens=890, completion_tokens=10))
    with pytest.raises(BudgetExceeded) as caught:
        await two_calls("hm")
    assert caught.value.dimension == "tokens" and caught.value.step_id == "second"
    assert len(fake_llm.requests) == 1


async def test_a_cancelled_flow_is_recorded_as_cancelled(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("Classify", Fault(kind="hang"))
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(triage, "wait")
            assert await anyio.to_thread.run_sync(fake_llm.wait_for_requests, 1)
            group.cancel_scope.cancel()
    trace = last_trace(engine, "triage")
    assert trace.run.status == "cancelled" and trace.steps[0].status == "cancelled"


async def test_observers_hear_each_top_level_step_and_the_end_of_the_run(fake_llm: FakeLLM) -> None:
    heard: list[tuple[str, ...]] = []

    class Recorder(RunObserver):
        async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
            heard.append(("step", step_id, status))

        async def run_finished(self, run_id: str, status: str) -> None:
            heard.append(("run", status))

    configure(
        model=fake_llm.model, api_base=fake_llm.url, api_key="test", store=MemoryRunStore(), observers=[Recorder()]
    )
    fake_llm.enqueue({"label": "neutral", "confidence": 0.5})
    await outer("x")
    assert heard == [("step", "inner", "succeeded"), ("step", "again", "succeeded"), ("run", "succeeded")]


async def test_two_different_functions_with_one_name_in_one_run_are_refused(engine: Engine) -> None:
    @compute(name="shout")
    def other_shout(label: str) -> str:
        return label

    @flow
    async def clash(text: str) -> str:
        first = await shout(text)
        second = await other_shout(first)
        return second

    with pytest.raises(ConfigurationError, match="two different functions named 'shout'"):
        await clash("x")


def test_run_calls_a_flow_from_synchronous_code(fake_llm: FakeLLM) -> None:
    configure(model=fake_llm.model, api_base=fake_llm.url, api_key="test", store=MemoryRunStore())
    fake_llm.enqueue({"label": "positive", "confidence": 0.9}, {"label": "neutral", "confidence": 0.9})
    assert run(triage, "Great.") == "POSITIVE!"
    assert run(triage("Fine.")) == "NEUTRAL!"


async def test_run_refuses_to_run_inside_a_running_event_loop() -> None:
    with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
        run(triage("x"))


def test_a_flow_is_an_async_function() -> None:
    with pytest.raises(PlanError, match="a flow is an async function"):

        @flow  # type: ignore[arg-type]
        def not_async(text: str) -> str:
            return text
