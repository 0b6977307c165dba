"""The scheduler, end to end through LiteLLM to the test LLM over HTTP, with a real SQLite store."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from engine_helpers import plan

from stratum_core.engine import Engine, ReviewAnswer, ReviewRequest, RunObserver
from stratum_core.errors import (
    BudgetExceeded,
    ComputeError,
    ParallelValidationFailed,
    PostconditionFailed,
)
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Fault, Reply
from tests.fixtures.timing import baseline, beyond_ms

HANG_GUARD_S = 60  # only a hung test ends here
BARRIER_S = 30  # how long a held answer waits for the others to arrive


SENTIMENT = """
version: "1"
contracts:
  Sentiment:
    label: {type: string, enum: [positive, negative, neutral]}
    confidence: {type: number, minimum: 0, maximum: 1}
functions:
  classify:
    mode: infer
    intent: Classify the tone of the text.
    input: {text: {type: string}}
    output: Sentiment
    ensure: ["result.confidence > 0.7"]
    retries: 2
  shout:
    mode: compute
    input: {label: {type: string}}
    output: {type: string}
    expr: "label.upper() + '!'"
flows:
  triage:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - id: sentiment
        function: classify
        inputs: {text: $.input.text}
      - id: loud
        function: shout
        inputs: {label: $.steps.sentiment.output.label}
"""


async def test_a_flow_runs_infer_then_compute_and_records_every_step(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue({"label": "negative", "confidence": 0.42}, {"label": "negative", "confidence": 0.93})
    result = await engine.run(plan(SENTIMENT), "triage", {"text": "It broke again."})
    assert result.status == "succeeded", result.error
    assert result.output == "NEGATIVE!"
    # the retry carried the violation with the actual value
    second = json.dumps(fake_llm.requests[1]["messages"])
    assert "result.confidence > 0.7" in second and "0.42" in second
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    assert [s.step_id for s in trace.steps] == ["sentiment", "loud"]
    assert [s.status for s in trace.steps] == ["succeeded", "succeeded"]
    attempts = [a for a in trace.attempts if a.step_id == "sentiment"]
    assert [len(a.violations) for a in attempts] == [1, 0]
    assert attempts[0].prompt_hash and attempts[0].contract_hash
    assert trace.run.tokens_in > 0 and trace.run.cost_usd > 0
    assert trace.run.cost_usd == pytest.approx(sum(a.cost_usd or 0 for a in trace.attempts))


async def test_exhausted_retries_fail_the_run_and_name_the_step(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("Classify", {"label": "neutral", "confidence": 0.1})
    result = await engine.run(plan(SENTIMENT), "triage", {"text": "meh"})
    assert result.status == "failed"
    assert isinstance(result.error, PostconditionFailed)
    assert result.error.step_id == "sentiment"
    assert len(result.error.history) == 3
    run = engine.store.get_run(result.run_id)
    assert run is not None and run.status == "failed"
    assert run.error is not None and run.error["type"] == "PostconditionFailed"
    steps = {s.step_id: s.status for s in engine.store.get_steps(result.run_id)}
    assert steps == {"sentiment": "failed"}


PARALLEL = """
version: "1"
contracts:
  Review:
    verdict: {type: string}
functions:
  review:
    mode: infer
    intent: Review the code.
    input: {code: {type: string}, focus: {type: string}}
    output: Review
    retries: 0
flows:
  reviews:
    input: {code: {type: string}}
    steps:
      - id: group
        parallel:
          require: REQUIRE
          steps:
            - {id: a, function: review, inputs: {code: $.input.code, focus: security}}
            - {id: b, function: review, inputs: {code: $.input.code, focus: style}}
            - {id: c, function: review, inputs: {code: $.input.code, focus: speed}}
"""


def _answer_by_focus(failing: set[str]) -> Any:
    def answer(body: dict[str, Any]) -> Any:
        text = json.dumps(body["messages"])
        for focus in ("security", "style", "speed"):
            if focus in text:
                return Fault(kind="bad_request") if focus in failing else {"verdict": focus}
        return {"verdict": "?"}

    return answer


def _once_all_arrived(fake_llm: FakeLLM, count: int, answer: Any) -> Any:
    """Answer each request only once `count` requests have arrived (after a while, anyway: a test then fails)."""

    def held(body: dict[str, Any]) -> Any:
        fake_llm.wait_for_requests(count, timeout=BARRIER_S)
        return answer(body)

    return held


async def test_parallel_branches_overlap_in_time(engine: Engine, fake_llm: FakeLLM) -> None:
    # No branch is answered before all three have asked: only branches that run at once can all finish.
    fake_llm.add_rule(lambda body: True, _once_all_arrived(fake_llm, 3, _answer_by_focus(set())))
    with anyio.fail_after(HANG_GUARD_S):
        result = await engine.run(plan(PARALLEL.replace("REQUIRE", "all")), "reviews", {"code": "x = 1"})
    assert result.status == "succeeded", result.error
    assert result.output == [{"verdict": "security"}, {"verdict": "style"}, {"verdict": "speed"}]
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    branches = [s for s in trace.steps if s.step_id.startswith("group.")]
    # every branch started before any finished: they ran concurrently
    assert max(s.started_at or 0 for s in branches) < min(s.finished_at or 0 for s in branches)


async def test_parallel_require_n_tolerates_failures_and_require_all_does_not(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, _answer_by_focus({"style"}))
    two = await engine.run(plan(PARALLEL.replace("REQUIRE", "2")), "reviews", {"code": "x"})
    assert two.status == "succeeded", two.error
    assert two.output == [{"verdict": "security"}, {"verdict": "speed"}]
    everyone = await engine.run(plan(PARALLEL.replace("REQUIRE", "all")), "reviews", {"code": "x"})
    assert isinstance(everyone.error, ParallelValidationFailed)
    assert "group.b" in str(everyone.error)
    collected = await engine.run(plan(PARALLEL.replace("REQUIRE", "0")), "reviews", {"code": "x"})
    assert collected.status == "succeeded"
    assert [item["ok"] for item in collected.output] == [True, False, True]


async def test_require_any_takes_the_first_success_and_cancels_the_rest(engine: Engine, fake_llm: FakeLLM) -> None:
    def answer(body: dict[str, Any]) -> Any:
        if "security" in json.dumps(body["messages"]):
            return Reply(json={"verdict": "fast"})
        return Fault(kind="hang")  # answers only when cancelled, so waiting for it would hang the test

    # The fast branch answers once all three have asked, so the other two are surely in flight to be cancelled.
    fake_llm.add_rule(lambda body: True, _once_all_arrived(fake_llm, 3, answer))
    with anyio.fail_after(HANG_GUARD_S):
        result = await engine.run(plan(PARALLEL.replace("REQUIRE", "any")), "reviews", {"code": "x"})
    assert result.output == {"verdict": "fast"}
    statuses = {s.step_id: s.status for s in engine.store.get_steps(result.run_id)}
    assert statuses["group.a"] == "succeeded"
    assert statuses["group.b"] == statuses["group.c"] == "cancelled"


CONDITIONAL = """
version: "1"
functions:
  is_long:
    mode: compute
    input: {text: {type: string}}
    output: {type: boolean}
    expr: "len(text) > 10"
  echo:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "text"
flows:
  maybe:
    input: {text: {type: string}}
    steps:
      - {id: check, function: is_long, inputs: {text: $.input.text}}
      - {id: short_path, function: echo, when: "not steps.check.output", inputs: {text: $.input.text}}
      - {id: long_path, function: echo, when: "steps.check.output", inputs: {text: "long"}}
      - {id: after, function: echo, inputs: {text: $.steps.short_path.output}}
    result: $.steps.check.output
"""


async def test_when_skips_a_step_and_whatever_reads_it(engine: Engine) -> None:
    result = await engine.run(plan(CONDITIONAL), "maybe", {"text": "a very long text indeed"})
    assert result.status == "succeeded", result.error
    assert result.output is True
    statuses = {s.step_id: s.status for s in engine.store.get_steps(result.run_id)}
    assert statuses == {"check": "succeeded", "short_path": "skipped", "long_path": "succeeded", "after": "skipped"}
    after = next(s for s in engine.store.get_steps(result.run_id) if s.step_id == "after")
    assert after.attributes == {"reads_skipped": "short_path"}


BUDGET = """
version: "1"
contracts:
  Out:
    text: {type: string}
functions:
  slow:
    mode: infer
    intent: Say something.
    input: {}
    output: Out
    retries: 0
flows:
  timed:
    input: {}
    budget: {ms: 300}
    steps:
      - {id: talk, function: slow, inputs: {}}
  tokens:
    input: {}
    budget: {tokens: 5}
    steps:
      - {id: talk, function: slow, inputs: {}}
"""


async def test_a_hanging_model_ends_in_budget_exceeded_not_a_hang(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"text": "at once"}))
    answered = await baseline(lambda: engine.run(plan(BUDGET.replace("300", "600000")), "timed", {}))
    fake_llm.enqueue(Fault(kind="hang"))
    with anyio.fail_after(HANG_GUARD_S):  # the call starts well within the budget, then hangs until it runs out
        result = await engine.run(plan(BUDGET.replace("300", str(beyond_ms(answered)))), "timed", {})
    assert isinstance(result.error, BudgetExceeded)
    assert result.error.dimension == "ms"
    assert result.error.step_id == "talk"


async def test_a_call_that_cannot_fit_the_token_budget_is_never_made(engine: Engine, fake_llm: FakeLLM) -> None:
    result = await engine.run(plan(BUDGET), "tokens", {})
    assert isinstance(result.error, BudgetExceeded)
    assert result.error.dimension == "tokens"
    assert fake_llm.requests == []


HUMAN = """
version: "1"
contracts:
  Approval:
    approved: {type: boolean}
    note: {type: string, required: false}
functions:
  draft:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "'Dear customer, ' + text"
  approve:
    mode: human
    question: Send this reply?
    input: {reply: {type: string}}
    output: Approval
  send:
    mode: compute
    input: {reply: {type: string}, approved: {type: boolean}}
    output: {type: string}
    expr: "reply if approved else 'not sent'"
flows:
  reply:
    input: {text: {type: string}}
    steps:
      - {id: draft, function: draft, inputs: {text: $.input.text}}
      - {id: approval, function: approve, inputs: {reply: $.steps.draft.output}}
      - {id: send, function: send, inputs: {reply: $.steps.draft.output, approved: $.steps.approval.output.approved}}
"""


class Sink:
    def __init__(self, answer: ReviewAnswer | None) -> None:
        self.answer = answer
        self.requests: list[ReviewRequest] = []

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        self.requests.append(request)
        return self.answer


async def test_a_human_step_asks_the_sink_with_a_form(engine: Engine) -> None:
    sink = Sink(ReviewAnswer(action="accept", value={"approved": True}, reviewer="ann"))
    result = await engine.run(plan(HUMAN), "reply", {"text": "thanks"}, review_sink=sink)
    assert result.output == "Dear customer, thanks"
    request = sink.requests[0]
    assert request.question == "Send this reply?"
    assert request.schema["properties"]["approved"] == {"type": "boolean"}
    assert request.context == {"reply": "Dear customer, thanks"}
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None and trace.reviews[0].reviewer == "ann"


async def test_a_paused_run_resumes_without_rerunning_finished_steps(engine: Engine, store: SQLiteRunStore) -> None:
    paused = await engine.run(plan(HUMAN), "reply", {"text": "hi"}, review_sink=Sink(None))
    assert paused.status == "paused"
    assert paused.review is not None
    draft_before = next(s for s in store.get_steps(paused.run_id) if s.step_id == "draft")
    store.answer_review(
        paused.review.review_id, action="accept", value={"approved": False}, reviewer="bob", rationale="tone"
    )
    other = Engine(store=store)  # another engine, as another process would be
    resumed = await other.resume(paused.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.output == "not sent"
    draft_after = next(s for s in store.get_steps(paused.run_id) if s.step_id == "draft")
    assert draft_after.started_at == draft_before.started_at


async def test_a_declined_decision_fails_the_run_with_human_rejected(engine: Engine) -> None:
    result = await engine.run(plan(HUMAN), "reply", {"text": "hi"}, review_sink=Sink(ReviewAnswer(action="decline")))
    assert result.status == "failed"
    assert type(result.error).__name__ == "HumanRejected"
    assert result.error is not None and result.error.step_id == "approval"


async def test_a_compute_call_that_raises_keeps_its_traceback(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "boom_tools.py").write_text(
        "def explode(x):\n    raise RuntimeError('kaboom ' + x)\n", encoding="utf-8"
    )
    source = tmp_path / "boom.stratum.yaml"
    source.write_text(
        """
version: "1"
functions:
  explode:
    mode: compute
    input: {x: {type: string}}
    output: {type: string}
    call: boom_tools:explode
flows:
  go:
    input: {x: {type: string}}
    steps: [{id: bang, function: explode, inputs: {x: $.input.x}}]
""",
        encoding="utf-8",
    )
    from stratum_core.plan import load_plan

    result = await engine.run(load_plan(source), "go", {"x": "now"})
    assert isinstance(result.error, ComputeError)
    assert result.error.step_id == "bang"
    assert "kaboom now" in result.error.message
    step = engine.store.get_steps(result.run_id)[0]
    assert step.error is not None and "RuntimeError: kaboom now" in str(step.error["traceback"])


async def test_cancelling_a_run_records_it_as_cancelled(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Fault(kind="hang"))
    run_ids: list[str] = []

    class Observer(RunObserver):
        async def step_started(self, run_id: str, step_id: str, kind: str) -> None:
            run_ids.append(run_id)
            scope.cancel()

    with anyio.CancelScope() as scope:
        await engine.run(plan(SENTIMENT), "triage", {"text": "x"}, observer=Observer())
    run = engine.store.get_run(run_ids[0])
    assert run is not None and run.status == "cancelled"


async def test_an_interrupted_run_is_put_down_as_paused_and_resumes_where_it_was(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Fault(kind="hang"))
    run_ids: list[str] = []

    class Observer(RunObserver):
        async def step_started(self, run_id: str, step_id: str, kind: str) -> None:
            run_ids.append(run_id)
            engine.interrupt(run_id, "the server stopped")
            scope.cancel()

    with anyio.CancelScope() as scope:
        await engine.run(plan(SENTIMENT), "triage", {"text": "x"}, observer=Observer())
    put_down = engine.store.get_run(run_ids[0])
    fake_llm.enqueue({"label": "positive", "confidence": 0.9})
    resumed = await engine.resume(run_ids[0])
    assert put_down is not None and put_down.status == "paused"
    assert put_down.attributes["interrupted"] == "the server stopped" and put_down.error is None
    assert resumed.status == "succeeded" and resumed.output == "POSITIVE!"


TALLY = (  # the model's step and two others, independent of each other
    SENTIMENT
    + """
  tally:
    input: {text: {type: string}}
    steps:
      - {id: tone, function: classify, inputs: {text: $.input.text}}
      - {id: one, function: shout, inputs: {label: $.input.text}}
      - {id: two, function: shout, inputs: {label: $.input.text}}
"""
)


async def test_a_resumed_runs_progress_counts_the_steps_finished_before_it_was_put_down(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Fault(kind="hang"))
    run_ids: list[str] = []

    class PutDown(RunObserver):  # put down in the model call, once the other two steps are done
        async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
            if done == 2:
                assert await anyio.to_thread.run_sync(lambda: fake_llm.wait_for_requests(1, timeout=BARRIER_S))
                run_ids.append(run_id)
                engine.interrupt(run_id, "the server stopped")
                scope.cancel()

    with anyio.CancelScope() as scope:
        await engine.run(plan(TALLY), "tally", {"text": "x"}, observer=PutDown())
    (run_id,) = run_ids
    replayed = threading.Event()

    def after_the_replays(body: dict[str, Any]) -> Reply:
        replayed.wait(BARRIER_S)
        return Reply(json={"label": "neutral", "confidence": 0.9})

    fake_llm.add_rule(lambda body: True, after_the_replays)
    reported: list[tuple[str, int, int]] = []

    class Progress(RunObserver):
        async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
            reported.append((step_id, done, total))
            if len(reported) == 2:
                replayed.set()

    # one slot, taken by the model call again: the finished steps are read back without waiting for it
    one_slot = Engine(store=engine.store, config=dataclasses.replace(engine.config, max_concurrency=1))
    with anyio.fail_after(HANG_GUARD_S):
        resumed = await one_slot.resume(run_id, observer=Progress())
    assert resumed.status == "succeeded", resumed.error
    assert reported == [("one", 2, 3), ("two", 2, 3), ("tone", 3, 3)]


@pytest.mark.parametrize(
    "fault",
    [Fault(kind="rate_limit", retry_after=0.05), Fault(kind="server_error"), Fault(kind="disconnect")],
    ids=["429 with Retry-After", "500", "dropped connection"],
)
async def test_transport_faults_are_retried_apart_from_contract_retries(
    engine: Engine, fake_llm: FakeLLM, fault: Fault
) -> None:
    fake_llm.enqueue(fault, {"label": "positive", "confidence": 0.9})
    result = await engine.run(plan(SENTIMENT), "triage", {"text": "great"})
    assert result.status == "succeeded", result.error
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    (attempt,) = [a for a in trace.attempts if a.step_id == "sentiment"]  # one contract attempt...
    assert attempt.transport_attempts == 2  # ...that needed two transport tries
    assert len(attempt.transport_errors) == 1


async def test_broken_json_is_fed_back_as_a_parse_violation(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Fault(kind="broken_json"), {"label": "positive", "confidence": 0.9})
    result = await engine.run(plan(SENTIMENT), "triage", {"text": "great"})
    assert result.status == "succeeded", result.error
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    first, second = [a for a in trace.attempts if a.step_id == "sentiment"]
    assert first.violations[0].startswith("parse: the answer is not valid JSON")
    assert second.retry_reason is not None and "parse:" in second.retry_reason
    assert "parse: the answer is not valid JSON" in json.dumps(fake_llm.requests[1]["messages"])


async def test_a_lone_surrogate_in_an_answer_is_a_parse_violation_not_a_crash(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    # found by the local model: JSON allows "\udca7", Unicode (and the store) does not
    fake_llm.enqueue(
        '{"label": "positive", "confidence": 0.9, "x": "a\\udca7b"}', {"label": "positive", "confidence": 0.9}
    )
    result = await engine.run(plan(SENTIMENT), "triage", {"text": "great"})
    assert result.status == "succeeded", result.error
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    first = next(a for a in trace.attempts if a.step_id == "sentiment")
    assert first.violations == [
        "parse: the answer is not valid JSON (a string holds an unpaired \\u surrogate "
        "escape, which is not valid Unicode)"
    ]


ROUTE = """
version: "1"
functions:
  is_urgent: {mode: compute, input: {text: {type: string}}, output: {type: boolean}, expr: "'urgent' in text"}
  page: {mode: compute, input: {text: {type: string}}, output: {type: string}, expr: "'paged: ' + text"}
  file: {mode: compute, input: {text: {type: string}}, output: {type: string}, expr: "'filed: ' + text"}
flows:
  route:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - {id: urgent, function: is_urgent, inputs: {text: $.input.text}}
      - {id: paged, function: page, when: "steps.urgent.output", inputs: {text: $.input.text}}
      - {id: filed, function: file, when: "not steps.urgent.output", inputs: {text: $.input.text}}
    result: [$.steps.paged.output, $.steps.filed.output]
  nothing:
    input: {text: {type: string}}
    steps:
      - {id: paged, function: page, when: "False", inputs: {text: $.input.text}}
"""


@pytest.mark.parametrize(("text", "expected"), [("urgent: down", "paged: urgent: down"), ("hi", "filed: hi")])
async def test_a_list_result_returns_the_first_step_that_ran(engine: Engine, text: str, expected: str) -> None:
    result = await engine.run(plan(ROUTE), "route", {"text": text})
    assert result.output == expected


async def test_a_flow_whose_result_was_skipped_fails_naming_it(engine: Engine) -> None:
    result = await engine.run(plan(ROUTE), "nothing", {"text": "x"})
    assert result.status == "failed"
    assert result.error is not None and "'paged') was skipped" in result.error.message


async def test_a_failure_outside_any_step_still_ends_the_run_failed_and_recorded() -> None:
    from stratum_core.store import MemoryRunStore, StepRecord

    class FlakyStore(MemoryRunStore):
        def upsert_step(self, record: StepRecord) -> None:
            if record.status == "succeeded":
                raise RuntimeError("disk full")
            super().upsert_step(record)

    store = FlakyStore()
    result = await Engine(store=store).run(plan(CONDITIONAL), "maybe", {"text": "short"})
    assert result.status == "failed"
    assert result.error is not None and "internal error" in result.error.message and "disk full" in str(result.error)
    run = store.get_run(result.run_id)
    assert run is not None and run.status == "failed"


TWO_AT_ONCE = """
version: "1"
contracts:
  Out:
    text: {type: string}
functions:
  talk:
    mode: infer
    intent: Say something about the topic.
    input: {topic: {type: string}}
    output: Out
    retries: 0
    max_tokens: 50
flows:
  both:
    input: {}
    budget: {tokens: 600}
    steps:
      - {id: quick, function: talk, inputs: {topic: quick}}
      - {id: slow, function: talk, inputs: {topic: slow}}
"""


async def test_a_provider_that_overruns_its_reservation_cancels_the_calls_in_flight(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    def answer(body: dict[str, Any]) -> Reply | Fault:
        if "quick" in json.dumps(body["messages"]):  # ignores max_tokens: far more than the call reserved
            return Reply(json={"text": "long answer"}, prompt_tokens=100, completion_tokens=900)
        return Fault(kind="hang")  # answers only when cancelled

    fake_llm.add_rule(lambda body: True, _once_all_arrived(fake_llm, 2, answer))  # both calls are in flight
    with anyio.fail_after(HANG_GUARD_S):  # a hang guard: the slow call is cancelled, not waited for
        result = await engine.run(plan(TWO_AT_ONCE), "both", {})
    assert isinstance(result.error, BudgetExceeded)
    assert result.error.dimension == "tokens"
    assert result.error.used == 1000 and result.error.limit == 600
    assert [request["max_tokens"] for request in fake_llm.requests] == [50, 50]
    statuses = {s.step_id: s.status for s in engine.store.get_steps(result.run_id)}
    assert statuses == {"quick": "succeeded", "slow": "cancelled"}
    trace = engine.store.get_trace(result.run_id)
    assert trace is not None
    slow = next(a for a in trace.attempts if a.step_id == "slow")
    assert slow.reserved_tokens is not None and slow.tokens_in + slow.tokens_out == slow.reserved_tokens
    assert trace.run.tokens_in + trace.run.tokens_out == 1000 + slow.reserved_tokens
