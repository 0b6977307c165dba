"""Budget envelopes: time, money and tokens, shared down the tree flow -> step -> attempt, reserved before each call.

An envelope draws from its parent: a step without its own budget gets what is left of the flow's, and a step
with one gets the smaller of the two. Time is a deadline (anyio clock) that cancel scopes enforce. Money and tokens
fail closed: before a model call, `reserve` sets aside the call's worst case (its prompt, counted with the model's
tokenizer, plus the `max_tokens` it will ask for, at the model's price) in every envelope up the chain, and refuses
the call when that cannot fit; `settle` then replaces the reservation with what the call really used. Calls made at
the same time (parallel branches, quorum samples, debate agents) reserve from the same envelopes, so together they
cannot overspend.

A budget in `audit` mode never refuses or cancels anything: it records each overrun (`overruns` on the root
envelope) and lets the run go on. An envelope can start from what earlier processes spent (`spent`, `elapsed_ms`),
so a paused or resumed run keeps counting from where it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from stratum_core.errors import BudgetExceeded
from stratum_core.llm._protocol import Price
from stratum_core.plan import Budget

__all__ = ["MIN_OUTPUT_TOKENS", "PROMPT_MARGIN", "Envelope", "Reservation", "Usage"]

MIN_OUTPUT_TOKENS = 16
"""A call is refused when what is left cannot pay for at least this many output tokens (or `max_tokens`, if less)."""
PROMPT_MARGIN = (0.05, 16)
"""Reserved on top of the counted prompt: 5% and 16 tokens, for the provider's own framing of messages and schema."""


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

    def add(self, other: Usage) -> None:
        """Add `other` to this usage."""
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cost_usd += other.cost_usd
        self.cost_unknown = self.cost_unknown or other.cost_unknown


@dataclass
class Reservation:
    """What one model call has set aside: `prompt_tokens` + `max_tokens` tokens, and `usd` (0 when unpriced)."""

    envelope: Envelope
    model: str
    prompt_tokens: int
    max_tokens: int
    usd: float
    price: Price | None
    settled: bool = False

    @property
    def tokens(self) -> int:
        """Tokens set aside: the prompt and the whole answer the call may produce."""
        return self.prompt_tokens + self.max_tokens

    def cost_of(self, tokens_in: int, tokens_out: int, reported: float | None) -> float | None:
        """A call's cost: what the provider's price map said, else the given price; None when neither is known."""
        if reported is not None:
            return reported
        return self.price.cost(tokens_in, tokens_out) if self.price is not None else None


@dataclass
class _Reserved:
    tokens: int = 0
    usd: float = 0.0


@dataclass
class _Root:
    """What every envelope of one run shares: the overruns an audit budget recorded."""

    overruns: list[dict[str, Any]] = field(default_factory=list)


class Envelope:
    """A budget being spent. Children charge their parents, so the flow's totals are always current.

    Args:
        budget: the limits; None is unbounded.
        parent: the envelope this one draws from.
        label: how errors name it ("flow 'triage'", "step 'draft'").
        spent: what earlier processes already spent in this envelope (a resumed run).
        elapsed_ms: time earlier processes already used of this envelope's `ms`.
        allow_unpriced: calls of models without a known price may run under a cost budget (and count as cost
            unknown); else such a call is refused.
        own_overruns: keep the overruns an audit budget records apart from the parent's (a run inside a batch
            records its own, not every item's).
    """

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        parent: Envelope | None = None,
        label: str = "flow",
        spent: Usage | None = None,
        elapsed_ms: float = 0.0,
        allow_unpriced: bool = False,
        own_overruns: bool = False,
    ) -> None:
        self.budget = budget or Budget()
        self.parent = parent
        self.label = label
        self.used = Usage()
        if spent is not None:
            self.used.add(spent)
        self.reserved = _Reserved()  # held now by calls in flight
        self.reserved_total = _Reserved()  # every reservation this process made here, for the trace
        self.elapsed_before_ms = elapsed_ms
        self._root: _Root = parent._root if parent is not None and not own_overruns else _Root()
        inherited_mode = parent.mode if parent is not None else "enforce"
        self.mode: str = self.budget.mode or inherited_mode
        self.allow_unpriced: bool = (
            allow_unpriced or self.budget.unpriced == "allow" or (parent is not None and parent.allow_unpriced)
        )
        self._watchers: list[Callable[[BudgetExceeded], None]] = []
        self._fired = False
        self._audited: set[str] = set()
        self.started = anyio.current_time()
        own_deadline = math.inf
        if self.budget.ms is not None and self.enforced:
            own_deadline = self.started + (self.budget.ms - elapsed_ms) / 1000
        self.deadline: float = min(own_deadline, parent.deadline if parent is not None else math.inf)

    @property
    def enforced(self) -> bool:
        """True unless this budget is in audit mode (records overruns, stops nothing)."""
        return self.mode != "audit"

    @property
    def overruns(self) -> list[dict[str, Any]]:
        """Every overrun an audit budget of this run recorded (shared by the whole envelope tree)."""
        return self._root.overruns

    def child(
        self, budget: Budget | None, *, label: str, spent: Usage | None = None, elapsed_ms: float = 0.0
    ) -> Envelope:
        """An envelope for a step inside this one (`spent`, `elapsed_ms`: what earlier processes used of it)."""
        return Envelope(budget, parent=self, label=label, spent=spent, elapsed_ms=elapsed_ms)

    @property
    def counts_spend(self) -> bool:
        """True when some envelope up the chain has a cost or token budget (so what a call reserves matters)."""
        return any(e.budget.usd is not None or e.budget.tokens is not None for e in self._chain())

    def _chain(self) -> list[Envelope]:
        chain: list[Envelope] = []
        envelope: Envelope | None = self
        while envelope is not None:
            chain.append(envelope)
            envelope = envelope.parent
        return chain

    def elapsed_ms(self) -> float:
        """Milliseconds this envelope has used, earlier processes included."""
        return self.elapsed_before_ms + (anyio.current_time() - self.started) * 1000

    def remaining_ms(self) -> float:
        """Milliseconds left before the deadline (inf when unbounded)."""
        return (self.deadline - anyio.current_time()) * 1000

    def remaining_usd(self) -> float:
        """Dollars left in the tightest enforced envelope up the chain, reservations taken out."""
        lefts = [e._left_usd() for e in self._chain() if e.enforced and e.budget.usd is not None]
        return min(lefts, default=math.inf)

    def remaining_tokens(self) -> float:
        """Tokens left in the tightest enforced envelope up the chain, reservations taken out."""
        lefts = [e._left_tokens() for e in self._chain() if e.enforced and e.budget.tokens is not None]
        return min(lefts, default=math.inf)

    def _left_usd(self) -> float:
        return (self.budget.usd or 0.0) - self.used.cost_usd - self.reserved.usd

    def _left_tokens(self) -> int:
        return (self.budget.tokens or 0) - self.used.tokens - self.reserved.tokens

    def watch(self, callback: Callable[[BudgetExceeded], None]) -> None:
        """Call `callback` once, when the cost or tokens spent in this envelope go past its (enforced) budget.

        The scheduler uses it to cancel the calls still in flight: a budget that has run out stops everything. With
        reservations this only happens when a provider answers with more than the call reserved.
        """
        self._watchers.append(callback)

    # -- reserve and settle ------------------------------------------------------------------------------------

    def limits_tokens_or_cost(self) -> bool:
        """Whether a budget up the chain limits tokens or cost: then a call's reservation needs its exact prompt count.

        Without such a limit, the prompt count changes neither what a call may answer nor whether it fits, so the
        engine reserves with a cheaper upper bound (see `BoundingClient`).
        """
        return any(e.enforced and (e.budget.tokens is not None or e.budget.usd is not None) for e in self._chain())

    def reserve(
        self,
        *,
        step_id: str,
        model: str,
        prompt_tokens: int,
        wanted_tokens: int,
        price: Price | None,
    ) -> Reservation:
        """Set aside a call's worst case in every envelope up the chain, or raise BudgetExceeded if it cannot fit.

        `prompt_tokens` is the counted prompt (a margin is added here); `wanted_tokens` the most output the call
        would ask for. The reservation's `max_tokens` is that, cut down to what the tightest budget can still pay
        for; the call is refused when that is less than MIN_OUTPUT_TOKENS (or `wanted_tokens`, if smaller).
        """
        self.check_time(step_id=step_id)
        chain = self._chain()
        enforcing = [e for e in chain if e.enforced]
        prompt = prompt_tokens + math.ceil(prompt_tokens * PROMPT_MARGIN[0]) + PROMPT_MARGIN[1]
        costed = [e for e in enforcing if e.budget.usd is not None]
        if price is None and costed and not self.allow_unpriced:
            owner = min(costed, key=lambda e: e._left_usd())
            raise BudgetExceeded(
                f"model '{model}' has no known price, so its calls cannot be reserved against the cost budget of "
                f"${owner.budget.usd:g} ({owner.label}); no request was made (give the model's price per million "
                "tokens: `prices:` in the plan, or --price MODEL=IN,OUT for the server; or allow unpriced calls: "
                "`unpriced: allow` in the budget, or --allow-unpriced)",
                dimension="usd",
                limit=owner.budget.usd or 0.0,
                used=owner.used.cost_usd,
                step_id=step_id,
                budget=owner.label,
                left=max(0.0, owner._left_usd()),
            )
        max_tokens = wanted_tokens
        binding: tuple[Envelope, str] | None = None
        for envelope in enforcing:
            if envelope.budget.tokens is not None:
                cap = envelope._left_tokens() - prompt
                if cap < max_tokens:
                    max_tokens, binding = cap, (envelope, "tokens")
            if envelope.budget.usd is not None and price is not None:
                after_prompt = envelope._left_usd() - prompt * price.input_per_token
                if price.output_per_token > 0:
                    cap = math.floor(after_prompt / price.output_per_token) if after_prompt >= 0 else -1
                else:
                    cap = wanted_tokens if after_prompt >= 0 else -1
                if cap < max_tokens:
                    max_tokens, binding = cap, (envelope, "usd")
        least = min(MIN_OUTPUT_TOKENS, wanted_tokens)
        if binding is not None and max_tokens < least:
            raise self._refusal(binding, step_id=step_id, prompt=prompt, least=least, price=price)
        usd = price.cost(prompt, max_tokens) if price is not None else 0.0
        for envelope in chain:
            envelope.reserved.tokens += prompt + max_tokens
            envelope.reserved.usd += usd
            envelope.reserved_total.tokens += prompt + max_tokens
            envelope.reserved_total.usd += usd
        return Reservation(self, model, prompt, max_tokens, usd, price)

    def _refusal(
        self, binding: tuple[Envelope, str], *, step_id: str, prompt: int, least: int, price: Price | None
    ) -> BudgetExceeded:
        owner, dimension = binding
        pending = " (other calls in flight hold part of it)" if owner.reserved.tokens else ""
        if dimension == "tokens":
            need = prompt + least
            left = owner._left_tokens()
            return BudgetExceeded(
                f"the call cannot fit in the token budget of {owner.budget.tokens} ({owner.label}): it reserves "
                f"{need} tokens ({prompt} for the prompt, at least {least} for the answer) and {max(0, left)} "
                f"{'is' if left == 1 else 'are'} left{pending}; no request was made",
                dimension="tokens",
                limit=owner.budget.tokens or 0,
                used=owner.used.tokens,
                step_id=step_id,
                budget=owner.label,
                reserved=need,
                left=max(0, left),
            )
        assert price is not None
        need_usd = price.cost(prompt, least)
        left_usd = max(0.0, owner._left_usd())
        return BudgetExceeded(
            f"the call cannot fit in the cost budget of ${owner.budget.usd:g} ({owner.label}): it reserves "
            f"${need_usd:.6f} ({prompt} prompt tokens and at least {least} answer tokens at the model's price) and "
            f"${left_usd:.6f} is left{pending}; no request was made",
            dimension="usd",
            limit=owner.budget.usd or 0.0,
            used=owner.used.cost_usd,
            step_id=step_id,
            budget=owner.label,
            reserved=need_usd,
            left=left_usd,
        )

    def settle(
        self, reservation: Reservation, *, tokens_in: int, tokens_out: int, cost_usd: float | None
    ) -> tuple[int, int, float | None]:
        """Release `reservation` and charge what the call used; returns (tokens_in, tokens_out, cost) charged."""
        if reservation.settled:
            return tokens_in, tokens_out, cost_usd
        reservation.settled = True
        for envelope in self._chain():
            envelope.reserved.tokens -= reservation.tokens
            envelope.reserved.usd -= reservation.usd
        cost = reservation.cost_of(tokens_in, tokens_out, cost_usd)
        self.charge(tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost)
        return tokens_in, tokens_out, cost

    def settle_unknown(self, reservation: Reservation) -> tuple[int, int, float | None]:
        """Settle a call whose usage cannot be known (cancelled in flight, impossible usage): its whole reservation."""
        cost = reservation.usd if reservation.price is not None else None
        return self.settle(
            reservation, tokens_in=reservation.prompt_tokens, tokens_out=reservation.max_tokens, cost_usd=cost
        )

    def charge(self, *, tokens_in: int, tokens_out: int, cost_usd: float | None) -> None:
        """Record a call's usage here and in every parent; tell the watchers of an envelope that ran out."""
        exceeded: list[tuple[Envelope, BudgetExceeded]] = []
        for envelope in self._chain():
            envelope.used.tokens_in += tokens_in
            envelope.used.tokens_out += tokens_out
            if cost_usd is None:
                envelope.used.cost_unknown = True
            else:
                envelope.used.cost_usd += cost_usd
            error = envelope._overspent()
            if error is None:
                continue
            if not envelope.enforced:
                envelope._audit(error)
            elif envelope._watchers and not envelope._fired:
                envelope._fired = True
                exceeded.append((envelope, error))
        for owner, error in exceeded:
            for callback in owner._watchers:
                callback(error)

    def charge_remote(self, used: Usage, *, reserved_tokens: int, reserved_usd: float) -> None:
        """Charge what calls made elsewhere used (a durable backend's activity), and note what they reserved there.

        The calls reserved and settled against a copy of this envelope chain where they ran; here their usage is
        charged once, as `settle` would have, so watchers and audit budgets see it the same way.
        """
        for envelope in self._chain():
            envelope.reserved_total.tokens += reserved_tokens
            envelope.reserved_total.usd += reserved_usd
        if used.tokens or used.cost_usd:
            self.charge(tokens_in=used.tokens_in, tokens_out=used.tokens_out, cost_usd=used.cost_usd)
        if used.cost_unknown:
            self.charge(tokens_in=0, tokens_out=0, cost_usd=None)

    def _audit(self, error: BudgetExceeded) -> None:
        """Record an overrun of an audit budget, once per dimension (the latest usage is kept current)."""
        entry = {
            "budget": self.label,
            "dimension": error.dimension,
            "limit": error.limit,
            "used": error.used,
        }
        if error.dimension in self._audited:
            for existing in self.overruns:
                if existing["budget"] == self.label and existing["dimension"] == error.dimension:
                    existing["used"] = error.used
            return
        self._audited.add(error.dimension)
        self.overruns.append(entry)

    def audit_time(self) -> None:
        """For an audit budget: record an overrun if its time budget was passed (called when its work ends)."""
        if self.enforced or self.budget.ms is None:
            return
        elapsed = self.elapsed_ms()
        if elapsed > self.budget.ms:
            self._audit(BudgetExceeded("", dimension="ms", limit=self.budget.ms, used=round(elapsed, 1)))

    def _overspent(self) -> BudgetExceeded | None:
        """The error for this envelope's own cost or token budget, when usage has gone past it."""
        if self.budget.usd is not None and self.used.cost_usd > self.budget.usd:
            return BudgetExceeded(
                f"cost budget of ${self.budget.usd:g} ({self.label}) ran out (used ${self.used.cost_usd:.6f})",
                dimension="usd",
                limit=self.budget.usd,
                used=self.used.cost_usd,
                budget=self.label,
            )
        if self.budget.tokens is not None and self.used.tokens > self.budget.tokens:
            return BudgetExceeded(
                f"token budget of {self.budget.tokens} ({self.label}) ran out (used {self.used.tokens})",
                dimension="tokens",
                limit=self.budget.tokens,
                used=self.used.tokens,
                budget=self.label,
            )
        return None

    def _time_owner(self) -> Envelope:
        """The envelope whose deadline is the binding one (for error messages)."""
        timed = [e for e in self._chain() if e.budget.ms is not None and e.enforced]
        return min(timed, key=lambda e: e.deadline) if timed else self

    def check_time(self, *, step_id: str) -> None:
        """Raise BudgetExceeded if the time budget is already spent."""
        if self.remaining_ms() <= 0:
            owner = self._time_owner()
            limit = owner.budget.ms or 0
            raise BudgetExceeded(
                f"time budget of {limit} ms ({owner.label}) is spent",
                dimension="ms",
                limit=limit,
                used=owner.elapsed_ms(),
                step_id=step_id,
                budget=owner.label,
            )

    def check(self, *, step_id: str) -> None:
        """Raise BudgetExceeded if any dimension is already spent (for work that makes no model call of its own)."""
        self.check_time(step_id=step_id)
        for envelope in self._chain():
            if envelope.enforced and (error := envelope._overspent()) is not None:
                error.step_id = step_id
                raise error

    def timeout_error(self, *, step_id: str) -> BudgetExceeded:
        """The error for a deadline that passed while work was in flight."""
        owner = self._time_owner()
        limit = owner.budget.ms or 0
        return BudgetExceeded(
            f"time budget of {limit} ms ({owner.label}) ran out while the step was running",
            dimension="ms",
            limit=limit,
            used=owner.elapsed_ms(),
            step_id=step_id,
            budget=owner.label,
        )
