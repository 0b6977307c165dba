"""Steps cancelled on Temporal while their model call is in flight (a lost race, a time budget out, the run
cancelled): the workflow goes on at once, the activity is cancelled and its model call stops, the trace says so.

Before the workflow awaited its activities through a shield, a step cancelled while it awaited one could spin the
workflow thread for good (Temporal held the cancellation until the activity ended, anyio re-sent it on every loop
iteration, so the activation never finished and the activity's end never reached the workflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from stratum_core.backends.temporal import TemporalEngine
from stratum_core.engine import RunResult
from stratum_core.plan import Plan, load_plan
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Fault
from tests.plans.test_plans_run import task
from tests.stratum_core.backends.temporal.conftest import TEMPORAL_TEST_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TEMPORAL_TEST_TIMEOUT, method="thread")]
GUARD = 300.0  # a hang guard, never reached when things work

PLAN = """\
version: "1"
contracts:
  Answer:
    text: {type: string, minLength: 1}
functions:
  quick:
    mode: infer
    intent: Answer quickly, in one line.
    input: {topic: {type: string}}
    output: Answer
  slow:
    mode: infer
    intent: Answer slowly, at length.
    input: {topic: {type: string}}
    output: Answer
flows:
  raced:
    input: {topic: {type: string}}
    output: Answer
    steps:
      - id: answer
        race:
          - {id: quick_answer, function: quick, inputs: {topic: $.input.topic}}
          - {id: slow_answer, function: slow, inputs: {topic: $.input.topic}}
    result: $.steps.answer.output
  timed:
    input: {topic: {type: string}}
    output: Answer
    steps:
      - id: answer
        function: slow
        inputs: {topic: $.input.topic}
        budget: {ms: 1500}
    result: $.steps.answer.output
  chained:
    input: {topic: {type: string}}
    output: Answer
    steps:
      - id: first
        function: quick
        inputs: {topic: $.input.topic}
      - id: second
        function: slow
        inputs: {topic: $.steps.first.output.text}
    result: $.steps.second.output
"""
QUICK = {"text": "a quick answer"}


def plan_file(tmp_path: Path) -> Plan:
    path = tmp_path / "cancel.stratum.yaml"
    path.write_text(PLAN)
    return load_plan(path)


def slow_requests(fake_llm: FakeLLM) -> list[dict[str, Any]]:
    return [body for body in fake_llm.requests if "slowly" in task(body)]


async def test_a_lost_race_whose_loser_is_in_flight_ends_and_stops_the_losers_model_call(
    temporal_engine: TemporalEngine, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.add_rule("slowly", Fault(kind="hang"))  # answered only when its client goes away
    fake_llm.add_rule("quickly", lambda body: wait_then(fake_llm, QUICK))
    with anyio.fail_after(GUARD):
        result = await temporal_engine.run(plan_file(tmp_path), "raced", {"topic": "tea"})
    assert result.status == "succeeded", result.error
    assert result.output == QUICK
    assert await idle(fake_llm)  # the loser's request ended: its client went away
    store = temporal_engine.store
    trace = store.get_trace(result.run_id)
    assert trace is not None
    steps = {s.step_id: s for s in trace.steps}
    assert steps["answer"].attributes["winner"] == "answer.quick_answer"
    [loser_attempt] = [a for a in trace.attempts if a.step_id == "answer.slow_answer"]
    assert loser_attempt.error is not None and "cancelled while in flight" in loser_attempt.error
    assert len(slow_requests(fake_llm)) == 1  # not retried by Temporal


async def test_a_step_past_its_time_budget_while_its_model_call_is_in_flight_fails_naming_its_budget(
    temporal_engine: TemporalEngine, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.add_rule("slowly", Fault(kind="hang"))
    with anyio.fail_after(GUARD):
        result = await temporal_engine.run(plan_file(tmp_path), "timed", {"topic": "tea"})
    assert result.status == "failed"
    assert result.error is not None and result.error.step_id == "answer", result.error
    assert "time budget" in result.error.message and "step 'answer'" in result.error.message, result.error.message
    assert await idle(fake_llm)
    assert len(slow_requests(fake_llm)) == 1


async def test_a_run_cancelled_through_the_engine_stops_its_model_call_and_keeps_its_finished_steps(
    temporal_engine: TemporalEngine, fake_llm: FakeLLM, store: SQLiteRunStore, tmp_path: Path
) -> None:
    fake_llm.add_rule("slowly", Fault(kind="hang"))
    fake_llm.add_rule("quickly", QUICK)
    results: list[RunResult] = []
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:

            async def run() -> None:
                results.append(await temporal_engine.run(plan_file(tmp_path), "chained", {"topic": "tea"}))

            group.start_soon(run)
            while not (slow_requests(fake_llm) and fake_llm.in_flight):
                await anyio.sleep(0.02)
            (record,) = store.list_runs().runs
            await temporal_engine.cancel(record.run_id)
        assert await idle(fake_llm)  # the model call in flight stopped: its client went away
    (result,) = results
    assert result.status == "cancelled"
    trace = store.get_trace(result.run_id)
    assert trace is not None and trace.run.status == "cancelled"
    steps = {s.step_id: s.status for s in trace.steps}
    assert steps["first"] == "succeeded"
    assert steps.get("second") != "succeeded"
    [attempt] = [a for a in trace.attempts if a.step_id == "second"]
    assert attempt.error is not None and "cancelled while in flight" in attempt.error  # stopped, not answered
    assert len(slow_requests(fake_llm)) == 1  # nothing asked again after the cancel
    workflow_id = trace.run.attributes["backend"]["workflow_id"]  # type: ignore[index,call-overload]
    description = await (await temporal_engine.client()).get_workflow_handle(workflow_id).describe()
    assert description.status is not None and description.status.name == "CANCELED"


def wait_then(fake_llm: FakeLLM, answer: Any) -> Any:
    """`answer`, once the slow call is in flight (called in the test LLM's handler thread, so it may block)."""
    import time

    for _ in range(int(GUARD / 0.02)):
        if slow_requests(fake_llm):
            return answer
        time.sleep(0.02)
    return answer


async def idle(fake_llm: FakeLLM) -> bool:
    """True once no request is in flight at the test LLM (waited for off the event loop, within the guard)."""
    return await anyio.to_thread.run_sync(lambda: fake_llm.wait_for_idle(timeout=GUARD))
