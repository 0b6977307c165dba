"""Budget envelopes: time, money and tokens, shared down the tree flow -> step -> attempt.

An envelope draws from its parent: a step without its own budget gets what is left of the flow's, and a step
with one gets the smaller of the two. Time is a deadline (anyio clock) that cancel scopes enforce; cost and tokens
are charged from each response's usage and checked before every call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from stratum_core.errors import BudgetExceeded
from stratum_core.plan import Budget

__all__ = ["Envelope", "Usage"]


@dataclass
class Usage:
    """What an envelope has spent so far."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False

    @property
    def tokens(self) -> int:
        """Input and output tokens together."""
        return self.tokens_in + self.tokens_out


class Envelope:
    """A budget being spent. Children charge their parents, so the flow's totals are always current."""

    def __init__(self, budget: Budget | None = None, *, parent: Envelope | None = None, label: str = "flow") -> None:
        self.budget = budget or Budget()
        self.parent = parent
        self.label = label
        self.used = Usage()
        self._watchers: list[Callable[[BudgetExceeded], None]] = []
        self._fired = False
        self.started = anyio.current_time()
        own_deadline = self.started + self.budget.ms / 1000 if self.budget.ms is not None else math.inf
        self.deadline: float = min(own_deadline, parent.deadline if parent is not None else math.inf)

    def child(self, budget: Budget | None, *, label: str) -> Envelope:
        """An envelope for a step inside this one."""
        return Envelope(budget, parent=self, label=label)

    def remaining_ms(self) -> float:
        """Milliseconds left before the deadline (inf when unbounded)."""
        return (self.deadline - anyio.current_time()) * 1000

    def remaining_usd(self) -> float:
        """Dollars left in the tightest envelope up the chain."""
        own = self.budget.usd - self.used.cost_usd if self.budget.usd is not None else math.inf
        return min(own, self.parent.remaining_usd()) if self.parent is not None else own

    def remaining_tokens(self) -> float:
        """Tokens left in the tightest envelope up the chain."""
        own = self.budget.tokens - self.used.tokens if self.budget.tokens is not None else math.inf
        return min(own, self.parent.remaining_tokens()) if self.parent is not None else own

    def watch(self, callback: Callable[[BudgetExceeded], None]) -> None:
        """Call `callback` once, when the cost or tokens spent in this envelope go past its budget.

        The scheduler uses it to cancel the calls still in flight: a budget that has run out stops everything.
        """
        self._watchers.append(callback)

    def charge(self, *, tokens_in: int, tokens_out: int, cost_usd: float | None) -> None:
        """Record a call's usage here and in every parent; tell the watchers of an envelope that ran out."""
        exceeded: list[tuple[Envelope, BudgetExceeded]] = []
        envelope: Envelope | None = self
        while envelope is not None:
            envelope.used.tokens_in += tokens_in
            envelope.used.tokens_out += tokens_out
            if cost_usd is None:
                envelope.used.cost_unknown = True
            else:
                envelope.used.cost_usd += cost_usd
            error = envelope._overspent()
            if error is not None and envelope._watchers and not envelope._fired:
                envelope._fired = True
                exceeded.append((envelope, error))
            envelope = envelope.parent
        for owner, error in exceeded:
            for callback in owner._watchers:
                callback(error)

    def _overspent(self) -> BudgetExceeded | None:
        """The error for this envelope's own cost or token budget, when usage has gone past it."""
        if self.budget.usd is not None and self.used.cost_usd > self.budget.usd:
            return BudgetExceeded(
                f"cost budget of ${self.budget.usd} ({self.label}) ran out (used ${self.used.cost_usd:.6f})",
                dimension="usd",
                limit=self.budget.usd,
                used=self.used.cost_usd,
            )
        if self.budget.tokens is not None and self.used.tokens > self.budget.tokens:
            return BudgetExceeded(
                f"token budget of {self.budget.tokens} ({self.label}) ran out (used {self.used.tokens})",
                dimension="tokens",
                limit=self.budget.tokens,
                used=self.used.tokens,
            )
        return None

    def _owner(self, dimension: str) -> Envelope:
        """The envelope whose limit on `dimension` is the binding one (for error messages)."""
        chain: list[Envelope] = []
        envelope: Envelope | None = self
        while envelope is not None:
            chain.append(envelope)
            envelope = envelope.parent
        if dimension == "usd":
            scored = [(e.budget.usd - e.used.cost_usd, e) for e in chain if e.budget.usd is not None]
        elif dimension == "tokens":
            scored = [(e.budget.tokens - e.used.tokens, e) for e in chain if e.budget.tokens is not None]
        else:
            scored = [(e.deadline, e) for e in chain if e.budget.ms is not None]
        return min(scored, key=lambda pair: pair[0])[1] if scored else self

    def check(self, *, step_id: str, estimated_tokens: int = 0) -> None:
        """Raise BudgetExceeded if a call of about `estimated_tokens` cannot fit, before it is made."""
        if self.remaining_ms() <= 0:
            owner = self._owner("ms")
            limit = owner.budget.ms or 0
            raise BudgetExceeded(
                f"time budget of {limit} ms ({owner.label}) is spent",
                dimension="ms",
                limit=limit,
                used=(anyio.current_time() - owner.started) * 1000,
                step_id=step_id,
            )
        if self.remaining_usd() <= 0:
            owner = self._owner("usd")
            raise BudgetExceeded(
                f"cost budget of ${owner.budget.usd} ({owner.label}) is spent (used ${owner.used.cost_usd:.6f})",
                dimension="usd",
                limit=owner.budget.usd or 0.0,
                used=owner.used.cost_usd,
                step_id=step_id,
            )
        remaining_tokens = self.remaining_tokens()
        if remaining_tokens <= 0 or estimated_tokens > remaining_tokens:
            owner = self._owner("tokens")
            need = f"; the next call needs about {estimated_tokens}" if estimated_tokens else ""
            raise BudgetExceeded(
                f"token budget of {owner.budget.tokens} ({owner.label}) cannot fit the call "
                f"(used {owner.used.tokens}{need})",
                dimension="tokens",
                limit=owner.budget.tokens or 0,
                used=owner.used.tokens,
                step_id=step_id,
            )

    def timeout_error(self, *, step_id: str) -> BudgetExceeded:
        """The error for a deadline that passed while work was in flight."""
        owner = self._owner("ms")
        limit = owner.budget.ms or 0
        return BudgetExceeded(
            f"time budget of {limit} ms ({owner.label}) ran out while the step was running",
            dimension="ms",
            limit=limit,
            used=(anyio.current_time() - owner.started) * 1000,
            step_id=step_id,
        )
