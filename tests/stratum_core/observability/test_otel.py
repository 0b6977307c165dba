"""OpenTelemetry export: runs go through the engine to a real OTLP/HTTP receiver on loopback, decoded with
opentelemetry-proto, and the span tree, names, attributes and events are checked."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from observability_helpers import OTLPReceiver, ReceivedSpan, hand_made_trace, make_engine, save

from stratum_core.engine import EngineConfig, ReviewAnswer, ReviewRequest
from stratum_core.engine._prompt import output_schema
from stratum_core.errors import ConfigurationError
from stratum_core.observability import OTelExporter, add_otel_option, otel_observers, trace_id_for
from stratum_core.observability._otel import provider_of
from stratum_core.plan import InferFunction, load_plan_text
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Reply

PLAN = """
version: "1"
contracts:
  Review:
    verdict: {type: string}
    confidence: {type: number, minimum: 0, maximum: 1}
  Approval:
    approved: {type: boolean}
functions:
  review:
    mode: infer
    intent: Review the code.
    input: {code: {type: string}, focus: {type: string}}
    output: Review
    ensure: ["result.confidence > 0.7"]
    retries: 1
  approve:
    mode: human
    question: Ship it?
    input: {code: {type: string}}
    output: Approval
flows:
  ship:
    input: {code: {type: string}}
    steps:
      - id: reviews
        parallel:
          require: all
          steps:
            - {id: security, function: review, inputs: {code: $.input.code, focus: security}}
            - {id: style, function: review, inputs: {code: $.input.code, focus: style}}
      - {id: approval, function: approve, depends_on: [reviews], inputs: {code: $.input.code}}
"""

SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
STATUS_ERROR = 2


def answer(confidence: float) -> Reply:
    return Reply(json={"verdict": "ok", "confidence": confidence}, prompt_tokens=100, completion_tokens=20)


def script(fake: FakeLLM, *, style_confidence: float = 0.95) -> None:
    """Both reviews take a while (so they overlap); security's first answer breaks `ensure` and is retried."""
    fake.latency = 0.2
    fake.add_rule("security", answer(0.3), times=1)
    fake.add_rule("security", answer(0.9))
    fake.add_rule("style", answer(style_confidence))


class Approve:
    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        return ReviewAnswer(action="accept", value={"approved": True}, reviewer="ann")


@pytest.fixture
def exporter(store: SQLiteRunStore, receiver: OTLPReceiver) -> Iterator[OTelExporter]:
    exporter = OTelExporter(store, endpoint=receiver.url, timeout=5)
    yield exporter
    exporter.shutdown()


def by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    found: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def one(spans: dict[str, list[ReceivedSpan]], name: str) -> ReceivedSpan:
    (span,) = spans[name]
    return span


async def test_a_paused_run_is_exported_once_it_ends_as_one_span_tree(
    store: SQLiteRunStore,
    llm_config: EngineConfig,
    fake_llm: FakeLLM,
    receiver: OTLPReceiver,
    exporter: OTelExporter,
) -> None:
    script(fake_llm)
    plan = load_plan_text(PLAN, source="ship.stratum.yaml")
    paused = await make_engine(store, llm_config, exporter).run(plan, "ship", {"code": "x = 1"})
    assert paused.status == "paused", paused.error
    assert exporter.force_flush()
    assert receiver.trace(paused.run_id) == []  # nothing at the pause: the trace is sent whole, once, at the end

    assert paused.review is not None
    store.answer_review(
        paused.review.review_id, action="accept", value={"approved": True}, reviewer="ann", rationale="fine"
    )
    resumed = await make_engine(store, llm_config, exporter).resume(paused.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert exporter.force_flush()

    spans = receiver.trace(paused.run_id)
    named = by_name(spans)
    model = fake_llm.model
    assert sorted(named) == sorted(
        [
            "invoke_workflow ship",
            "step reviews",
            "step reviews.security",
            "step reviews.style",
            "step approval",
            "await_human approval",
            f"chat {model}",
        ]
    )
    root = one(named, "invoke_workflow ship")
    group, security, style = (one(named, f"step {s}") for s in ("reviews", "reviews.security", "reviews.style"))
    approval, wait = one(named, "step approval"), one(named, "await_human approval")
    chats = sorted(named[f"chat {model}"], key=lambda s: s.start)
    assert len(chats) == 3

    # the tree: run > group > branches > attempts; run > human step > wait
    assert root.parent_id == "" and root.trace_id == paused.run_id  # the trace id is the run id
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert group.parent_id == root.span_id and approval.parent_id == root.span_id
    assert security.parent_id == style.parent_id == group.span_id
    assert wait.parent_id == approval.span_id
    security_chats = [c for c in chats if c.parent_id == security.span_id]
    style_chats = [c for c in chats if c.parent_id == style.span_id]
    assert len(security_chats) == 2 and len(style_chats) == 1
    for child, parent in [
        (group, root),
        (security, group),
        (style, group),
        (approval, root),
        (wait, approval),
        *((c, security) for c in security_chats),
        (style_chats[0], style),
    ]:
        assert parent.start <= child.start <= child.end <= parent.end, child.name

    # parallel branches are concurrent siblings
    assert security.start < style.end and style.start < security.end

    # GenAI semantic conventions and stratum.* attributes on each attempt
    review_fn = plan.functions["review"]
    assert isinstance(review_fn, InferFunction)
    contract_hash = output_schema(review_fn, plan.contracts).contract_hash
    first, second = security_chats
    for chat in chats:
        assert chat.kind == SPAN_KIND_CLIENT
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.system"] == "openai"
        assert chat.attributes["gen_ai.provider.name"] == "openai"
        assert chat.attributes["gen_ai.request.model"] == model
        assert chat.attributes["gen_ai.usage.input_tokens"] == 100
        assert chat.attributes["gen_ai.usage.output_tokens"] == 20
        assert chat.attributes["stratum.contract_hash"] == contract_hash
        assert len(chat.attributes["stratum.compiled_prompt_hash"]) >= 12
        assert chat.attributes["stratum.cost_usd"] == pytest.approx(100 * 1e-6 + 20 * 2e-6)
        assert chat.attributes["stratum.run_id"] == paused.run_id
        assert chat.attributes["stratum.flow"] == "ship"
    assert [first.attributes["stratum.attempt"], second.attributes["stratum.attempt"]] == [1, 2]
    assert first.attributes["stratum.compiled_prompt_hash"] != second.attributes["stratum.compiled_prompt_hash"]

    # the violation is an event on the rejected attempt, the retry an event on the step
    (violation,) = first.events
    assert violation[0] == "stratum.violation"
    assert "result.confidence > 0.7" in violation[2]["stratum.violation"] and "0.3" in violation[2]["stratum.violation"]
    assert first.attributes["stratum.violations"] == [violation[2]["stratum.violation"]]
    assert second.events == [] and "stratum.violations" not in second.attributes
    (retry,) = security.events
    assert retry[0] == "stratum.retry" and retry[2]["stratum.attempt"] == 2
    assert retry[1] == second.start
    assert style.events == []

    # steps and the run carry their totals; the human step its review
    assert security.attributes["stratum.attempts"] == 2 and style.attributes["stratum.attempts"] == 1
    assert security.attributes["stratum.tokens_in"] == 200
    assert security.attributes["stratum.step.kind"] == "infer"
    assert group.attributes["stratum.step.kind"] == "parallel"
    assert approval.attributes["stratum.review_id"] == paused.review.review_id
    assert approval.attributes["stratum.decision"] == "accept"
    assert wait.attributes["stratum.review_id"] == paused.review.review_id
    assert wait.attributes["stratum.reviewer"] == "ann"
    assert approval.start <= wait.start  # the wait began in the first process, before the resume
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["stratum.status"] == "succeeded"
    assert root.attributes["stratum.tokens_in"] == 300 and root.attributes["stratum.tokens_out"] == 60
    assert root.attributes["stratum.cost_usd"] == pytest.approx(3 * (100 * 1e-6 + 20 * 2e-6))
    assert root.resource["service.name"] == "stratum"
    assert all(s.kind == SPAN_KIND_INTERNAL for s in spans if not s.name.startswith("chat "))


async def test_a_failed_run_marks_the_root_and_the_step_as_errors(
    store: SQLiteRunStore,
    llm_config: EngineConfig,
    fake_llm: FakeLLM,
    receiver: OTLPReceiver,
    exporter: OTelExporter,
) -> None:
    script(fake_llm, style_confidence=0.1)  # style never gets confident: its retries run out
    result = await make_engine(store, llm_config, exporter, review_sink=Approve()).run(
        load_plan_text(PLAN), "ship", {"code": "x"}
    )
    assert result.status == "failed"
    assert exporter.force_flush()
    named = by_name(receiver.trace(result.run_id))
    root, style = one(named, "invoke_workflow ship"), one(named, "step reviews.style")
    assert root.status_code == STATUS_ERROR
    assert root.attributes["error.type"] == "ParallelValidationFailed"
    assert root.attributes["stratum.error.step_id"] == "reviews"
    assert style.status_code == STATUS_ERROR and style.attributes["error.type"] == "PostconditionFailed"
    assert "result.confidence > 0.7" in style.status_message
    assert [e[0] for e in style.events] == ["stratum.retry"]
    assert "step approval" not in named


@pytest.mark.parametrize("collector", ["refused", "error 500"])
async def test_a_failing_collector_never_breaks_a_run_and_is_logged_once(
    collector: str,
    store: SQLiteRunStore,
    llm_config: EngineConfig,
    fake_llm: FakeLLM,
    receiver: OTLPReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if collector == "refused":
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    else:
        receiver.fail = True
        endpoint = receiver.url
    exporter = OTelExporter(store, endpoint=endpoint, timeout=0.5)
    try:
        script(fake_llm)
        engine = make_engine(store, llm_config, exporter, review_sink=Approve())
        with caplog.at_level(logging.DEBUG):
            for _ in range(2):
                result = await engine.run(load_plan_text(PLAN), "ship", {"code": "x"})
                assert result.status == "succeeded", result.error
                exporter.force_flush()
    finally:
        exporter.shutdown()
    assert exporter.failures == 2 and exporter.exported == 0
    if collector == "error 500":
        assert receiver.requests == 2 and receiver.spans == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["stratum.observability"]
    assert endpoint in warnings[0].getMessage()


def test_importing_stratum_core_does_not_load_the_opentelemetry_sdk() -> None:
    code = (
        "import sys, stratum_core, stratum_core.observability, stratum_core.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_trace_ids_come_from_run_ids() -> None:
    run_id = "0af7651916cd43dd8448eb211c80319c"
    assert trace_id_for(run_id) == int(run_id, 16)
    assert trace_id_for("my-run") == trace_id_for("my-run") != trace_id_for("my-run-2")
    assert 0 < trace_id_for("my-run") < 2**128


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("openai/gpt-4.1-mini", "openai"),
        ("anthropic/claude-sonnet-4", "anthropic"),
        ("bedrock/anthropic.claude-3", "aws.bedrock"),
        ("gemini/gemini-2.5-pro", "gcp.gemini"),
        ("ollama/llama3", "ollama"),
        ("gpt-4o", "openai"),
        ("claude-3-5-haiku", "anthropic"),
        ("my-local-model", "_OTHER"),
    ],
)
def test_the_genai_provider_comes_from_the_model_prefix(model: str, provider: str) -> None:
    assert provider_of(model) == provider


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_otel_option(parser)
    return parser.parse_args(list(argv))


def test_otlp_endpoint_option_and_variables_choose_whether_runs_are_exported(store: SQLiteRunStore) -> None:
    assert otel_observers(_args(), store, env={}) == []
    created: list[Any] = []
    try:
        (flagged,) = otel_observers(_args("--otlp-endpoint", "http://127.0.0.1:4318/"), store, env={})
        created.append(flagged)
        assert flagged.endpoint == "http://127.0.0.1:4318/v1/traces"
        (from_env,) = otel_observers(_args(), store, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
        created.append(from_env)
        assert isinstance(from_env, OTelExporter)
    finally:
        for exporter in created:
            exporter.shutdown()
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}
    assert otel_observers(_args(), store, env=disabled) == []


def test_without_the_otel_extra_an_explicit_endpoint_says_how_to_install_it(
    store: SQLiteRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "stratum_core.observability._otel_sdk", None)  # as if the SDK were missing
    with pytest.raises(ConfigurationError, match=r"pip install 'stratum\[otel\]'"):
        otel_observers(_args("--otlp-endpoint", "http://127.0.0.1:4318"), store, env={})
    assert otel_observers(_args(), store, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}) == []


EXIT_SCRIPT = """
import sys, time, anyio
from stratum_core.observability import OTelExporter
from stratum_core.store import SQLiteRunStore

store = SQLiteRunStore(sys.argv[1])
exporter = OTelExporter(store, endpoint=sys.argv[2], timeout=5)
build = exporter.export_trace
def slow_build(trace):  # the export thread is still busy when the process ends
    time.sleep(0.5)
    build(trace)
exporter.export_trace = slow_build
anyio.run(exporter.run_finished, sys.argv[3], "failed")
# no shutdown, no flush: the process just ends, as `stratum run` does
"""


def test_a_short_lived_process_sends_its_runs_when_it_exits(
    store: SQLiteRunStore, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    trace = hand_made_trace()
    save(store, trace)
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT, encoding="utf-8")
    subprocess.run(
        [sys.executable, str(script), str(store.path), receiver.url, trace.run.run_id], check=True, timeout=60
    )
    named = by_name(receiver.trace(trace.run.run_id))
    assert sum(len(spans) for spans in named.values()) == 1 + len(trace.steps) + len(trace.attempts) + 1
    root = one(named, "invoke_workflow nested")
    assert int(root.trace_id, 16) == trace_id_for("run-hand")
    # nested by path: for_each items under their step, a sub-flow's steps under it
    assert one(named, "step loop[0]").parent_id == one(named, "step loop").span_id
    assert one(named, "step sub.inner").parent_id == one(named, "step sub").span_id
    assert one(named, "await_human ask").attributes["stratum.review.status"] == "pending"
    assert one(named, "step broken").status_code == STATUS_ERROR
