"""A crash cannot be used to overspend: a process killed with a model call in flight leaves its reservation in the
run (a real SQLite file), and the process that resumes the run charges it; a step's own time budget goes on where
it was instead of starting again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from stratum_core.engine import Engine, EngineConfig
from stratum_core.engine._ledger import IN_FLIGHT_AT_EXIT, budget_state
from stratum_core.errors import BudgetExceeded
from stratum_core.llm import LiteLLMClient
from stratum_core.plan import load_plan_text
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Fault, Reply
from tests.fixtures.budget_plans import budget_plan

STEP_MS = 600_000

PLAN = budget_plan(
    f"""\
  once:
    input: {{topic: {{type: string}}}}
    budget: {{tokens: TOKENS}}
    steps:
      - {{id: talk, function: talk, inputs: {{topic: $.input.topic}}, budget: {{ms: {STEP_MS}}}}}
""",
    talk="    max_tokens: 50\n",
)
INPUT = {"topic": "tea"}

# The first process: runs the flow until it is killed (the test LLM never answers its call).
WORKER = textwrap.dedent(
    """
    import sys, anyio
    from stratum_core.engine import Engine, EngineConfig
    from stratum_core.llm import LiteLLMClient
    from stratum_core.plan import load_plan
    from stratum_core.store import SQLiteRunStore

    async def main():
        engine = Engine(
            store=SQLiteRunStore(sys.argv[2]),
            llm=LiteLLMClient(),
            config=EngineConfig(model=sys.argv[3], api_base=sys.argv[4]),
        )
        await engine.run(load_plan(sys.argv[1]), "once", {"topic": "tea"})

    anyio.run(main)
    """
)


def engine_on(store: SQLiteRunStore, fake_llm: FakeLLM) -> Engine:
    return Engine(store=store, llm=LiteLLMClient(), config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url))


async def reservation_of_one_call(tmp_path: Path, fake_llm: FakeLLM) -> int:
    """What the step's call reserves (its counted prompt and max_tokens), from a run answered at once."""
    fake_llm.enqueue(Reply(json={"text": "ok"}))
    with SQLiteRunStore(tmp_path / "probe.db") as store:
        engine = engine_on(store, fake_llm)
        result = await engine.run(load_plan_text(PLAN.replace("TOKENS", "100000")), "once", INPUT)
        assert result.status == "succeeded", result.error
        trace = store.get_trace(result.run_id)
        assert trace is not None and trace.attempts[0].reserved_tokens is not None
        fake_llm.reset()
        return trace.attempts[0].reserved_tokens


def kill_with_the_call_in_flight(tmp_path: Path, fake_llm: FakeLLM, tokens: int) -> tuple[Path, str]:
    """Run the flow in another process, kill it (SIGKILL) once its model call has reached the test LLM."""
    plan_file = tmp_path / "once.stratum.yaml"
    plan_file.write_text(PLAN.replace("TOKENS", str(tokens)), encoding="utf-8")
    database = tmp_path / "runs.db"
    fake_llm.add_rule(lambda body: True, Fault("hang"))
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    command = [sys.executable, "-c", WORKER, str(plan_file), str(database), fake_llm.model, fake_llm.url]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as worker:
        if not fake_llm.wait_for_requests(1, timeout=120):
            worker.kill()
            pytest.fail(f"the worker made no model call: {worker.communicate()[1]}")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=60)
    fake_llm.reset()
    with SQLiteRunStore(database) as store:
        [run] = store.list_runs().runs
    return database, run.run_id


@pytest.fixture
async def crashed(tmp_path: Path, fake_llm: FakeLLM) -> AsyncIterator[tuple[SQLiteRunStore, str, int]]:
    """A run killed with its one call in flight, under a token budget with room for that call and not two."""
    reserved = await reservation_of_one_call(tmp_path, fake_llm)
    database, run_id = kill_with_the_call_in_flight(tmp_path, fake_llm, tokens=reserved + 10)
    with SQLiteRunStore(database) as store:
        yield store, run_id, reserved


@pytest.mark.slow
async def test_a_call_in_flight_when_its_process_dies_is_charged_its_reservation(
    crashed: tuple[SQLiteRunStore, str, int], fake_llm: FakeLLM
) -> None:
    store, run_id, reserved = crashed
    run = store.get_run(run_id)
    assert run is not None and run.status == "running"
    [held] = budget_state(run)["open"].values()  # written before the call was made
    assert held["step_id"] == "talk" and held["prompt_tokens"] + held["max_tokens"] == reserved
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}))

    with anyio.fail_after(60):
        result = await engine_on(store, fake_llm).resume(run_id)

    # the lost call took what was left: asking again would overspend, so the step is refused before any request
    assert isinstance(result.error, BudgetExceeded) and result.error.dimension == "tokens"
    assert fake_llm.requests == []
    trace = store.get_trace(run_id)
    assert trace is not None
    [lost] = trace.attempts
    assert (lost.step_id, lost.error) == ("talk", IN_FLIGHT_AT_EXIT)
    assert lost.tokens_in + lost.tokens_out == lost.reserved_tokens == reserved
    assert trace.run.tokens_in + trace.run.tokens_out == reserved
    assert budget_state(trace.run)["open"] == {}


@pytest.mark.slow
async def test_a_steps_time_budget_goes_on_after_a_crash_instead_of_starting_again(
    crashed: tuple[SQLiteRunStore, str, int], fake_llm: FakeLLM
) -> None:
    store, run_id, _ = crashed
    [step] = store.get_steps(run_id)
    assert step.status == "running" and step.started_at is not None
    run = store.get_run(run_id)
    assert run is not None
    seen_running_ms = (run.updated_at - step.started_at) * 1000  # the dead process was seen in the step this long
    # as if the dead process had spent all of the step's time before it died
    store.upsert_step(step.model_copy(update={"attributes": {**step.attributes, "ms_used": STEP_MS}}))
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}))

    with anyio.fail_after(60):
        result = await engine_on(store, fake_llm).resume(run_id, budget=None)

    assert isinstance(result.error, BudgetExceeded) and result.error.dimension == "ms"
    assert result.error.step_id == "talk" and result.error.limit == STEP_MS
    assert fake_llm.requests == []
    [resumed] = store.get_steps(run_id)
    assert resumed.status == "failed"
    assert resumed.attributes["ms_used"] >= STEP_MS + seen_running_ms
