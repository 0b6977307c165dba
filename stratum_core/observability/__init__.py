"""Seeing runs: OpenTelemetry export, an SVG timeline of one run, and summaries of many.

`OTelExporter` is a RunObserver for `Engine(observers=[...])`; it needs the `otel` extra, imported only when one is
built. `render_timeline_svg` and `summarize` are pure functions over what the run store recorded.
"""

from stratum_core.observability._otel import OTelExporter, add_otel_option, otel_observers, trace_id_for
from stratum_core.observability._summary import ErrorCount, RunStats, Summary, parse_time, summarize
from stratum_core.observability._timeline import render_timeline_svg

__all__ = [
    "ErrorCount",
    "OTelExporter",
    "RunStats",
    "Summary",
    "add_otel_option",
    "otel_observers",
    "parse_time",
    "render_timeline_svg",
    "summarize",
    "trace_id_for",
]
