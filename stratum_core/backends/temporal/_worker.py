"""`stratum worker`: the process that runs Stratum's workflows and activities (plans' `call:` modules load here)."""

from __future__ import annotations

from datetime import timedelta

import anyio
from temporalio.client import Client
from temporalio.worker import Worker

from stratum_core.backends._settings import TemporalSettings
from stratum_core.backends.temporal._activities import HEARTBEAT_EVERY, StepActivities
from stratum_core.backends.temporal._client import connect
from stratum_core.backends.temporal._hosts import WorkflowHost, register_host, unregister_host
from stratum_core.backends.temporal._workflow import StratumRunWorkflow
from stratum_core.engine import Engine

__all__ = ["ACTIVATION_LIMIT", "build_worker", "run_worker"]

ACTIVATION_LIMIT = 60.0
"""Seconds one workflow activation may run before Temporal reports a deadlock (its default is 2)."""


def build_worker(
    client: Client, *, settings: TemporalSettings, engine: Engine, max_cached_workflows: int = 1000
) -> Worker:
    """A worker for `settings.task_queue` whose workflows and activities use `engine`'s store, model and config.

    Run it with `async with worker:` (or `await worker.run()`); one process serves one Stratum task queue.
    `max_cached_workflows` is how many workflows stay in memory between their tasks (0: every task replays its
    history, which tests use to check that replay is faithful).

    Temporal's deadlock detector fails a workflow activation that runs over 2 s. An activation here may load a
    plan and write the run store, which on a loaded host can take longer, and an activation interrupted that way
    leaves its tasks behind and the workflow's slot stuck; so the limit is raised to `ACTIVATION_LIMIT` (the SDK
    has no option for it: its `debug_mode` turns it off but runs activations on the worker's own event loop).
    """
    register_host(settings.task_queue, WorkflowHost(store=engine.store, config=engine.config))
    activities = StepActivities(engine)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[StratumRunWorkflow],
        activities=[activities.call_function],
        max_concurrent_activities=max(engine.config.max_concurrency, 1) * 4,
        max_cached_workflows=max_cached_workflows,
        max_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_EVERY),
    )
    inner = getattr(worker, "_workflow_worker", None)
    if inner is not None and hasattr(inner, "_deadlock_timeout_seconds"):  # temporalio 1.35's private setting
        inner._deadlock_timeout_seconds = ACTIVATION_LIMIT
    return worker


async def run_worker(settings: TemporalSettings, engine: Engine) -> None:
    """Connect to the cluster and run a worker until cancelled.

    LiteLLM is imported first (tens of seconds on a busy host): imported later, by the first activity, it would hold
    the event loop (no heartbeats: the activity looks lost) and its module locks (a workflow loading a plan waits).
    """
    if engine.config.model:
        from stratum_core.llm._litellm import load_litellm

        await anyio.to_thread.run_sync(load_litellm)
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
