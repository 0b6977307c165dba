"""Observability test helpers: a real OTLP/HTTP receiver on loopback, and the engine against the test LLM."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from stratum_core.engine import Engine, EngineConfig
from stratum_core.llm import LiteLLMClient, register_model
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM


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


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteRunStore]:
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        yield store


@pytest.fixture
def llm_config(fake_llm: FakeLLM) -> EngineConfig:
    register_model(fake_llm.model, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    return EngineConfig(model=fake_llm.model, api_base=fake_llm.url)


def make_engine(store: SQLiteRunStore, config: EngineConfig, *observers: Any, **kwargs: Any) -> Engine:
    """An engine on the test LLM (fast transport backoff) with these observers."""
    return Engine(
        store=store,
        llm=LiteLLMClient(backoff_base=0.01, backoff_max=0.05),
        config=config,
        observers=list(observers),
        **kwargs,
    )
