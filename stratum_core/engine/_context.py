"""What a step executor is given: the run it belongs to, its budget, the model client, the store."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stratum_core.engine._budget import Envelope, Reservation
from stratum_core.engine._ledger import hold_reservation, release_reservation
from stratum_core.engine._types import EngineConfig
from stratum_core.plan import Plan

if TYPE_CHECKING:
    from stratum_core.llm import LLMClient
    from stratum_core.llm._protocol import Price
    from stratum_core.store import AttemptRecord, RunStore

__all__ = ["StepContext"]


async def _no_log(level: str, message: str) -> None:
    return None


@dataclass(kw_only=True)
class StepContext:
    """Everything one step's executor needs, and nothing of the scheduler.

    Attributes:
        attributes: step attributes to record in the trace (backend, iterations, cache_hit, dispatch_result, ...).
        session_cache: the `cache: session` store, shared by the runs of one engine.
        attempts: how many attempts this step has recorded so far (numbering continues across refine/quorum).
    """

    run_id: str
    step_id: str
    plan: Plan
    envelope: Envelope
    config: EngineConfig
    store: RunStore
    llm_factory: Callable[[], LLMClient]
    session_cache: MutableMapping[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    agent_available: bool = False
    previous_violations: tuple[str, ...] = ()
    log: Callable[[str, str], Awaitable[None]] = _no_log
    ledger: Callable[..., Awaitable[Reservation]] | None = None
    """Where a model call's reservation is made when the step's envelopes live elsewhere (a durable backend's
    workflow holds the run's; see `reserve`). None: in `envelope` itself."""

    @property
    def llm(self) -> LLMClient:
        """The model client (created on first use, so LiteLLM is imported only when a model is called)."""
        return self.llm_factory()

    def record_attempt(self, attempt: AttemptRecord) -> None:
        """Persist one attempt of this step."""
        self.attempts = max(self.attempts, attempt.number)
        self.store.add_attempt(attempt)

    async def reserve(self, *, model: str, prompt_tokens: int, wanted_tokens: int, price: Price | None) -> Reservation:
        """Set aside a model call's worst case in the step's envelopes (`Envelope.reserve`; BudgetExceeded if not).

        With a `ledger`, the envelopes that decide are the ledger's (on Temporal: the workflow's, which every step
        of the run reserves from, whichever worker runs it).
        """
        if self.ledger is not None:
            return await self.ledger(
                step_id=self.step_id, model=model, prompt_tokens=prompt_tokens, wanted_tokens=wanted_tokens, price=price
            )
        return self.envelope.reserve(
            step_id=self.step_id, model=model, prompt_tokens=prompt_tokens, wanted_tokens=wanted_tokens, price=price
        )

    def hold(self, reservation: Reservation, *, kind: str, started_at: float) -> str | None:
        """Write a call's reservation into the run before the call is made; its key, or None when no budget counts.

        Should the process die before the call's attempt is recorded, the run's next process charges it as spent.
        """
        if not self.envelope.counts_spend:
            return None
        key = f"{self.step_id}/{uuid.uuid4().hex[:12]}"
        hold_reservation(
            self.store, self.run_id, key, reservation, step_id=self.step_id, kind=kind, started_at=started_at
        )
        return key

    def release(self, key: str) -> None:
        """Forget a held reservation: the call's attempt is recorded."""
        release_reservation(self.store, self.run_id, key)

    def next_attempt_number(self) -> int:
        """The number the next attempt of this step gets (1-based)."""
        return self.attempts + 1
