"""What a worker's workflows run against: its run store and engine configuration, by task queue.

Temporal constructs workflow objects itself, with no arguments; a worker registers here what its workflows on a
task queue need (the store they record into, the configuration they read limits from, the plans they loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stratum_core.engine import EngineConfig
from stratum_core.engine._engine import load_run_plan
from stratum_core.plan import Plan
from stratum_core.store import RunRecord, RunStore

__all__ = ["WorkflowHost", "host_for", "register_host", "unregister_host"]


@dataclass
class WorkflowHost:
    """The store and configuration of the workflows a worker runs on one task queue."""

    store: RunStore
    config: EngineConfig
    plans: dict[tuple[str, str], Plan] = field(default_factory=dict)

    def plan_of(self, record: RunRecord) -> Plan:
        """The run's plan, loaded from its recorded text once per worker (the same text gives the same plan)."""
        key = (record.plan_source, record.plan_hash)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = load_run_plan(record)
        return plan


_HOSTS: dict[str, WorkflowHost] = {}


def register_host(task_queue: str, host: WorkflowHost) -> None:
    """Make `host` what workflows on `task_queue` in this process run against."""
    _HOSTS[task_queue] = host


def unregister_host(task_queue: str, host: WorkflowHost) -> None:
    """Forget `host` (a worker that stopped), unless another took its place."""
    if _HOSTS.get(task_queue) is host:
        del _HOSTS[task_queue]


def host_for(task_queue: str) -> WorkflowHost:
    """What workflows on `task_queue` run against; a LookupError when no worker of this process serves it."""
    host = _HOSTS.get(task_queue)
    if host is None:
        raise LookupError(f"no Stratum worker in this process serves task queue {task_queue!r}")
    return host
