"""The run store: every run, step, attempt and review of a flow, persisted so a run can resume anywhere.

`SQLiteRunStore` is the default (one file, WAL, safe across processes of one host); `MemoryRunStore` behaves the same
for tests. Processes on several hosts share a PostgreSQL database: `stratum_core.backends.open_run_store` opens one
for a `postgresql://` URL (`stratum_core.store._postgres`, imported only then: it needs the `postgres` extra).
"""

from stratum_core.store._lease import lease_is_live, new_holder
from stratum_core.store._memory import MemoryRunStore
from stratum_core.store._protocol import RunBusy, RunStore, StoreError
from stratum_core.store._records import (
    AnsweredBy,
    AttemptRecord,
    ReviewAction,
    ReviewRecord,
    ReviewStatus,
    RunPage,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    Trace,
)
from stratum_core.store._sqlite import SQLiteRunStore

__all__ = [
    "AnsweredBy",
    "AttemptRecord",
    "MemoryRunStore",
    "ReviewAction",
    "ReviewRecord",
    "ReviewStatus",
    "RunBusy",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SQLiteRunStore",
    "StepRecord",
    "StepStatus",
    "StoreError",
    "Trace",
    "lease_is_live",
    "new_holder",
]
