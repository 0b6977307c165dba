"""The store a workflow's scheduler records into: read back from memory, written through when not replaying.

Workflow code must act the same on every replay. The scheduler reads back what it recorded (a sequential flow's
routing does), so reads are served from an in-memory copy that holds exactly what this execution of the workflow
recorded, in the same order on every replay; writes go to the shared run store too, except while Temporal replays
history (they were made when that history was first made). Writes are upserts of whole records, so a workflow task
that is retried after a crash writes the same records again, harmlessly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stratum_core.store import MemoryRunStore, RunRecord, RunStore, StepRecord

__all__ = ["WorkflowRecorder"]


class WorkflowRecorder(MemoryRunStore):
    """A MemoryRunStore of one run whose step and run writes also reach `shared` unless `replaying()`."""

    def __init__(self, shared: RunStore, record: RunRecord, *, replaying: Callable[[], bool]) -> None:
        super().__init__()
        self.shared = shared
        self._replaying = replaying
        super().create_run(record)

    def upsert_step(self, record: StepRecord) -> None:
        super().upsert_step(record)
        if not self._replaying():
            self.shared.upsert_step(record)

    def update_run(self, run_id: str, /, *, release_lease_of: str | None = None, **fields: Any) -> RunRecord:
        updated = super().update_run(run_id, release_lease_of=release_lease_of, **fields)
        if not self._replaying():
            self.shared.update_run(run_id, release_lease_of=release_lease_of, **fields)
        return updated
