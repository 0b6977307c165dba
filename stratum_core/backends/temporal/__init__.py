"""Stratum on Temporal: each run a workflow, each step's call an activity, people's answers signals.

Importing this package imports `temporalio` (the `temporal` extra). See docs/backends.md.
"""

from stratum_core.backends.temporal._client import TemporalEngine, connect
from stratum_core.backends.temporal._worker import build_worker, run_worker

__all__ = ["TemporalEngine", "build_worker", "connect", "run_worker"]
