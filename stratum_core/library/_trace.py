"""The reference library's in-process trace: `TraceRecord`s of calls, `all_records()`, `clear_traces()`, `tracer=`.

Records are built from the run store when a run ends (or pauses), one per model or human step, failures included
(the reference recorded only successes). A `tracer` callable gets the reference's span attributes of each fresh
successful model step; its exceptions are logged and never break a run. The list keeps the latest 10,000 records.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stratum_core.engine import RunObserver
from stratum_core.store import RunStore, StepRecord, Trace

__all__ = [
    "MAX_RECORDS",
    "OTelTracer",
    "TraceCollector",
    "TraceRecord",
    "all_records",
    "clear_traces",
    "collector",
    "otel",
]

logger = logging.getLogger("stratum.library")

MAX_RECORDS = 10_000
_MODEL_KINDS = frozenset({"infer", "adaptive"})


@dataclass(frozen=True)
class TraceRecord:
    """One call of a function, as the reference library recorded it (plus `status`, `error` and `step_id`)."""

    function: str
    model: str | None
    inputs: Any
    compiled_prompt_hash: str | None
    contract_hash: str | None
    attempts: int
    output: Any
    duration_ms: int
    cost_usd: float | None
    cache_hit: bool
    retry_reasons: list[str] = field(default_factory=list)
    flow_id: str | None = None
    review_id: str | None = None
    status: str = "succeeded"
    error: dict[str, Any] | None = None
    step_id: str | None = None


def _record(step: StepRecord, trace: Trace) -> TraceRecord:
    attempts = [a for a in trace.attempts if a.step_id == step.step_id]
    last = attempts[-1] if attempts else None
    review_id = step.attributes.get("review_id")
    return TraceRecord(
        function=str(step.function or step.step_id),
        model=last.model if last is not None else None,
        inputs=step.input,
        compiled_prompt_hash=last.prompt_hash if last is not None else None,
        contract_hash=last.contract_hash if last is not None else None,
        attempts=len(attempts) or step.attempts,
        output=step.output,
        duration_ms=round(step.duration_ms or 0),
        cost_usd=step.cost_usd or None,
        cache_hit=bool(step.attributes.get("cache_hit")),
        retry_reasons=[a.retry_reason for a in attempts if a.retry_reason],
        flow_id=trace.run.run_id,
        review_id=str(review_id) if review_id else None,
        status=step.status,
        error=dict(step.error) if step.error else None,
        step_id=step.step_id,
    )


def span_attributes(record: TraceRecord, step: StepRecord) -> dict[str, Any]:
    """The reference's span attributes (gen_ai.* and stratum.*) of one model step."""
    from stratum_core.observability._otel import provider_of

    attributes: dict[str, Any] = {
        "gen_ai.system": provider_of(record.model) if record.model else "unknown",
        "gen_ai.request.model": record.model,
        "gen_ai.usage.input_tokens": step.tokens_in,
        "gen_ai.usage.output_tokens": step.tokens_out,
        "stratum.function": record.function,
        "stratum.contract_hash": record.contract_hash,
        "stratum.attempts": record.attempts,
        "stratum.cost_usd": record.cost_usd,
        "stratum.cache_hit": record.cache_hit,
        "stratum.flow_id": record.flow_id,
        "stratum.duration_ms": record.duration_ms,
    }
    return {key: value for key, value in attributes.items() if value is not None}


class TraceCollector(RunObserver):
    """Collects TraceRecords of the runs of one engine (and feeds a `tracer`)."""

    def __init__(self) -> None:
        self.records: deque[TraceRecord] = deque(maxlen=MAX_RECORDS)
        self.seen: deque[tuple[str, str]] = deque(maxlen=MAX_RECORDS)
        self.store: RunStore | None = None
        self.tracer: Callable[[dict[str, Any]], Any] | None = None
        self._lock = threading.Lock()

    async def run_finished(self, run_id: str, status: str) -> None:
        """Turn the run's finished model and human steps into records, once each."""
        if self.store is None:
            return
        trace = self.store.get_trace(run_id)
        if trace is None:
            return
        fresh: list[tuple[TraceRecord, StepRecord]] = []
        with self._lock:
            seen = set(self.seen)
            for step in trace.steps:
                key = (run_id, step.step_id)
                if key in seen or step.status not in ("succeeded", "failed"):
                    continue
                if step.kind not in _MODEL_KINDS and step.kind != "human":
                    continue
                record = _record(step, trace)
                self.seen.append(key)
                self.records.append(record)
                fresh.append((record, step))
        if self.tracer is None:
            return
        for record, step in fresh:
            if step.kind in _MODEL_KINDS and record.status == "succeeded" and not record.cache_hit:
                try:
                    self.tracer(span_attributes(record, step))
                except Exception:  # a tracer never breaks a run
                    logger.exception("the configured tracer failed")


collector = TraceCollector()
"""The collector of the library's engine (configure() connects it)."""


def all_records() -> list[TraceRecord]:
    """Every recorded call, oldest first (a copy)."""
    with collector._lock:
        return list(collector.records)


def clear_traces() -> None:
    """Forget the recorded calls."""
    with collector._lock:
        collector.records.clear()
        collector.seen.clear()


@dataclass(frozen=True)
class OTelTracer:
    """What `stratum.exporters.otel(...)` returns: `configure(tracer=...)` exports every run as OTLP spans.

    The spans come from our OTelExporter (a root per run, a span per step and per model call, batched in a
    background thread), rather than the reference's one thread and one POST per call.
    """

    endpoint: str = "http://localhost:4318/v1/traces"
    service_name: str = "stratum"
    timeout_seconds: float = 5.0

    def build_observer(self, store: RunStore) -> RunObserver:
        """The run observer that exports to this endpoint (needs the `otel` extra)."""
        from stratum_core.observability import OTelExporter

        return OTelExporter(store, endpoint=self.endpoint, service_name=self.service_name, timeout=self.timeout_seconds)


def otel(
    endpoint: str = "http://localhost:4318/v1/traces", service_name: str = "stratum", timeout_seconds: float = 5.0
) -> OTelTracer:
    """A tracer for `configure(tracer=...)` that exports runs over OTLP/HTTP to `endpoint`."""
    return OTelTracer(endpoint=endpoint, service_name=service_name, timeout_seconds=timeout_seconds)
