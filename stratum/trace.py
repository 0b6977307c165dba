"""The in-process trace of library calls, as the reference library reads it: `all_records()`, `clear_traces()`.

Every run is also in the run store (`stratum runs`, `stratum://runs` over MCP), with every attempt.
"""

from stratum_core.library._trace import TraceRecord, all_records, clear_traces

__all__ = ["TraceRecord", "all_records", "clear_traces"]
