"""OpenTelemetry export of runs: a RunObserver that sends each finished run's trace as spans over OTLP/HTTP.

The spans are built from the run store once the run ends, with the recorded times, so they show what happened
(including work done in another process before a resume), not when the exporter heard of it:

    invoke_workflow {flow}                 the run (root; its trace id is the run id when that is 32 hex digits)
    ├── step {step_id}                     each step, nested by path: `group.a` under `group`, `f[2]` under `f`
    │   ├── chat {model}                   each LLM attempt (GenAI semantic conventions + stratum.*)
    │   └── await_human {step_id}          the wait for a person's decision
    └── ...

Retries are `stratum.retry` events on the step, violations `stratum.violation` events on the attempt. A paused run
is exported when it finally ends (succeeded, failed, cancelled), by whichever process resumes it: exporting at the
pause as well would put a second root and duplicate steps into the collector, which never merges traces.

The OpenTelemetry SDK is the optional `otel` extra; it is imported when an OTelExporter is built, never by
importing stratum_core.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import importlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

from stratum_core.engine import RunObserver
from stratum_core.errors import ConfigurationError
from stratum_core.observability._shape import StepNode, attempt_end, review_interval, run_shape
from stratum_core.store import AttemptRecord, RunStore, Trace

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from stratum_core.observability._otel_sdk import LogOnceExporter, RunTraceIds

__all__ = ["OTelExporter", "add_otel_option", "otel_observers", "trace_id_for"]

logger = logging.getLogger("stratum.observability")

_FINAL = frozenset({"succeeded", "failed", "cancelled"})
_MAX_PENDING_RUNS = 1000
_INSTALL_HINT = "OpenTelemetry export needs the `otel` extra: pip install 'stratum[otel]'"

# LiteLLM provider prefixes -> OpenTelemetry GenAI provider names (gen_ai.provider.name / gen_ai.system).
_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
}
_MODEL_FAMILIES = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-"), "openai"),
    (("claude",), "anthropic"),
    (("gemini",), "gcp.gemini"),
    (("mistral", "mixtral", "codestral"), "mistral_ai"),
    (("command",), "cohere"),
    (("deepseek",), "deepseek"),
    (("grok",), "x_ai"),
)
# Step attributes that are free text a person wrote, or already exported under another name.
_STEP_ATTRIBUTES_LEFT_OUT = frozenset({"rationale"})


def trace_id_for(run_id: str) -> int:
    """The OpenTelemetry trace id of a run: its id when that is 32 hex digits (a uuid4), else a hash of it."""
    try:
        value = int(run_id, 16) if len(run_id) == 32 else 0
    except ValueError:
        value = 0
    return value or int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16) or 1


def provider_of(model: str) -> str:
    """The GenAI provider name of a LiteLLM model string ('openai/gpt-4.1' -> 'openai'); the prefix if unknown."""
    prefix, slash, _ = model.partition("/")
    if slash:
        return _PROVIDERS.get(prefix.lower(), prefix.lower())
    lowered = model.lower()
    for starts, provider in _MODEL_FAMILIES:
        if lowered.startswith(starts):
            return provider
    return "_OTHER"


def _ns(epoch: float) -> int:
    return round(epoch * 1_000_000_000)


def _value(value: Any) -> AttributeValue | None:
    """An attribute value: primitives and lists of one primitive type as they are, anything else as JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and value:
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and kinds <= {bool, int, float, str}:
            return list(value)
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _attributes(values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, value in values.items():
        converted = _value(value)
        if converted is not None:
            out[key] = converted
    return out


def _traces_url(endpoint: str) -> str:
    """`http://collector:4318` -> `http://collector:4318/v1/traces`; a URL already ending so is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def _version() -> str:
    try:
        return metadata.version("stratum")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
        return "0"


class OTelExporter(RunObserver):
    """Exports every finished run as OpenTelemetry spans (OTLP/HTTP, batched in a background thread).

    Pass it to `Engine(observers=[...])`. Export never slows or breaks a run: an ended run's trace is handed to a
    background thread that builds its spans, and the SDK's batch processor sends them from its own thread through a
    bounded queue (the oldest spans are dropped when it is full); a collector that is down is logged once.

    Args:
        store: the run store the engine writes to; traces are read from it when a run ends.
        endpoint: the collector, e.g. `http://localhost:4318` (`/v1/traces` is added unless present); default:
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`, else localhost.
        headers: extra HTTP headers (default: OTEL_EXPORTER_OTLP_HEADERS).
        timeout: seconds an export may take, retries included (default: OTEL_EXPORTER_OTLP_TIMEOUT, else 10).
        service_name: the resource's service.name (default: OTEL_SERVICE_NAME, else 'stratum').
        tracer_provider: export through this provider instead (its processors and exporters); trace ids are then
            its own, not derived from run ids, and shutdown() leaves it running.
    """

    def __init__(
        self,
        store: RunStore,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        service_name: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.store = store
        self._ids: RunTraceIds | None = None
        self._exporter: LogOnceExporter | None = None
        self._owned = tracer_provider is None
        self._lock = threading.Lock()
        self._export_failed = False
        self._dropped = False
        self._closed = False
        self._pending: queue.Queue[Trace | threading.Event | None] = queue.Queue(maxsize=_MAX_PENDING_RUNS)
        self._worker: threading.Thread | None = None
        if tracer_provider is None:
            try:
                sdk = importlib.import_module("stratum_core.observability._otel_sdk")
            except ImportError as error:
                raise ConfigurationError(_INSTALL_HINT) from error
            tracer_provider, self._ids, self._exporter = sdk.build_provider(
                endpoint=_traces_url(endpoint) if endpoint else None,
                headers=headers,
                timeout=timeout,
                service_name=service_name,
                service_version=_version(),
            )
        self._provider = tracer_provider
        self._tracer: Tracer = tracer_provider.get_tracer("stratum", _version())
        atexit.register(self.shutdown)  # runs before the provider's own exit hook: pending runs are exported first

    @property
    def endpoint(self) -> str | None:
        """Where spans go, when this exporter owns its OTLP exporter."""
        return self._exporter.endpoint if self._exporter is not None else None

    @property
    def failures(self) -> int:
        """How many batches the collector did not accept (0 with a given tracer_provider)."""
        return self._exporter.failures if self._exporter is not None else 0

    @property
    def exported(self) -> int:
        """How many spans the collector accepted (0 with a given tracer_provider)."""
        return self._exporter.exported if self._exporter is not None else 0

    # -- RunObserver ----------------------------------------------------------------------------------------------

    async def run_finished(self, run_id: str, status: str) -> None:
        """Hand the ended run's trace to the export thread; a pause waits for the end (see the module docstring)."""
        if status not in _FINAL:
            return
        try:
            trace = self.store.get_trace(run_id)
            if trace is not None:
                self._submit(trace, run_id)
        except Exception:  # an exporter never breaks a run; a broken one says so once
            self._failed_once(f"could not export run {run_id} to OpenTelemetry")

    def _failed_once(self, message: str) -> None:
        if not self._export_failed:
            self._export_failed = True
            logger.exception("%s; later failures are not logged", message)

    def _submit(self, item: Trace, run_id: str) -> None:
        with self._lock:
            if self._closed:
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="stratum-otel-export", daemon=True)
                self._worker.start()
        try:
            self._pending.put_nowait(item)
        except queue.Full:
            if not self._dropped:
                self._dropped = True
                logger.warning("OpenTelemetry export is behind: run %s dropped (later drops are not logged)", run_id)

    def _work(self) -> None:
        """The export thread: turns traces into spans, off the event loop, in the order runs ended."""
        while True:
            item = self._pending.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.export_trace(item)
            except Exception:
                self._failed_once(f"could not export run {item.run.run_id} to OpenTelemetry")

    # -- spans ----------------------------------------------------------------------------------------------------

    def export_trace(self, trace: Trace) -> None:
        """Build the spans of one recorded run in the calling thread and queue them; the SDK's thread sends them."""
        from opentelemetry import context as context_api
        from opentelemetry import trace as trace_api

        shape = run_shape(trace)
        run = trace.run
        common = {"stratum.run_id": run.run_id, "stratum.flow": run.flow}
        root_attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": run.flow,
            **common,
            "stratum.status": run.status,
            "stratum.plan_hash": run.plan_hash,
            "stratum.plan_source": run.plan_source,
            "stratum.model": run.model,
            "stratum.tokens_in": run.tokens_in,
            "stratum.tokens_out": run.tokens_out,
            "stratum.cost_usd": run.cost_usd,
            "stratum.cost_unknown": run.cost_unknown or None,
            "stratum.parent_run_id": run.parent_run_id,
            "stratum.steps": len(trace.steps),
            "stratum.attempts": len(trace.attempts),
        }
        if run.error:
            root_attributes["error.type"] = run.error.get("type") or "_OTHER"
            root_attributes["stratum.error.step_id"] = run.error.get("step_id")
        with self._lock:  # the root span takes the run's trace id from the id generator
            if self._ids is not None:
                self._ids.next_trace_id = trace_id_for(run.run_id)
            root = self._tracer.start_span(
                f"invoke_workflow {run.flow}",
                context=context_api.Context(),  # a root, whatever span is current where the run ended
                kind=trace_api.SpanKind.INTERNAL,
                attributes=_attributes(root_attributes),
                start_time=_ns(shape.start),
            )
            if self._ids is not None:
                self._ids.next_trace_id = None
        if run.status in ("failed", "cancelled"):
            message = run.error.get("message") if run.error else None
            root.set_status(trace_api.Status(trace_api.StatusCode.ERROR, str(message or run.status)))

        spans: dict[str, Span] = {}
        for node in shape.steps:
            parent = spans[node.parent] if node.parent is not None else root
            spans[node.step.step_id] = self._step_span(node, trace_api.set_span_in_context(parent), common, shape.end)
        for attempt in shape.orphan_attempts:
            self._attempt_span(attempt, trace_api.set_span_in_context(root), common)
        for node in shape.steps:
            spans[node.step.step_id].end(end_time=_ns(node.end))
        root.end(end_time=_ns(shape.end))

    def _step_span(self, node: StepNode, parent: Context, common: Mapping[str, Any], run_end: float) -> Span:
        from opentelemetry import trace as trace_api

        step = node.step
        values: dict[str, Any] = {
            **common,
            "stratum.step_id": step.step_id,
            "stratum.step.kind": step.kind,
            "stratum.step.function": step.function,
            "stratum.step.status": step.status,
            "stratum.attempts": step.attempts,
            "stratum.tokens_in": step.tokens_in,
            "stratum.tokens_out": step.tokens_out,
            "stratum.cost_usd": step.cost_usd,
        }
        for key, value in step.attributes.items():
            if key not in _STEP_ATTRIBUTES_LEFT_OUT:
                values.setdefault(f"stratum.{key}", value)
        if step.error:
            values["error.type"] = step.error.get("type") or "_OTHER"
        span = self._tracer.start_span(
            f"step {step.step_id}",
            context=parent,
            kind=trace_api.SpanKind.INTERNAL,
            attributes=_attributes(values),
            start_time=_ns(node.start),
        )
        if step.status in ("failed", "cancelled"):
            message = step.error.get("message") if step.error else None
            span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, str(message or step.status)))
        own = trace_api.set_span_in_context(span)
        for attempt in node.attempts:
            if attempt.number > 1 or attempt.retry_reason:
                span.add_event(
                    "stratum.retry",
                    _attributes({"stratum.attempt": attempt.number, "stratum.retry_reason": attempt.retry_reason}),
                    timestamp=_ns(attempt.started_at),
                )
            self._attempt_span(attempt, own, common)
        for review in node.reviews:
            start, end = review_interval(review, run_end)
            wait = self._tracer.start_span(
                f"await_human {step.step_id}",
                context=own,
                kind=trace_api.SpanKind.INTERNAL,
                attributes=_attributes(
                    {
                        **common,
                        "stratum.step_id": step.step_id,
                        "stratum.review_id": review.review_id,
                        "stratum.review.status": review.status,
                        "stratum.review.action": review.action,
                        "stratum.reviewer": review.reviewer,
                    }
                ),
                start_time=_ns(start),
            )
            wait.end(end_time=_ns(end))
        return span

    def _attempt_span(self, attempt: AttemptRecord, parent: Context, common: Mapping[str, Any]) -> None:
        from opentelemetry import trace as trace_api

        model = attempt.model or "unknown"
        provider = provider_of(model)
        values: dict[str, Any] = {
            **attempt.otel_attributes(),
            "gen_ai.system": "xai" if provider == "x_ai" else provider,
            "gen_ai.provider.name": provider,
            "gen_ai.output.type": "json",
            **common,
            "stratum.step_id": attempt.step_id,
            "stratum.attempt.kind": attempt.kind,
            "stratum.backend": attempt.backend,
            "stratum.retry_reason": attempt.retry_reason,
            "stratum.transport_attempts": attempt.transport_attempts,
            "stratum.violations": list(attempt.violations) or None,
        }
        if attempt.error:
            values["error.type"] = "_OTHER"
        span = self._tracer.start_span(
            f"chat {model}",
            context=parent,
            kind=trace_api.SpanKind.CLIENT,
            attributes=_attributes(values),
            start_time=_ns(attempt.started_at),
        )
        for number, error in enumerate(attempt.transport_errors, start=1):
            span.add_event(
                "stratum.transport_error",
                _attributes({"stratum.transport_attempt": number, "stratum.error": error}),
                timestamp=_ns(attempt.started_at),
            )
        for fallback in attempt.strategy_fallbacks:
            span.add_event(
                "stratum.strategy_fallback",
                _attributes({"stratum.attempt": attempt.number, "stratum.reason": fallback}),
                timestamp=_ns(attempt.started_at),
            )
        end = attempt_end(attempt)
        for violation in attempt.violations:
            span.add_event(
                "stratum.violation",
                _attributes({"stratum.attempt": attempt.number, "stratum.violation": violation}),
                timestamp=_ns(end),
            )
        if attempt.error:
            span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, attempt.error))
        span.end(end_time=_ns(end))

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def force_flush(self, timeout: float = 30.0) -> bool:
        """Export every ended run and send its spans now (blocking, at most `timeout` s); False if that timed out."""
        deadline = time.monotonic() + timeout
        worker = self._worker
        if worker is not None and worker.is_alive() and not self._closed:
            done = threading.Event()  # set by the export thread once it has exported what was before it
            try:
                self._pending.put(done, timeout=timeout)
            except queue.Full:
                return False
            if not done.wait(max(deadline - time.monotonic(), 0.0)):
                return False
        flush = getattr(self._provider, "force_flush", None)
        remaining = max(deadline - time.monotonic(), 0.0)
        return bool(flush(int(remaining * 1000))) if flush is not None else True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Export what is pending, send it, and stop the threads; called at interpreter exit too. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
        atexit.unregister(self.shutdown)
        if worker is not None:
            self._pending.put(None)
            worker.join(timeout)
        if self._owned:
            shutdown = getattr(self._provider, "shutdown", None)
            if shutdown is not None:
                shutdown()
        else:
            flush = getattr(self._provider, "force_flush", None)
            if flush is not None:
                flush(int(timeout * 1000))


# -- command line -----------------------------------------------------------------------------------------------


def add_otel_option(parser: argparse.ArgumentParser) -> None:
    """Add `--otlp-endpoint URL` to a command that runs flows (`stratum run`, `resume`, `serve`)."""
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export each run's trace to this OpenTelemetry collector over OTLP/HTTP, e.g. http://localhost:4318 "
        "(default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT when set; needs the "
        "`otel` extra)",
    )


def _env_configured(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def otel_observers(
    args: argparse.Namespace, store: RunStore, *, env: Mapping[str, str] | None = None
) -> Sequence[OTelExporter]:
    """The exporters `--otlp-endpoint` (or the standard OTEL_EXPORTER_OTLP_* variables) ask for: none or one.

    An explicit `--otlp-endpoint` without the `otel` extra is a ConfigurationError; variables alone without it
    only log a warning, since they may be meant for another program.
    """
    env = os.environ if env is None else env
    endpoint: str | None = getattr(args, "otlp_endpoint", None)
    if not endpoint and not _env_configured(env):
        return []
    try:
        return [OTelExporter(store, endpoint=endpoint or None)]
    except ConfigurationError:
        if endpoint:
            raise
        logger.warning("OTEL_EXPORTER_OTLP_* is set but runs are not exported: %s", _INSTALL_HINT)
        return []
