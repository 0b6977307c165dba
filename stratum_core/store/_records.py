"""The records a run store keeps: runs, steps, attempts, reviews, and the trace that nests them.

Every record is a frozen pydantic model; times are float epoch seconds, JSON payloads are `JsonValue`. A store
hands back new records rather than mutating them, so a record read once never changes under its reader.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "AnsweredBy",
    "AttemptRecord",
    "ReviewAction",
    "ReviewRecord",
    "ReviewStatus",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "StepRecord",
    "StepStatus",
    "Trace",
    "iso_time",
    "new_id",
    "now",
]

RunStatus: TypeAlias = Literal["running", "succeeded", "failed", "paused", "cancelled"]
StepStatus: TypeAlias = Literal["running", "succeeded", "failed", "skipped", "waiting", "cancelled"]
ReviewStatus: TypeAlias = Literal["pending", "answered", "timed_out", "cancelled"]
ReviewAction: TypeAlias = Literal["accept", "decline", "cancel"]
AnsweredBy: TypeAlias = Literal["person", "agent"]
"""Who answered a review: a person (elicitation form, approval card, CLI), or the calling agent (stratum_resume)."""


def new_id() -> str:
    """A fresh identifier for a run or a review: a uuid4 as 32 hex characters."""
    return uuid.uuid4().hex


def now() -> float:
    """The current time as float epoch seconds, the unit of every `*_at` field."""
    return time.time()


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRecord(_Record):
    """One run of a flow: what was asked, how it ended, and what it cost.

    `plan_text` is kept so a run resumed in another process runs exactly the plan it started with. `owner` names
    who started it (an HTTP client's identity; None: the local user). `lease_holder` and `lease_expires` are the
    lease of the process advancing the run (see `RunStore.acquire_lease`); None when nobody is.
    """

    run_id: str = Field(default_factory=new_id, min_length=1)
    flow: str
    plan_source: str = "<string>"
    plan_hash: str
    plan_text: str
    input: JsonValue
    status: RunStatus = "running"
    output: JsonValue = None
    error: dict[str, JsonValue] | None = None
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=lambda data: data["created_at"])
    finished_at: float | None = None
    duration_ms: float | None = None
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    cost_unknown: bool = False
    model: str | None = None
    attributes: dict[str, JsonValue] = Field(default_factory=dict)
    parent_run_id: str | None = None
    owner: str | None = None
    lease_holder: str | None = None
    lease_expires: float | None = None


class StepRecord(_Record):
    """One step of a run, keyed by (run_id, step_id); `step_id` is a path such as 'reviews.security' or 'f[2]'."""

    run_id: str = Field(min_length=1)
    step_id: str = Field(min_length=1)
    function: str | None = None
    kind: str
    status: StepStatus = "running"
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    input: JsonValue = None
    output: JsonValue = None
    error: dict[str, JsonValue] | None = None
    attempts: int = Field(default=0, ge=0)
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    attributes: dict[str, JsonValue] = Field(default_factory=dict)


class AttemptRecord(_Record):
    """One call to a model within a step; `number` counts from 1 within the step.

    `cost_usd` is None when the model has no known price. `transport_*` count network retries inside this attempt,
    apart from the contract retries that make new attempts. `output_strategy` is how the output contract was asked
    of the model (json_schema, json_object, text; None for free text or when no model answered), and
    `strategy_fallbacks` one text per strategy the provider refused before it.
    `reserved_tokens` / `reserved_usd` are what the call set aside from its budget before it was made (prompt plus
    `max_tokens`, at the model's price; None: nothing reserved, or no price); a call whose usage cannot be known
    (cancelled in flight) is charged its reservation.
    """

    run_id: str = Field(min_length=1)
    step_id: str = Field(min_length=1)
    number: int = Field(ge=1)
    kind: str = "infer"
    model: str | None = None
    prompt_hash: str | None = None
    contract_hash: str | None = None
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    duration_ms: float | None = None
    started_at: float = Field(default_factory=now)
    raw_output: str | None = None
    violations: list[str] = Field(default_factory=list)
    retry_reason: str | None = None
    transport_attempts: int = Field(default=1, ge=0)
    transport_errors: list[str] = Field(default_factory=list)
    error: str | None = None
    backend: str | None = None
    output_strategy: str | None = None
    strategy_fallbacks: list[str] = Field(default_factory=list)
    reserved_tokens: int | None = Field(default=None, ge=0)
    reserved_usd: float | None = Field(default=None, ge=0)

    def otel_attributes(self) -> dict[str, Any]:
        """This attempt as OpenTelemetry GenAI span attributes, for an exporter to copy one to one.

        Attributes with no value are left out (OpenTelemetry has no null); an unknown price shows as
        `stratum.cost_unknown`.
        """
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.model,
            "gen_ai.usage.input_tokens": self.tokens_in,
            "gen_ai.usage.output_tokens": self.tokens_out,
            "stratum.contract_hash": self.contract_hash,
            "stratum.compiled_prompt_hash": self.prompt_hash,
            "stratum.cost_usd": self.cost_usd,
            "stratum.attempt": self.number,
            "stratum.output_strategy": self.output_strategy,
        }
        if self.cost_usd is None:
            attributes["stratum.cost_unknown"] = True
        return {key: value for key, value in attributes.items() if value is not None}


class ReviewRecord(_Record):
    """A decision asked of a person by a human step, and the answer once given.

    `request` holds what the person is shown: the decision's JSON schema, options, context and timeout. An answer
    (`status` 'answered') may still decline or cancel; 'timed_out' and 'cancelled' close a review nobody answered.
    `answered_by` says truthfully who answered (a person, or the calling agent) and `channel` how (elicitation,
    approval_card, cli, stratum_resume, a library sink); `request["answered_by"] == "person"` refuses agents.
    """

    review_id: str = Field(default_factory=new_id, min_length=1)
    run_id: str = Field(min_length=1)
    step_id: str = Field(min_length=1)
    question: str
    request: dict[str, JsonValue] = Field(default_factory=dict)
    status: ReviewStatus = "pending"
    action: ReviewAction | None = None
    value: JsonValue = None
    reviewer: str | None = None
    rationale: str | None = None
    created_at: float = Field(default_factory=now)
    deadline: float | None = None
    decided_at: float | None = None
    answered_by: AnsweredBy | None = None
    channel: str | None = None

    @property
    def needs_person(self) -> bool:
        """Whether only a person may answer (the human function says `answered_by: person`)."""
        return (self.request or {}).get("answered_by") == "person"


class RunPage(_Record):
    """One page of `list_runs`, newest first; pass `next_cursor` back for the next page (None: no more)."""

    runs: list[RunRecord]
    next_cursor: str | None = None


def iso_time(epoch: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the millisecond."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


def _readable(record: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    """A record as JSON, with an ISO 8601 twin (`<name>_iso`) after every epoch time field."""
    data = record.model_dump(mode="json", exclude=exclude)
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value
        if (key.endswith("_at") or key == "deadline") and value is not None:
            out[f"{key}_iso"] = iso_time(value)
    return out


class Trace(_Record):
    """Everything recorded about one run: the run, its steps, their attempts and reviews (each in recorded order)."""

    run: RunRecord
    steps: list[StepRecord]
    attempts: list[AttemptRecord]
    reviews: list[ReviewRecord]

    def to_json_dict(self, *, include_plan_text: bool = False) -> dict[str, Any]:
        """The shape a person reads: run fields, then steps with their attempts and reviews nested inside.

        Times appear as epoch seconds and as ISO 8601 (`*_iso`); a cost that is not known (a model without a
        price) is null, with `cost_unknown` (runs) or `attributes.cost_unknown` (steps) saying so; each attempt
        carries its OpenTelemetry attributes under `otel`. Attempts or reviews whose step has no record go under
        `unattached_attempts` / `unattached_reviews`, so nothing recorded is hidden. A step's attempt counter shows
        as `attempt_count`, since `attempts` holds the records. The plan text is left out unless asked for.
        """
        out = _readable(self.run, exclude=None if include_plan_text else {"plan_text"})
        if self.run.cost_unknown:  # some model had no price: there is no total to tell (as the CLI says)
            out["cost_usd"] = None
        step_ids = {step.step_id for step in self.steps}
        steps: list[dict[str, Any]] = []
        for step in self.steps:
            entry = _readable(step)
            if step.attributes.get("cost_unknown"):
                entry["cost_usd"] = None
            entry["attempt_count"] = entry.pop("attempts")
            attempts = sorted((a for a in self.attempts if a.step_id == step.step_id), key=lambda a: a.number)
            entry["attempts"] = [{**_readable(a), "otel": a.otel_attributes()} for a in attempts]
            entry["reviews"] = [_readable(r) for r in self.reviews if r.step_id == step.step_id]
            steps.append(entry)
        out["steps"] = steps
        unattached_attempts = [a for a in self.attempts if a.step_id not in step_ids]
        if unattached_attempts:
            out["unattached_attempts"] = [{**_readable(a), "otel": a.otel_attributes()} for a in unattached_attempts]
        unattached_reviews = [r for r in self.reviews if r.step_id not in step_ids]
        if unattached_reviews:
            out["unattached_reviews"] = [_readable(r) for r in unattached_reviews]
        return out
