"""`stratum worker`: the process that runs Stratum's workflows and activities (plans' `call:` modules load here)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from stratum_core.backends._settings import TemporalSettings
from stratum_core.backends.temporal._activities import StepActivities
from stratum_core.backends.temporal._client import connect
from stratum_core.backends.temporal._hosts import WorkflowHost, register_host, unregister_host
from stratum_core.backends.temporal._workflow import StratumRunWorkflow
from stratum_core.engine import Engine

__all__ = ["build_worker", "run_worker"]


def build_worker(client: Client, *, settings: TemporalSettings, engine: Engine) -> Worker:
    """A worker for `settings.task_queue` whose workflows and activities use `engine`'s store, model and config.

    Run it with `async with worker:` (or `await worker.run()`); one process serves one Stratum task queue.
    """
    register_host(settings.task_queue, WorkflowHost(store=engine.store, config=engine.config))
    activities = StepActivities(engine)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[StratumRunWorkflow],
        activities=[activities.call_function],
        max_concurrent_activities=max(engine.config.max_concurrency, 1) * 4,
    )


async def run_worker(settings: TemporalSettings, engine: Engine) -> None:
    """Connect to the cluster and run a worker until cancelled."""
    client = await connect(settings)
    worker = build_worker(client, settings=settings, engine=engine)
    host = None
    try:
        from stratum_core.backends.temporal._hosts import host_for

        host = host_for(settings.task_queue)
        await worker.run()
    finally:
        if host is not None:
            unregister_host(settings.task_queue, host)
