"""The OpenTelemetry SDK side of the exporter; imported only when an OTelExporter is built (the `otel` extra).

Spans go through a BatchSpanProcessor (bounded queue, a background thread) to the official OTLP/HTTP exporter,
wrapped so that a collector that is down or refuses spans is reported once, not once per batch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = ["LogOnceExporter", "RunTraceIds", "build_provider", "resolved_endpoint"]

logger = logging.getLogger("stratum.observability")

# Where the OTLP/HTTP exporter and its HTTP client log (module names vary a little between releases).
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.common._internal",
    "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder",
    "opentelemetry.exporter.http.transport._requests",
    "opentelemetry.exporter.http.transport._urllib3",
)


class RunTraceIds(RandomIdGenerator):
    """Random ids, except that the next trace id can be set: a run's trace id derives from its run id."""

    def __init__(self) -> None:
        super().__init__()
        self.next_trace_id: int | None = None

    def generate_trace_id(self) -> int:
        pending, self.next_trace_id = self.next_trace_id, None
        return pending if pending else super().generate_trace_id()


class _Silence(logging.Filter):
    """Keeps, instead of logging, the exporter's records emitted on a thread that is inside LogOnceExporter.export."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        kept: list[str] | None = getattr(self.local, "messages", None)
        if kept is None:
            return True
        kept.append(record.getMessage())
        return False


class LogOnceExporter(SpanExporter):
    """Delegates to an exporter, never raises, and logs its first failure only (later ones at debug level).

    Attributes:
        exported: spans the collector accepted.
        failures: export calls that failed.
    """

    def __init__(self, inner: SpanExporter, *, endpoint: str) -> None:
        self.inner = inner
        self.endpoint = endpoint
        self.exported = 0
        self.failures = 0
        self._reported = False
        self._silence = _Silence()
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(self._silence)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        messages: list[str] = []
        self._silence.local.messages = messages
        try:
            result = self.inner.export(spans)
        except Exception as error:  # an exporter must not raise into the processor's thread
            messages.append(f"{type(error).__name__}: {error}")
            result = SpanExportResult.FAILURE
        finally:
            self._silence.local.messages = None
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            return result
        self.failures += 1
        detail = messages[0] if messages else "the collector did not accept the spans"
        if not self._reported:
            self._reported = True
            logger.warning(
                "OpenTelemetry export to %s failed: %s; %d span(s) dropped. Later export failures are not logged.",
                self.endpoint,
                detail,
                len(spans),
            )
        else:
            logger.debug("OpenTelemetry export to %s failed again: %s", self.endpoint, detail)
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        finally:
            for name in _EXPORTER_LOGGERS:
                logging.getLogger(name).removeFilter(self._silence)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def resolved_endpoint(endpoint: str | None) -> str:
    """The traces URL spans go to: `endpoint`, else the standard OTEL_EXPORTER_OTLP_* variables, else localhost."""
    if endpoint:
        return endpoint
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
    return base.rstrip("/") + "/v1/traces"


def build_provider(
    *,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
    service_name: str | None,
    service_version: str,
) -> tuple[TracerProvider, RunTraceIds, LogOnceExporter]:
    """A private TracerProvider exporting over OTLP/HTTP in batches; the global provider is left alone."""
    attributes: dict[str, str] = {"service.version": service_version}
    if service_name or not (
        os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    ):
        attributes["service.name"] = service_name or "stratum"
    ids = RunTraceIds()
    provider = TracerProvider(resource=Resource.create(attributes), id_generator=ids)
    inner = OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=timeout)
    exporter = LogOnceExporter(inner, endpoint=resolved_endpoint(endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, ids, exporter
