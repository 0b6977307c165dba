"""Where runs execute: the in-process engine (the default), or a durable backend (Temporal) on a cluster.

The step semantics (prompt, call, validate, ensure, retry with feedback, budget accounting, trace records) are the
engine's own functions whichever backend runs them; a backend decides only where and when they run. Temporal is an
optional extra (`pip install 'stratum[temporal]'`): `stratum_core.backends.temporal` imports `temporalio`, so it is
imported only when that backend is chosen (`engine_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, TypeAlias

from stratum_core.backends._settings import TemporalSettings
from stratum_core.backends._store_url import open_run_store

if TYPE_CHECKING:
    from stratum_core.engine import Engine, EngineConfig, ReviewSink, RunObserver
    from stratum_core.llm import LLMClient
    from stratum_core.store import RunStore

__all__ = ["BACKENDS", "BackendName", "TemporalSettings", "engine_for", "open_run_store"]

BackendName: TypeAlias = Literal["local", "temporal"]
BACKENDS: tuple[BackendName, ...] = ("local", "temporal")


def engine_for(
    backend: BackendName,
    *,
    store: RunStore,
    config: EngineConfig | None = None,
    llm: LLMClient | None = None,
    review_sink: ReviewSink | None = None,
    observers: Sequence[RunObserver] = (),
    temporal: TemporalSettings | None = None,
) -> Engine:
    """The engine that runs flows on `backend`: in this process (`local`), or as Temporal workflows (`temporal`).

    A Temporal engine starts workflows on `temporal.task_queue`; `stratum worker` processes run them. Choosing it
    without the extra installed raises ConfigurationError saying how to install it.
    """
    from stratum_core.engine import Engine

    if backend == "local":
        return Engine(store=store, config=config, llm=llm, review_sink=review_sink, observers=observers)
    if backend == "temporal":
        from stratum_core.backends._settings import require_temporal

        require_temporal()
        from stratum_core.backends.temporal import TemporalEngine

        return TemporalEngine(
            settings=temporal or TemporalSettings(),
            store=store,
            config=config,
            llm=llm,
            review_sink=review_sink,
            observers=observers,
        )
    raise ValueError(f"unknown backend {backend!r} (backends: {', '.join(BACKENDS)})")
