"""Items of a batch spread over a Ray cluster: worker actors run the engine; the driver's store records every run.

Each worker actor loads the plan once and runs the items it is given on its own engine, with a store in memory;
it answers with the run's whole trace (run, steps, attempts, reviews), which the driver writes to the batch's store,
so every item is an ordinary run there, as in a local batch. Ray spreads the work and is not where anything is kept:
a worker lost mid-batch loses no finished item (those are in the driver's store already), and the items it was
running are given to another worker (up to `max_tries` times in all; after that the item fails as `WorkerLost`).

Budgets: the batch's envelope stays on the driver. Before an item is sent, a grant is reserved from it (the item
budget's usd and tokens, or an equal share of what is left per item running) and the worker runs the item inside an
envelope of that size, labelled as the batch's, so a call that cannot fit is refused there just as it would be
locally; when the item comes back its grant is released and what it used is charged.

Ray is imported only here, when a batch asks for it (`pip install 'stratum[ray]'`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from stratum_core.batch._items import BatchItem
from stratum_core.batch._runner import batch_tag
from stratum_core.engine import Engine, EngineConfig
from stratum_core.engine._budget import Envelope
from stratum_core.errors import ConfigurationError, RunCancelled
from stratum_core.plan import Budget
from stratum_core.store import AttemptRecord, ReviewRecord, RunRecord, RunStatus, RunStore, StepRecord, Trace

if TYPE_CHECKING:
    from stratum_core.batch._runner import Batch

__all__ = ["LOOPBACK_ENV", "RayItemRunner", "start_local_ray"]

logger = logging.getLogger("stratum.batch")

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Set before Ray is imported, a cluster started here listens on 127.0.0.1 only (Ray's single-machine mode)."""
_RESTART_WAIT_S = 0.5
_CPU_READ_S = 10.0
_PASSED_ENV = ("LITELLM_", "STRATUM_", "HF_HUB_OFFLINE", "OPENAI_", "ANTHROPIC_")


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ConfigurationError("--ray needs Ray: pip install 'stratum[ray]'") from e
    return ray


def start_local_ray(*, num_cpus: int | None = None) -> None:
    """Start a Ray cluster on this machine for this process: loopback only, no dashboard (a no-op if one is up)."""
    for name, value in LOOPBACK_ENV.items():  # read when Ray is imported
        os.environ.setdefault(name, value)
    ray = _ray()
    if ray.is_initialized():
        return
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)


class _Worker:
    """A Ray actor: the plan loaded once, an engine per item (each with its own store, in memory)."""

    def __init__(self, plan_text: str, source: str, base_dir: str | None, untrusted: bool, config: EngineConfig):
        from stratum_core.llm import default_client
        from stratum_core.plan import load_plan_text

        self.plan = load_plan_text(plan_text, source=source, base_dir=base_dir, untrusted=untrusted)
        self.config = config
        self.llm = default_client(
            output_profiles=config.output_profiles, call_timeout=config.call_timeout, max_wait=config.max_retry_wait
        )
        if config.model:  # LiteLLM imported now, as the worker starts, rather than inside its first item's budget
            from stratum_core.llm._litellm import load_litellm

            load_litellm()
        self.started_cpu = time.process_time()

    def pid(self) -> int:
        return os.getpid()

    def cpu_seconds(self) -> float:
        """CPU time used since the worker was ready (its start-up, plan load and imports, left out)."""
        return time.process_time() - self.started_cpu

    async def run_item(
        self,
        flow: str,
        run_id: str,
        inputs: dict[str, Any],
        tag: dict[str, Any],
        grant: dict[str, Any] | None,
        batch_label: str,
        item_budget: dict[str, Any] | None,
    ) -> dict[str, Any]:
        from stratum_core.store import MemoryRunStore

        store = MemoryRunStore()
        engine = Engine(store=store, config=self.config, llm=self.llm)
        granted = Envelope(
            Budget(**grant) if grant else None, label=batch_label, allow_unpriced=self.config.allow_unpriced
        )
        index = tag["batch"]["index"]
        own = Envelope(
            Budget(**item_budget) if item_budget else None, parent=granted, label=f"item {index}", own_overruns=True
        )
        try:
            await engine.run(self.plan, flow, inputs, run_id=run_id, budget_parent=own, attributes=tag)
        except ValueError as e:
            return {"invalid": str(e)}
        trace = store.get_trace(run_id)
        assert trace is not None
        return {"trace": trace.model_dump(mode="json")}


@dataclass
class _Slot:
    actor: Any
    running: int = 0


class RayItemRunner:
    """Runs a batch's items on Ray worker actors (see the module's docstring).

    `lost` counts the items' tries lost with their worker; `worker_cpu_s` is the CPU time the workers used once
    ready (read when the runner closes).

    Args:
        address: `auto` (the cluster this machine belongs to), `local` (start one here: loopback only, no
            dashboard), or a cluster's address (`ray://host:10001`, `host:6379`).
        config: the engine configuration the workers use (model, api base, prices, ...).
        workers: how many worker actors (default: the cluster's CPUs); each takes one CPU.
        max_tries: how many times an item is sent to a worker before it fails as lost (another worker first; when
            every worker failed it, after a wait for Ray to restart them).
    """

    def __init__(self, address: str, *, config: EngineConfig, workers: int | None = None, max_tries: int = 5) -> None:
        if workers is not None and workers < 1:
            raise ValueError("--ray-workers must be at least 1")
        self.address = address
        self.config = config
        self.workers = workers
        self.max_tries = max_tries
        self.slots: list[_Slot] = []
        self.lost = 0
        self.worker_cpu_s = 0.0
        self._started_here = False

    def _start(self, batch: Batch) -> None:
        ray = _ray()
        if not ray.is_initialized():
            if self.address == "local":
                start_local_ray()
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            self._started_here = True
        count = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        per_worker = max(1, math.ceil(batch.concurrency / count))
        env = {name: value for name, value in os.environ.items() if name.startswith(_PASSED_ENV)}
        actor = ray.remote(_Worker).options(
            num_cpus=1,
            max_concurrency=per_worker,
            max_restarts=-1,
            max_task_retries=0,
            runtime_env={"env_vars": env} if env else None,
        )
        plan = batch.plan
        self.slots = [
            _Slot(actor.remote(plan.text, plan.source, plan.base_dir, plan.untrusted, self.config))
            for _ in range(count)
        ]

    async def start(self, batch: Batch) -> None:
        """Start the worker actors (and the cluster, or the connection to it) and wait until each is ready."""
        if not self.slots:
            self._start(batch)
        await self.worker_pids()

    async def worker_pids(self) -> list[int]:
        """The process id of each worker actor (to watch them, or, in tests, to kill one)."""
        return [int(await slot.actor.pid.remote()) for slot in self.slots]

    async def __call__(self, batch: Batch, item: BatchItem, run_id: str, envelope: Envelope) -> RunRecord:
        """Run `item` on the least busy worker, retried on another when its worker is lost; record it in the store."""
        if not self.slots:
            await self.start(batch)
        ray = _ray()
        grant = _grant(batch, envelope)
        item_budget = batch.item_budget.model_dump(exclude_none=True) if batch.item_budget else None
        tag = batch_tag(batch.id, item, total=len(batch.items))
        payload: dict[str, Any] | None = None
        failures: list[str] = []
        try:
            tried: set[int] = set()
            for attempt in range(self.max_tries):
                if len(tried) == len(self.slots):  # every worker failed this item: give them time to restart
                    await anyio.sleep(_RESTART_WAIT_S * attempt)
                    tried.clear()
                number, slot = min(enumerate(self.slots), key=lambda pair: (pair[0] in tried, pair[1].running))
                slot.running += 1
                ref = slot.actor.run_item.remote(
                    batch.flow, run_id, item.input, tag, grant.budget, batch.label, item_budget
                )
                try:
                    payload = await ref
                    break
                except anyio.get_cancelled_exc_class():
                    ray.cancel(ref)
                    error = RunCancelled("the batch was cancelled while the item ran on a worker", run_id=run_id)
                    _record_unfinished(batch, item, run_id, tag, "cancelled", error.to_dict())
                    raise
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                    self.lost += 1
                    tried.add(number)
                    failures.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                    logger.warning("batch %s: item %d lost its worker; trying another", batch.id, item.index)
                finally:
                    slot.running -= 1
        finally:
            grant.release(envelope)
        if payload is None:
            return _lost(batch, item, run_id, tag, failures)
        if "invalid" in payload:
            raise ValueError(payload["invalid"])
        trace = Trace.model_validate(payload["trace"])
        record = _write_trace(batch.store, trace)
        envelope.charge(
            tokens_in=record.tokens_in,
            tokens_out=record.tokens_out,
            cost_usd=None if record.cost_unknown else record.cost_usd,
        )
        return record

    async def aclose(self) -> None:
        """Stop the worker actors (and the cluster, when this runner started it)."""
        if not self.slots:
            return
        ray = _ray()
        with anyio.move_on_after(_CPU_READ_S):  # what the workers used, for benchmarks (a lost one is left out)
            for slot in self.slots:
                try:
                    self.worker_cpu_s += float(await slot.actor.cpu_seconds.remote())
                except ray.exceptions.RayError:
                    logger.debug("a worker's CPU time could not be read", exc_info=True)
        for slot in self.slots:
            ray.kill(slot.actor, no_restart=True)
        self.slots = []
        if self._started_here and self.address == "local":
            ray.shutdown()


@dataclass
class _Grant:
    """What an item may spend, set aside in the batch's envelope while it runs elsewhere."""

    budget: dict[str, Any] | None
    usd: float = 0.0
    tokens: int = 0

    def release(self, envelope: Envelope) -> None:
        for level in _chain(envelope):
            level.reserved.usd -= self.usd
            level.reserved.tokens -= self.tokens


def _chain(envelope: Envelope) -> list[Envelope]:
    chain = []
    current: Envelope | None = envelope
    while current is not None:
        chain.append(current)
        current = current.parent
    return chain


def _grant(batch: Batch, envelope: Envelope) -> _Grant:
    """The budget an item gets from the batch: its own budget's usd and tokens, else a share of what is left."""
    limits: dict[str, Any] = {}
    share = batch.concurrency
    own = batch.item_budget or Budget()
    left_usd, left_tokens, left_ms = envelope.remaining_usd(), envelope.remaining_tokens(), envelope.remaining_ms()
    usd = tokens = None
    if math.isfinite(left_usd):
        usd = max(0.0, min(own.usd if own.usd is not None else left_usd / share, left_usd))
        limits["usd"] = usd
    if math.isfinite(left_tokens):
        tokens = max(1, int(min(own.tokens if own.tokens is not None else left_tokens / share, left_tokens)))
        limits["tokens"] = tokens
    if math.isfinite(left_ms):
        limits["ms"] = max(1, int(left_ms))
    grant = _Grant(limits or None, usd=usd or 0.0, tokens=tokens or 0)
    for level in _chain(envelope):
        level.reserved.usd += grant.usd
        level.reserved.tokens += grant.tokens
    return grant


def _write_trace(store: RunStore, trace: Trace) -> RunRecord:
    """Record a run a worker made in the driver's store: the run (with no lease), its steps, attempts and reviews."""
    run = trace.run.model_copy(update={"lease_holder": None, "lease_expires": None})
    store.create_run(run)
    for step in trace.steps:
        store.upsert_step(StepRecord.model_validate(step.model_dump()))
    for attempt in trace.attempts:
        store.add_attempt(AttemptRecord.model_validate(attempt.model_dump()))
    for review in trace.reviews:
        store.create_review(ReviewRecord.model_validate(review.model_dump()))
    return run


def _lost(batch: Batch, item: BatchItem, run_id: str, tag: dict[str, Any], failures: list[str]) -> RunRecord:
    """The failed run of an item whose workers were all lost."""
    message = f"the item's worker was lost {len(failures)} times: " + "; ".join(failures)
    error = {"type": "WorkerLost", "message": message, "step_id": None}
    return _record_unfinished(batch, item, run_id, tag, "failed", error)


def _record_unfinished(
    batch: Batch, item: BatchItem, run_id: str, tag: dict[str, Any], status: RunStatus, error: dict[str, Any]
) -> RunRecord:
    """Record in the driver's store the run of an item no worker sent back (lost, or cancelled while it ran)."""
    now = time.time()
    record = RunRecord(
        run_id=run_id,
        flow=batch.flow,
        plan_source=batch.plan.source,
        plan_hash=batch.plan.text_hash,
        plan_text=batch.plan.text,
        input=item.input,
        status=status,
        error=error,
        created_at=now,
        finished_at=now,
        attributes=tag,
    )
    batch.store.create_run(record)
    return record
