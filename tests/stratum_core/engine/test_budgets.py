"""Budgets fail closed, end to end: LiteLLM over real HTTP to the test LLM, a real SQLite store.

Each model call reserves its worst case before it is made; what a run spent survives pauses and resumes; unpriced
models are refused under a cost budget unless priced or allowed; audit budgets record overruns.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from engine_helpers import IN_PRICE, OUT_PRICE, plan

from stratum_core.engine import Engine, EngineConfig, ReviewRequest
from stratum_core.errors import BudgetExceeded, LLMError
from stratum_core.llm import LiteLLMClient
from stratum_core.plan import Budget
from stratum_core.store import SQLiteRunStore, Trace
from stratum_core.testing import FakeLLM, Fault, Reply
from tests.fixtures.budget_plans import ONCE, budget_plan


def trace_of(engine: Engine, run_id: str) -> Trace:
    trace = engine.store.get_trace(run_id)
    assert trace is not None
    return trace


ONE_CALL = ONCE


def one_call(budget: str) -> Any:
    return plan(ONE_CALL.replace("BUDGET", budget))


async def test_a_token_budget_too_small_for_the_reservation_makes_no_request(engine: Engine, fake_llm: FakeLLM) -> None:
    result = await engine.run(one_call("{tokens: 55}"), "once", {"topic": "tea"})

    assert fake_llm.requests == []
    error = result.error
    assert isinstance(error, BudgetExceeded)
    assert (error.dimension, error.budget, error.left) == ("tokens", "flow 'once'", 55)
    assert error.reserved is not None and error.reserved > 55
    assert f"it reserves {error.reserved} tokens" in error.message and "55 are left" in error.message
    assert "no request was made" in error.message
    assert trace_of(engine, result.run_id).attempts == []


async def test_a_cost_budget_too_small_for_the_reservation_makes_no_request(engine: Engine, fake_llm: FakeLLM) -> None:
    result = await engine.run(one_call("{usd: 0.000001}"), "once", {"topic": "tea"})

    assert fake_llm.requests == []
    error = result.error
    assert isinstance(error, BudgetExceeded) and error.dimension == "usd"
    assert error.reserved is not None and error.reserved > 0.000001
    assert "cannot fit in the cost budget of $1e-06 (flow 'once')" in error.message


async def test_every_request_carries_max_tokens_cut_to_what_the_budget_can_pay(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply(json={"text": "hi"}, prompt_tokens=10, completion_tokens=5))
    result = await engine.run(one_call("{usd: 0.001}"), "once", {"topic": "tea"})

    assert result.status == "succeeded", result.error
    (request,) = fake_llm.requests
    (attempt,) = trace_of(engine, result.run_id).attempts
    assert attempt.reserved_tokens is not None and attempt.reserved_usd is not None
    prompt_reserved = attempt.reserved_tokens - request["max_tokens"]
    # the reservation is the prompt (counted) plus max_tokens, at the model's price, and it fits in the budget
    assert attempt.reserved_usd == pytest.approx(prompt_reserved * IN_PRICE + request["max_tokens"] * OUT_PRICE)
    assert attempt.reserved_usd <= 0.001
    assert 0.001 - attempt.reserved_usd < OUT_PRICE  # one more answer token would not have fit
    # settled to the actual use
    assert (attempt.tokens_in, attempt.tokens_out) == (10, 5)
    assert attempt.cost_usd == pytest.approx(10 * IN_PRICE + 5 * OUT_PRICE)
    run = trace_of(engine, result.run_id).run
    assert run.cost_usd == pytest.approx(attempt.cost_usd)
    assert run.attributes["budget"]["reserved_usd"] == pytest.approx(attempt.reserved_usd)  # type: ignore[index]


FIVE_AT_ONCE = budget_plan(
    """\
  five:
    input: {}
    budget: BUDGET
    steps:
      - {id: a, function: talk, inputs: {topic: aaaa}}
      - {id: b, function: talk, inputs: {topic: bbbb}}
      - {id: c, function: talk, inputs: {topic: cccc}}
      - {id: d, function: talk, inputs: {topic: dddd}}
      - {id: e, function: talk, inputs: {topic: eeee}}
""",
    talk="    max_tokens: 100\n",
)


async def test_every_parallel_call_is_charged(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=900, completion_tokens=100))
    fake_llm.latency = 0.05
    result = await engine.run(plan(FIVE_AT_ONCE.replace("BUDGET", "{tokens: 100000}")), "five", {})

    assert result.status == "succeeded", result.error
    assert len(fake_llm.requests) == 5
    trace = trace_of(engine, result.run_id)
    assert {step.step_id: step.tokens_in + step.tokens_out for step in trace.steps} == dict.fromkeys("abcde", 1000)
    assert trace.run.tokens_in + trace.run.tokens_out == 5000


async def test_parallel_calls_cannot_overspend_together(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=50, completion_tokens=10))
    probe = await engine.run(plan(FIVE_AT_ONCE.replace("BUDGET", "{tokens: 100000}")), "five", {})
    reservation = trace_of(engine, probe.run_id).attempts[0].reserved_tokens
    assert reservation is not None
    fake_llm.reset()
    fake_llm.add_rule(lambda body: True, Fault("hang"))  # no call ends (until cancelled): all of them overlap

    budget = 2 * reservation + reservation // 2  # room for two calls in flight, not three
    with anyio.fail_after(60):  # a hang guard
        result = await engine.run(plan(FIVE_AT_ONCE.replace("BUDGET", f"{{tokens: {budget}}}")), "five", {})

    assert isinstance(result.error, BudgetExceeded) and result.error.dimension == "tokens"
    assert "other calls in flight hold part of it" in result.error.message
    # the refused call fails the flow, which cancels the two in flight (whether or not their requests went out)
    assert len(fake_llm.requests) <= 2
    trace = trace_of(engine, result.run_id)
    assert len(trace.attempts) == 2  # the two calls that fit; the others never started
    charged = sum(a.tokens_in + a.tokens_out for a in trace.attempts)
    assert charged <= budget
    assert trace.run.tokens_in + trace.run.tokens_out == charged


PAUSED_BETWEEN = budget_plan(
    """\
  paused:
    input: {}
    budget: BUDGET
    steps:
      - {id: first, function: talk, inputs: {topic: one}}
      - {id: ask, function: check, inputs: {text: $.steps.first.output.text}}
      - {id: second, function: talk, inputs: {topic: $.steps.first.output.text}, depends_on: [ask]}
""",
    contracts="  Ok: {ok: {type: boolean}}\n",
    functions="""\
  check:
    mode: human
    question: Go on?
    input: {text: {type: string}}
    output: Ok
""",
)


class NoOne:
    """A review sink no one answers: the run pauses."""

    async def ask(self, request: ReviewRequest) -> None:
        return None


def accept(engine: Engine, review: ReviewRequest) -> None:
    engine.store.answer_review(review.review_id, action="accept", value={"ok": True}, reviewer="ann", rationale=None)


async def pause_then_resume(engine: Engine, budget: str) -> tuple[Any, Any]:
    paused = await engine.run(plan(PAUSED_BETWEEN.replace("BUDGET", budget)), "paused", {}, review_sink=NoOne())
    assert paused.status == "paused", paused.error
    assert paused.review is not None
    accept(engine, paused.review)
    return paused, await engine.resume(paused.run_id)


async def test_what_was_spent_before_a_pause_still_counts_after_it(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=300, completion_tokens=50))
    _, resumed = await pause_then_resume(engine, "{tokens: 400}")

    assert isinstance(resumed.error, BudgetExceeded), resumed
    assert resumed.error.step_id == "second" and resumed.error.dimension == "tokens"
    assert "50 are left" in resumed.error.message
    assert len(fake_llm.requests) == 1


async def test_a_run_resumed_with_a_raised_budget_finishes_without_re_running_finished_steps(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=300, completion_tokens=50))
    _, stopped = await pause_then_resume(engine, "{tokens: 400}")
    assert stopped.status == "failed"

    finished = await engine.resume(stopped.run_id, budget=Budget(tokens=5000))

    assert finished.status == "succeeded", finished.error
    assert len(fake_llm.requests) == 2  # `first` ran once, before the pause; only `second` ran now
    trace = trace_of(engine, finished.run_id)
    assert [(a.step_id, a.number) for a in trace.attempts] == [("first", 1), ("second", 1)]
    assert trace.run.tokens_in + trace.run.tokens_out == 700
    assert trace.run.attributes["budget"]["override"] == {"tokens": 5000}  # type: ignore[index]


async def test_a_finished_run_cannot_be_resumed_even_with_a_budget(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"text": "ok"}, prompt_tokens=5, completion_tokens=5))
    done = await engine.run(one_call("{tokens: 5000}"), "once", {"topic": "tea"})
    assert done.status == "succeeded"
    with pytest.raises(Exception, match="only paused or interrupted runs can be resumed"):
        await engine.resume(done.run_id, budget=Budget(tokens=9000))


UNPRICED = budget_plan(
    """\
  once:
    input: {topic: {type: string}}
    budget: BUDGET
    steps:
      - {id: say, function: talk, inputs: {topic: $.input.topic}}
""",
    talk="    model: openai/in-house-model\n",
    top="PRICES\n",
)


def unpriced(budget: str, prices: str = "") -> Any:
    return plan(UNPRICED.replace("BUDGET", budget).replace("PRICES", prices))


async def test_an_unpriced_model_under_a_cost_budget_is_refused_before_any_request(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    result = await engine.run(unpriced("{usd: 0.05}"), "once", {"topic": "tea"})

    assert fake_llm.requests == []
    assert isinstance(result.error, BudgetExceeded) and result.error.dimension == "usd"
    assert "model 'openai/in-house-model' has no known price" in result.error.message
    assert "`prices:` in the plan" in result.error.message and "`unpriced: allow`" in result.error.message


async def test_an_unpriced_model_without_a_cost_budget_needs_no_price(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"text": "ok"}, prompt_tokens=5, completion_tokens=5))
    result = await engine.run(unpriced("{tokens: 5000}"), "once", {"topic": "tea"})
    assert result.status == "succeeded", result.error
    assert trace_of(engine, result.run_id).run.cost_unknown


async def test_a_price_given_in_the_plan_is_used(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"text": "ok"}, prompt_tokens=1000, completion_tokens=500))
    prices = 'prices:\n  "openai/in-house-model": {input: 3, output: 15}'
    result = await engine.run(unpriced("{usd: 0.05}", prices), "once", {"topic": "tea"})

    assert result.status == "succeeded", result.error
    (attempt,) = trace_of(engine, result.run_id).attempts
    assert attempt.cost_usd == pytest.approx(1000 * 3e-6 + 500 * 15e-6)
    assert trace_of(engine, result.run_id).run.cost_usd == pytest.approx(0.0105)
    assert not trace_of(engine, result.run_id).run.cost_unknown


async def test_a_price_given_to_the_engine_is_used(store: SQLiteRunStore, fake_llm: FakeLLM) -> None:
    engine = Engine(
        store=store,
        llm=LiteLLMClient(),
        config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url, prices={"openai/in-house-model": (0.5, 1.5)}),
    )
    fake_llm.enqueue(Reply(json={"text": "ok"}, prompt_tokens=2000, completion_tokens=1000))
    result = await engine.run(unpriced("{usd: 0.05}"), "once", {"topic": "tea"})
    assert result.status == "succeeded", result.error
    assert trace_of(engine, result.run_id).run.cost_usd == pytest.approx(2000 * 0.5e-6 + 1000 * 1.5e-6)


async def test_allowed_unpriced_calls_run_and_say_their_cost_is_unknown(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"text": "ok"}, prompt_tokens=5, completion_tokens=5))
    result = await engine.run(unpriced("{usd: 0.05, unpriced: allow}"), "once", {"topic": "tea"})

    assert result.status == "succeeded", result.error
    trace = trace_of(engine, result.run_id)
    assert trace.run.cost_unknown and trace.attempts[0].cost_usd is None
    assert trace.steps[0].attributes["cost_unknown"] is True


async def test_an_audit_budget_records_the_overrun_and_lets_the_run_finish(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"text": "ok"}, prompt_tokens=300, completion_tokens=50))
    result = await engine.run(one_call("{tokens: 55, mode: audit}"), "once", {"topic": "tea"})

    assert result.status == "succeeded", result.error
    assert len(fake_llm.requests) == 1
    overruns = trace_of(engine, result.run_id).run.attributes["budget"]["overruns"]  # type: ignore[index]
    assert overruns == [{"budget": "flow 'once'", "dimension": "tokens", "limit": 55, "used": 350}]


async def test_a_provider_reporting_negative_usage_fails_the_attempt_not_the_engine(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply(json={"text": "ok"}, prompt_tokens=-1_000_000, completion_tokens=5))
    result = await engine.run(one_call("{tokens: 5000}"), "once", {"topic": "tea"})

    assert result.status == "failed"
    assert isinstance(result.error, LLMError) and result.error.step_id == "say"
    assert "reported impossible usage (prompt_tokens is -1000000)" in result.error.message
    run = trace_of(engine, result.run_id)
    (attempt,) = run.attempts
    assert attempt.tokens_in + attempt.tokens_out == attempt.reserved_tokens  # charged what it had reserved
    assert run.run.status == "failed"


async def test_a_retry_after_longer_than_the_longest_wait_fails_the_call_at_once(
    store: SQLiteRunStore, fake_llm: FakeLLM
) -> None:
    engine = Engine(
        store=store,
        llm=LiteLLMClient(max_wait=30),
        config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url),
    )
    fake_llm.enqueue(Fault("rate_limit", retry_after=100_000))
    with anyio.fail_after(20):  # a hang guard: the call must not park for 28 hours
        result = await engine.run(one_call("{tokens: 5000}"), "once", {"topic": "tea"})

    assert isinstance(result.error, LLMError)
    assert "asked to wait 100000s before retrying, longer than the 30s this client waits" in result.error.message
    assert len(fake_llm.requests) == 1


async def test_a_call_without_a_time_budget_is_capped(store: SQLiteRunStore, fake_llm: FakeLLM) -> None:
    engine = Engine(
        store=store,
        llm=LiteLLMClient(call_timeout=0.5, max_transport_retries=0),
        config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url),
    )
    fake_llm.enqueue(Fault("hang"))
    with anyio.fail_after(20):
        result = await engine.run(one_call("{tokens: 5000}"), "once", {"topic": "tea"})

    assert isinstance(result.error, LLMError)
    assert "did not answer within 0.5s" in result.error.message
    assert fake_llm.wait_for_idle(timeout=10)


def test_budget_settings_are_read_from_the_environment() -> None:
    config = EngineConfig.from_env(
        {
            "STRATUM_PRICES": "openai/a=0.5,1.5; ollama/b=0,0",
            "STRATUM_ALLOW_UNPRICED": "1",
            "STRATUM_CALL_TIMEOUT": "90",
            "STRATUM_MAX_RETRY_WAIT": "5",
        }
    )
    assert dict(config.prices) == {"openai/a": (0.5, 1.5), "ollama/b": (0.0, 0.0)}
    assert (config.allow_unpriced, config.call_timeout, config.max_retry_wait) == (True, 90.0, 5.0)
    with pytest.raises(ValueError, match="expected MODEL=IN,OUT"):
        EngineConfig.from_env({"STRATUM_PRICES": "openai/a=cheap"})


AGENT_BETWEEN = budget_plan(
    """\
  handed:
    input: {}
    budget: {tokens: 400}
    steps:
      - {id: first, function: talk, inputs: {topic: one}}
      - {id: agent, function: think, inputs: {text: $.steps.first.output.text}}
      - {id: second, function: talk, inputs: {topic: $.steps.agent.output.text}}
""",
    functions="""\
  think:
    mode: infer
    executor: agent
    intent: Think about the text.
    input: {text: {type: string}}
    output: Out
""",
)


async def test_what_was_spent_before_an_agent_step_still_counts_after_its_report(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=300, completion_tokens=50))
    paused = await engine.run(plan(AGENT_BETWEEN), "handed", {}, agent=True)
    assert paused.status == "paused" and [task.step_id for task in paused.agent_tasks] == ["agent"]

    reported = await engine.submit_agent_output(paused.run_id, "agent", {"text": "thought"})

    assert reported.result is not None
    assert isinstance(reported.result.error, BudgetExceeded), reported.result
    assert reported.result.error.step_id == "second" and "50 are left" in reported.result.error.message
    assert len(fake_llm.requests) == 1


async def test_a_run_recovered_after_a_crash_counts_what_it_had_spent(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=300, completion_tokens=50))
    paused = await engine.run(
        plan(PAUSED_BETWEEN.replace("BUDGET", "{tokens: 400}")), "paused", {}, review_sink=NoOne()
    )
    assert paused.review is not None
    engine.store.answer_review(
        paused.review.review_id, action="accept", value={"ok": True}, reviewer="a", rationale=None
    )
    engine.store.update_run(paused.run_id, status="running")  # as if the process that ran it had died

    recovered = await engine.resume(paused.run_id)

    assert isinstance(recovered.error, BudgetExceeded) and recovered.error.step_id == "second"
    assert len(fake_llm.requests) == 1


async def test_the_time_a_run_used_before_a_pause_counts_after_it(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=10, completion_tokens=5))
    flow = plan(PAUSED_BETWEEN.replace("BUDGET", "{ms: 60000}"))
    paused = await engine.run(flow, "paused", {}, review_sink=NoOne())
    assert paused.review is not None
    run = engine.store.get_run(paused.run_id)
    assert run is not None
    budget = run.attributes["budget"]
    assert isinstance(budget, dict) and budget["active_since"] is None
    assert isinstance(budget["ms_used"], float) and budget["ms_used"] > 0
    # the checkpoint says the run already used 61 s of its 60 s: the resumed run has no time left
    engine.store.update_run(paused.run_id, attributes={**run.attributes, "budget": {**budget, "ms_used": 61_000.0}})
    engine.store.answer_review(
        paused.review.review_id, action="accept", value={"ok": True}, reviewer="a", rationale=None
    )

    resumed = await engine.resume(paused.run_id)

    assert isinstance(resumed.error, BudgetExceeded) and resumed.error.dimension == "ms"
    assert len(fake_llm.requests) == 1
