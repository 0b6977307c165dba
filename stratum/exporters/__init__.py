"""Exporters for `configure(tracer=...)`: `otel(endpoint=..., service_name=..., timeout_seconds=...)`."""

from stratum_core.library._trace import OTelTracer, otel

__all__ = ["OTelTracer", "otel"]
