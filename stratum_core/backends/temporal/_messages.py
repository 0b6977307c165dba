"""What crosses Temporal between a run's workflow and its activities (small: large values go by reference)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EnvelopeSnapshot",
    "ReserveAnswer",
    "ReserveRequest",
    "RunStart",
    "SettleRequest",
    "StepCall",
    "StepOutcome",
]


@dataclass
class RunStart:
    """The workflow's argument: which run to execute (everything else is in the run store)."""

    run_id: str
    heartbeat_seconds: float
    transport_retries: int
    payload_threshold: int


@dataclass
class EnvelopeSnapshot:
    """One budget envelope of the chain a step draws from, as it stood when the step's activity was scheduled."""

    label: str
    budget: dict[str, Any]
    elapsed_ms: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    cost_unknown: bool
    reserved_tokens: int
    reserved_usd: float


@dataclass
class StepCall:
    """One function call of a step, for the `stratum.call_function` activity."""

    run_id: str
    step_id: str
    function: str
    inputs: str | dict[str, Any]
    """The inputs, packed (`stratum_core.backends._payloads`)."""
    attempts: int
    previous_violations: list[str]
    envelopes: list[EnvelopeSnapshot]
    payload_threshold: int


@dataclass
class StepOutcome:
    """How the call ended: succeeded (output), failed (error, as recorded) or pending (waits for a person).

    Usage is the total of the step's recorded attempts (a retried activity's earlier tries included), so the
    workflow charges each step's spend once, however many times Temporal ran its activity.
    """

    status: str
    output: str | dict[str, Any] | None = None
    """The output of a call that succeeded, packed (`stratum_core.backends._payloads`)."""
    error: dict[str, Any] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False
    reserved_tokens: int = 0
    reserved_usd: float = 0.0
    review_id: str | None = None
    review_deadline: float | None = None


@dataclass
class ReserveRequest:
    """An activity asks its workflow to reserve one model call's worst case in the step's real envelopes."""

    key: str
    """Unique per call: `ACTIVITY_ID/TRY/N` (a retried update of the same call gets the same answer)."""
    activity_id: str
    step_id: str
    model: str
    prompt_tokens: int
    wanted_tokens: int
    input_per_token: float | None
    """The call's price (None with `output_per_token`: the model has no known price)."""
    output_per_token: float | None


@dataclass
class ReserveAnswer:
    """Granted (`error` None: what was set aside) or refused (`error`: the BudgetExceeded, as recorded)."""

    prompt_tokens: int = 0
    max_tokens: int = 0
    usd: float = 0.0
    error: dict[str, Any] | None = None


@dataclass
class SettleRequest:
    """What a reserved call used (`cost_usd` None: unknown); the workflow releases the reservation and charges it."""

    key: str
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
