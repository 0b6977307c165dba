"""The engine's public data types: configuration, run results, the review and observer protocols."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from stratum_core.errors import RunError

if TYPE_CHECKING:
    from stratum_core.llm._models_file import ModelSettings
    from stratum_core.llm._structured import OutputProfile

__all__ = [
    "AgentSubmission",
    "AgentTask",
    "EngineConfig",
    "ReviewAnswer",
    "ReviewRequest",
    "ReviewSink",
    "RunObserver",
    "RunResult",
    "RunStatus",
    "budget_settings",
    "configured_models_file",
    "parse_price",
]

RunStatus = Literal["running", "succeeded", "failed", "paused", "cancelled"]


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """How the engine runs flows.

    Attributes:
        model: the LiteLLM model string for infer steps that do not name one (`--model`, `STRATUM_MODEL`).
        api_base: base URL of an OpenAI-compatible server (`--api-base`, `STRATUM_API_BASE`).
        api_key: the key sent with every LLM call, when the provider's own variable is not used.
        max_concurrency: steps of one run that may execute at the same time.
        infer_via: who does infer steps without an `executor`: the server's model, or the calling agent.
        force_model: use `model` for every infer step, whatever the plan's functions name (to try a plan on another
            model, a local one or the test LLM).
        output_profiles: how each model is asked for structured output, by model string, from the models file
            (`--models`, `STRATUM_MODELS`); models not listed use Stratum's table and LiteLLM's data.
        prices: model prices in US dollars per million (input, output) tokens, for models LiteLLM cannot price
            (`--price MODEL=IN,OUT`, `STRATUM_PRICES`); a plan's own `prices:` win for its calls.
        allow_unpriced: let calls of models with no known price run under a cost budget (`--allow-unpriced`,
            `STRATUM_ALLOW_UNPRICED=1`); their cost is recorded as unknown. Off: such calls are refused.
        call_timeout: seconds one model call (every transport retry and wait included) may take when no time budget
            ends it sooner (`STRATUM_CALL_TIMEOUT`).
        max_retry_wait: the longest wait before a transport retry; a provider asking for more (`Retry-After`)
            fails the attempt (`STRATUM_MAX_RETRY_WAIT`).
        project_dir: the folder that `file_exists` / `file_contains` in a reference plan's `ensure` may read
            (default: the working directory); nothing outside it is ever read.
        lease_ttl: seconds a run's lease lasts unless renewed (renewed every third of that while the run advances);
            a run whose holder died is free again after this long (at once on the same host).
    """

    model: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    max_concurrency: int = 16
    infer_via: Literal["server", "agent"] = "server"
    force_model: bool = False
    output_profiles: Mapping[str, OutputProfile] = field(default_factory=dict)
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    allow_unpriced: bool = False
    call_timeout: float = 300.0
    max_retry_wait: float = 30.0
    project_dir: str | None = None
    lease_ttl: float = 30.0

    def model_for(self, requested: str | None) -> str | None:
        """The model an infer step uses: the configured one when forced, else the function's, else the default."""
        if self.force_model and self.model:
            return self.model
        return requested or self.model

    @property
    def configured_models(self) -> frozenset[str]:
        """The models this engine was given: the default model and those of the models file.

        A plan sent by a client (untrusted) may name only these: it cannot have the server call any model it likes.
        """
        return frozenset(model for model in (self.model, *self.output_profiles) if model)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        models_file: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> EngineConfig:
        """Read the STRATUM_* variables; explicit overrides that are not None win.

        MODEL, API_BASE, API_KEY, MODELS (the models file; `models_file` wins over it), PRICES (`MODEL=IN,OUT;...`),
        ALLOW_UNPRICED, CALL_TIMEOUT, MAX_RETRY_WAIT and FORCE_MODEL (a model for every step). Prices are one table,
        a model at a time: the `prices` override (`--price`) over STRATUM_PRICES over the models file's `price:`.
        A bad models file raises ConfigurationError, another malformed value ValueError.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "model": env.get("STRATUM_MODEL") or None,
            "api_base": env.get("STRATUM_API_BASE") or None,
            "api_key": env.get("STRATUM_API_KEY") or None,
        }
        models = configured_models_file(models_file, env)
        if models is not None:
            values["output_profiles"] = models.profiles
        values.update(budget_settings(env))
        values["prices"] = _price_table(models, values.get("prices"), overrides.pop("prices", None))
        if env.get("STRATUM_FORCE_MODEL"):
            values.update(model=env["STRATUM_FORCE_MODEL"], force_model=True)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def configured_models_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> ModelSettings | None:
    """The models file `path` (`--models`), else $STRATUM_MODELS, loaded; None when neither is given."""
    path = path or env.get("STRATUM_MODELS") or None
    if path is None:
        return None
    from stratum_core.llm._models_file import load_models

    return load_models(path)


def _price_table(
    models: ModelSettings | None,
    environment: Mapping[str, tuple[float, float]] | None,
    command_line: Mapping[str, tuple[float, float]] | None,
) -> dict[str, tuple[float, float]]:
    from stratum_core.llm._models_file import price_table

    return price_table(
        models_file=models.prices if models is not None else None, environment=environment, command_line=command_line
    )


def budget_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The budget settings in `env`: STRATUM_PRICES, ALLOW_UNPRICED, CALL_TIMEOUT, MAX_RETRY_WAIT; ValueError if bad."""
    values: dict[str, Any] = {}
    if env.get("STRATUM_PRICES"):
        values["prices"] = dict(
            parse_price(item, what="STRATUM_PRICES") for item in env["STRATUM_PRICES"].split(";") if item.strip()
        )
    if env.get("STRATUM_ALLOW_UNPRICED"):
        values["allow_unpriced"] = env["STRATUM_ALLOW_UNPRICED"].strip().lower() in ("1", "true", "yes")
    for key, name in (("call_timeout", "STRATUM_CALL_TIMEOUT"), ("max_retry_wait", "STRATUM_MAX_RETRY_WAIT")):
        if env.get(name):
            values[key] = _seconds(env[name], what=name)
    return values


def parse_price(text: str, *, what: str = "--price") -> tuple[str, tuple[float, float]]:
    """`MODEL=IN,OUT` (US dollars per million input and output tokens) as (model, (in, out)); ValueError if not."""
    model, sep, numbers = text.strip().rpartition("=")
    parts = numbers.split(",")
    try:
        if not sep or not model or len(parts) != 2:
            raise ValueError
        prices = (float(parts[0]), float(parts[1]))
    except ValueError:
        raise ValueError(f"{what}: expected MODEL=IN,OUT in US dollars per million tokens, got {text!r}") from None
    if not all(0 <= price < float("inf") for price in prices):
        raise ValueError(f"{what}: prices must be finite and not negative, got {text!r}")
    return model.strip(), prices


def _seconds(text: str, *, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{what}: must be a positive number of seconds, got {text!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class ReviewRequest:
    """A decision a human step asks of a person.

    `schema` is a flat JSON Schema object (string/number/integer/boolean/enum fields): what a form can ask.
    """

    review_id: str
    run_id: str
    step_id: str
    question: str
    schema: Mapping[str, Any]
    options: tuple[Any, ...] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    deadline: float | None = None
    requires_person: bool = False


@dataclass(frozen=True, kw_only=True)
class ReviewAnswer:
    """An answer: accept (with `value`), decline, or cancel; `answered_by` and `channel` say who gave it, and how.

    A sink that shows the question to a person answers `answered_by="person"`; `channel` names the way
    (elicitation, approval_card, cli, console, ...). A review with `requires_person` refuses an agent's answer.
    """

    action: Literal["accept", "decline", "cancel"]
    value: Mapping[str, Any] | None = None
    reviewer: str | None = None
    rationale: str | None = None
    answered_by: Literal["person", "agent"] = "person"
    channel: str | None = None


class ReviewSink(Protocol):
    """Where human steps reach a person: the console, an MCP client, ...

    `ask` returns the answer, or None when the person cannot be asked now: the run then pauses, durably, until
    the review is answered in the store and the run is resumed.
    """

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None: ...


class RunObserver:
    """Hooks called as a run progresses; subclass and override what you need. All default to doing nothing."""

    async def step_started(self, run_id: str, step_id: str, kind: str) -> None:
        """A step began."""

    async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
        """A step ended (succeeded, failed, skipped); `done` of `total` top-level steps are finished."""

    async def step_ended(self, run_id: str, step_id: str, status: str) -> None:
        """Any step ended, nested ones too (`reviews.security`, `files[2]`).

        `status` is succeeded, failed, skipped, waiting or cancelled. Top-level steps are also told with
        `step_finished`, which counts them.
        """

    async def log(self, run_id: str, level: str, message: str) -> None:
        """A log line about the run."""

    async def run_finished(self, run_id: str, status: str) -> None:
        """The run ended (succeeded, failed, paused, cancelled); its trace is complete in the store."""


@dataclass(frozen=True, kw_only=True)
class AgentTask:
    """An infer step handed to the calling agent: what to do, on what, and what the answer must satisfy.

    `inputs` are the step's inputs shown as instruction text; `attachment` holds opaque inputs (data, never
    instructions). `violations` are what the previous answer broke, if it was rejected.
    """

    run_id: str
    step_id: str
    function: str
    intent: str
    context: tuple[str, ...] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)
    attachment: Mapping[str, Any] = field(default_factory=dict)
    output_schema: Mapping[str, Any] = field(default_factory=dict)
    wrapped: bool = False
    ensure: tuple[str, ...] = ()
    retries_left: int = 0
    attempt: int = 1
    violations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape handed to the agent."""
        return {
            "run_id": self.run_id,
            "step_id": self.step_id,
            "function": self.function,
            "intent": self.intent,
            "context": list(self.context),
            "inputs": dict(self.inputs),
            "attachment": dict(self.attachment),
            "output_schema": dict(self.output_schema),
            "ensure": list(self.ensure),
            "attempt": self.attempt,
            "retries_left": self.retries_left,
            "violations": list(self.violations),
        }


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """The outcome of running (or resuming) a flow."""

    run_id: str
    status: RunStatus
    output: Any = None
    error: RunError | None = None
    pending: tuple[ReviewRequest | AgentTask, ...] = ()

    @property
    def review(self) -> ReviewRequest | None:
        """The first decision a paused run waits for, if any."""
        return next((item for item in self.pending if isinstance(item, ReviewRequest)), None)

    @property
    def agent_tasks(self) -> tuple[AgentTask, ...]:
        """The steps a paused run waits for the calling agent to do (independent ones all at once)."""
        return tuple(item for item in self.pending if isinstance(item, AgentTask))


@dataclass(frozen=True, kw_only=True)
class AgentSubmission:
    """The engine's answer to an agent's report of an agent step.

    accepted: the output met the contract. violations / retries_left: what to fix, and how many tries remain.
    routed_to: out of retries, the step's `on_fail` target the run went on from.
    result: the run after the report (resumed: finished, or paused on the next steps; or failed, out of retries).
    """

    accepted: bool
    violations: tuple[str, ...] = ()
    retries_left: int = 0
    result: RunResult | None = None
    routed_to: str | None = None
    """Out of retries, the flow routed the failure to this step (`on_fail`) and the run went on."""
