"""Observability test helpers: a real OTLP/HTTP receiver on loopback, and an engine on the test LLM."""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from stratum_core.engine import Engine, EngineConfig
from stratum_core.llm import LiteLLMClient
from stratum_core.store import AttemptRecord, ReviewRecord, RunRecord, RunStore, StepRecord, Trace


def any_value(value: AnyValue) -> Any:
    """A protobuf AnyValue as a Python value."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind is None:
        return None
    return getattr(value, kind)


@dataclass
class ReceivedSpan:
    """One decoded span: ids as hex, times in ns, attributes and events as Python values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start: int
    end: int
    attributes: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]]
    status_code: int
    status_message: str
    resource: dict[str, Any]

    @classmethod
    def of(cls, span: Span, resource: dict[str, Any]) -> ReceivedSpan:
        return cls(
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_id=span.parent_span_id.hex(),
            kind=span.kind,
            start=span.start_time_unix_nano,
            end=span.end_time_unix_nano,
            attributes={kv.key: any_value(kv.value) for kv in span.attributes},
            events=[
                (e.name, e.time_unix_nano, {kv.key: any_value(kv.value) for kv in e.attributes}) for e in span.events
            ],
            status_code=span.status.code,
            status_message=span.status.message,
            resource=resource,
        )


class OTLPReceiver:
    """An OTLP/HTTP collector on a loopback port: POST /v1/traces bodies are decoded and kept (or refused with 500)."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.fail = False
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                with receiver._lock:
                    receiver.requests += 1
                    failing = receiver.fail
                if self.path != "/v1/traces" or failing:
                    self.send_response(HTTPStatus.NOT_FOUND if self.path != "/v1/traces" else 500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                spans = [
                    ReceivedSpan.of(span, {kv.key: any_value(kv.value) for kv in rs.resource.attributes})
                    for rs in request.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                ]
                with receiver._lock:
                    receiver.spans.extend(spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def trace(self, run_id: str) -> list[ReceivedSpan]:
        """The spans of one run (its root's trace id, found by the stratum.run_id attribute)."""
        with self._lock:
            spans = list(self.spans)
        roots = {s.trace_id for s in spans if s.attributes.get("stratum.run_id") == run_id and not s.parent_id}
        return [s for s in spans if s.trace_id in roots]


def make_engine(store: RunStore, config: EngineConfig, *observers: Any, **kwargs: Any) -> Engine:
    """An engine on the test LLM (fast transport backoff) with these observers."""
    return Engine(
        store=store,
        llm=LiteLLMClient(backoff_base=0.01, backoff_max=0.05),
        config=config,
        observers=list(observers),
        **kwargs,
    )


T0 = 1_700_000_000.0


def hand_made_trace(*, flow: str = "nested", error_message: str = "kaboom") -> Trace:
    """A recorded run with a for_each, a sub-flow, a human step still waiting and a failed step (times from T0)."""
    run = RunRecord(
        run_id="run-hand",
        flow=flow,
        plan_hash="h",
        plan_text="",
        input={},
        status="failed",
        created_at=T0,
        updated_at=T0 + 4,
        finished_at=T0 + 4,
        tokens_in=30,
        tokens_out=6,
        cost_usd=0.0003,
        error={"type": "ComputeError", "message": error_message, "step_id": "broken"},
    )

    def step(step_id: str, kind: str, start: float, end: float, **fields: Any) -> StepRecord:
        return StepRecord(
            run_id=run.run_id,
            step_id=step_id,
            kind=kind,
            status=fields.pop("status", "succeeded"),
            started_at=T0 + start,
            finished_at=T0 + end,
            duration_ms=(end - start) * 1000,
            **fields,
        )

    steps = [
        step("loop", "for_each", 0, 2),
        step("loop[0]", "infer", 0.1, 1, attempts=1, tokens_in=10, tokens_out=2, cost_usd=0.0001),
        step("loop[1]", "infer", 0.1, 1.5, attempts=1, tokens_in=20, tokens_out=4, cost_usd=0.0002),
        step("sub", "flow", 2, 3),
        step("sub.inner", "compute", 2.1, 2.9),
        step("ask", "human", 3, 3.1, status="waiting", attributes={"review_id": "rev-1"}),
        step(
            "broken",
            "compute",
            3,
            3.2,
            status="failed",
            error={"type": "ComputeError", "message": error_message, "step_id": "broken"},
        ),
    ]
    attempts = [
        AttemptRecord(
            run_id=run.run_id,
            step_id="loop[0]",
            number=1,
            model="openai/m",
            tokens_in=10,
            tokens_out=2,
            cost_usd=0.0001,
            started_at=T0 + 0.1,
            duration_ms=800,
        ),
        AttemptRecord(
            run_id=run.run_id,
            step_id="loop[1]",
            number=1,
            model="openai/m",
            tokens_in=20,
            tokens_out=4,
            cost_usd=0.0002,
            started_at=T0 + 0.1,
            duration_ms=1300,
        ),
    ]
    reviews = [ReviewRecord(review_id="rev-1", run_id=run.run_id, step_id="ask", question="OK?", created_at=T0 + 3)]
    return Trace(run=run, steps=steps, attempts=attempts, reviews=reviews)


def save(store: RunStore, trace: Trace) -> None:
    """Write a hand-made trace into a store."""
    store.create_run(trace.run)
    for step in trace.steps:
        store.upsert_step(step)
    for attempt in trace.attempts:
        store.add_attempt(attempt)
    for review in trace.reviews:
        store.create_review(review)
