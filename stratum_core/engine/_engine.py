"""The Engine: runs flows of loaded plans, durably, within budget."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio

from stratum_core.engine._budget import Envelope
from stratum_core.engine._human import AwaitingReview
from stratum_core.engine._scheduler import FlowExecution, RunContext
from stratum_core.engine._types import EngineConfig, ReviewSink, RunObserver, RunResult
from stratum_core.engine._validation import schema_violations
from stratum_core.errors import RunCancelled, RunError, StratumError
from stratum_core.plan import Plan
from stratum_core.plan._schema import fields_schema
from stratum_core.store import MemoryRunStore, RunRecord, StoreError

if TYPE_CHECKING:
    from stratum_core.llm import LLMClient
    from stratum_core.store import RunStore

__all__ = ["Engine"]


class Engine:
    """Runs flows. One engine serves many concurrent runs; its `cache: session` entries live as long as it does.

    Args:
        store: where runs, steps, attempts and reviews are persisted (default: an in-memory store).
        llm: the model client (default: LiteLLM, created on the first infer call).
        config: model defaults and limits.
        review_sink: how human steps reach a person when a run does not pass its own.
    """

    def __init__(
        self,
        *,
        store: RunStore | None = None,
        llm: LLMClient | None = None,
        config: EngineConfig | None = None,
        review_sink: ReviewSink | None = None,
    ) -> None:
        self.store: RunStore = store if store is not None else MemoryRunStore()
        self.config = config or EngineConfig()
        self.review_sink = review_sink
        self._llm = llm
        self._session_cache: dict[str, Any] = {}

    def _llm_client(self) -> LLMClient:
        if self._llm is None:
            from stratum_core.llm import LiteLLMClient

            self._llm = LiteLLMClient()
        return self._llm

    def input_errors(self, plan: Plan, flow: str, inputs: Mapping[str, Any]) -> list[str]:
        """One line per field of `inputs` that does not match the flow's input schema (empty when valid)."""
        if flow not in plan.flows:
            return [f"unknown flow {flow!r} (flows: {', '.join(plan.flows) or 'none'})"]
        schema = fields_schema(plan.flows[flow].input, plan.contracts)
        return [v.removeprefix("schema: input").lstrip(".: ") or v for v in schema_violations(inputs, schema, root="input")]

    async def run(
        self,
        plan: Plan,
        flow: str,
        inputs: Mapping[str, Any],
        *,
        observer: RunObserver | None = None,
        review_sink: ReviewSink | None = None,
        run_id: str | None = None,
    ) -> RunResult:
        """Run `flow` of `plan` to the end, a pause for a person, a failure or a cancellation.

        Failures are returned (status 'failed', `error` set), not raised; cancelling the calling task cancels the
        run, records it as cancelled, and re-raises the cancellation. Invalid inputs raise ValueError.
        """
        errors = self.input_errors(plan, flow, inputs)
        if errors:
            raise ValueError(f"invalid input for flow {flow!r}: " + "; ".join(errors))
        now = time.time()
        record = RunRecord(
            run_id=run_id or uuid.uuid4().hex,
            flow=flow,
            plan_source=plan.source,
            plan_hash=plan.text_hash,
            plan_text=plan.text,
            input=dict(inputs),
            status="running",
            created_at=now,
            updated_at=now,
            model=self.config.model,
        )
        self.store.create_run(record)
        return await self._execute(plan, record, {}, {}, observer=observer, review_sink=review_sink)

    async def resume(
        self, run_id: str, *, observer: RunObserver | None = None, review_sink: ReviewSink | None = None
    ) -> RunResult:
        """Continue a paused (or interrupted) run from its checkpoint, without re-running finished steps.

        The plan is re-read from the run's stored text. Answered reviews are used; unanswered ones are asked again
        through the sink (or the run pauses again).
        """
        from stratum_core.plan import load_plan_text

        record = self.store.get_run(run_id)
        if record is None:
            raise StoreError(f"no run with id {run_id!r}")
        if record.status not in ("paused", "running"):
            raise StoreError(f"run {run_id} is {record.status}; only paused or interrupted runs can be resumed")
        plan = load_plan_text(record.plan_text, source=record.plan_source)
        trace = self.store.get_trace(run_id)
        steps = trace.steps if trace is not None else []
        completed = {s.step_id: s for s in steps if s.status in ("succeeded", "skipped")}
        attempts: dict[str, int] = {}
        for attempt in trace.attempts if trace is not None else []:  # numbering continues after a crash
            attempts[attempt.step_id] = max(attempts.get(attempt.step_id, 0), attempt.number)
        self.store.update_run(run_id, status="running", updated_at=time.time())
        return await self._execute(plan, record, completed, attempts, observer=observer, review_sink=review_sink)

    async def _execute(
        self,
        plan: Plan,
        record: RunRecord,
        completed: dict[str, Any],
        previous_attempts: dict[str, int],
        *,
        observer: RunObserver | None,
        review_sink: ReviewSink | None,
    ) -> RunResult:
        flow = plan.flows[record.flow]
        context = RunContext(
            run_id=record.run_id,
            plan=plan,
            store=self.store,
            config=self.config,
            llm_factory=self._llm_client,
            session_cache=self._session_cache,
            review_sink=review_sink if review_sink is not None else self.review_sink,
            observer=observer or RunObserver(),
            limiter=anyio.CapacityLimiter(flow.max_concurrency or self.config.max_concurrency),
            completed=completed,
            previous_attempts=previous_attempts,
        )
        envelope = Envelope(flow.budget, label=f"flow '{flow.name}'")
        inputs = record.input if isinstance(record.input, dict) else {}
        execution = FlowExecution(context, flow, inputs, envelope)
        run_id = record.run_id

        def finish(status: str, **fields: Any) -> None:
            now = time.time()
            totals = self._totals(run_id)
            self.store.update_run(run_id, status=status, updated_at=now, **totals, **fields)

        try:
            output = await execution.execute()
        except AwaitingReview as pause:
            finish("paused")
            return RunResult(run_id=run_id, status="paused", review=pause.request)
        except RunError as error:
            error.run_id = run_id
            finish("failed", error=error.to_dict(), finished_at=time.time(),
                   duration_ms=(time.time() - record.created_at) * 1000)
            return RunResult(run_id=run_id, status="failed", error=error)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                cancelled = RunCancelled("the run was cancelled", run_id=run_id)
                finish("cancelled", error=cancelled.to_dict(), finished_at=time.time())
            raise
        except StratumError as error:  # configuration problems found while running
            failure = RunError(str(error), run_id=run_id)
            failure.__cause__ = error
            finish("failed", error={"type": type(error).__name__, "message": str(error), "step_id": None},
                   finished_at=time.time())
            return RunResult(run_id=run_id, status="failed", error=failure)
        finish("succeeded", output=output, finished_at=time.time(),
               duration_ms=(time.time() - record.created_at) * 1000)
        return RunResult(run_id=run_id, status="succeeded", output=output)

    def _totals(self, run_id: str) -> dict[str, Any]:
        """Tokens and cost of a run, summed over its attempts (so resumed runs count every process's work)."""
        trace = self.store.get_trace(run_id)
        attempts = trace.attempts if trace is not None else []
        return {
            "tokens_in": sum(a.tokens_in for a in attempts),
            "tokens_out": sum(a.tokens_out for a in attempts),
            "cost_usd": sum(a.cost_usd or 0.0 for a in attempts),
            "cost_unknown": any(a.cost_usd is None for a in attempts),
        }
