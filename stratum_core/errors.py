"""Every error Stratum raises, as one tree.

```
StratumError
├── PlanError                     a plan failed to load or check; carries every Problem at once
└── RunError                      something went wrong while a flow ran; names the run and the step
    ├── ConfigurationError        the engine cannot run a step as configured (no model, ...); says how to fix it
    ├── PreconditionFailed        a `given` condition was false; never retried
    ├── PostconditionFailed       `ensure` still failed when the retries ran out; carries the history
    ├── ParseFailure              the model's answer never parsed as the output contract
    ├── BudgetExceeded            time, money or tokens ran out (or a call could not fit)
    ├── ConvergenceFailure        a refine loop reached max_iterations without meeting `until`
    ├── ConsensusFailure          a quorum did not reach its threshold
    ├── StabilityAssertionError   samples of an unstable function did not agree enough
    ├── ParallelValidationFailed  a parallel group's `require` or `validate` was not met
    ├── HITLTimeoutError          a person did not answer in time and on_timeout is `raise`
    ├── HumanRejected             a person declined or cancelled a decision
    ├── GateKilled                a gate's decision was kill (a reference plan's `mode: gate` step)
    ├── RoutingLimitExceeded      a flow was sent back (revise, on_fail, next) more often than it may be
    ├── ComputeError              a compute step raised; the original traceback is kept
    ├── ExpressionError           an expression failed at run time (bounds, type errors)
    ├── LLMError                  the model could not be reached, even after transport retries
    ├── AgentStepRequired         an infer step must be done by the calling agent (no model here)
    └── RunCancelled              the run was cancelled
```

Each error carries structured fields as well as its message, so the server and the trace can show them without
parsing text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AgentStepRequired",
    "BudgetExceeded",
    "ComputeError",
    "ConfigurationError",
    "ConsensusFailure",
    "ConvergenceFailure",
    "ExpressionError",
    "GateKilled",
    "HITLTimeoutError",
    "HumanRejected",
    "InvalidInput",
    "LLMError",
    "ParallelValidationFailed",
    "ParseFailure",
    "PlanError",
    "PostconditionFailed",
    "PreconditionFailed",
    "Problem",
    "RoutingLimitExceeded",
    "RunCancelled",
    "RunError",
    "StabilityAssertionError",
    "StratumError",
]


class StratumError(Exception):
    """Root of every error Stratum raises."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a plan, located in its file.

    Sorts by file, line, column, then path, so a report reads top to bottom.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}:{self.column}"
        text = f"{location}: {self.path}: {self.message}" if self.path else f"{location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of `stratum validate --format json`."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class PlanError(StratumError):
    """A plan is not valid; `problems` lists what is wrong with it, sorted.

    At most MAX_PROBLEMS problems are kept (the first in the text); `more` counts the others.
    """

    MAX_PROBLEMS: ClassVar[int] = 500

    def __init__(self, problems: Sequence[Problem]) -> None:
        ordered = sorted(problems)
        self.problems: tuple[Problem, ...] = tuple(ordered[: self.MAX_PROBLEMS])
        self.more = len(ordered) - len(self.problems)
        count = len(ordered)
        head = f"{count} problem{'s' if count != 1 else ''} in plan"
        tail = [f"... and {self.more} more problems"] if self.more else []
        super().__init__("\n".join([head, *(str(p) for p in self.problems), *tail]))


class RunError(StratumError):
    """An error raised while a flow runs.

    Attributes:
        step_id: the step that failed, if the error belongs to one.
        run_id: the run it happened in, filled in by the engine.
    """

    function: str | None = None
    """The function the failed step called, filled in by the engine (not part of `to_dict()`)."""

    def __init__(self, message: str, *, step_id: str | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step_id = step_id
        self.run_id = run_id

    @property
    def function_name(self) -> str | None:
        """The function that failed, else the step (the reference library's field name)."""
        return self.function or self.step_id

    @property
    def type_name(self) -> str:
        """The error's class name, as shown in traces and tool results."""
        return type(self).__name__

    def details(self) -> dict[str, Any]:
        """Structured fields beyond the message, for traces (JSON-safe)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape stored in the trace and returned by the server."""
        return {"type": self.type_name, "message": self.message, "step_id": self.step_id, **self.details()}

    def __str__(self) -> str:
        return f"step '{self.step_id}': {self.message}" if self.step_id else self.message


class ConfigurationError(RunError):
    """The engine cannot run as configured; the message says how to fix it."""


class InvalidInput(RunError):
    """A step's bound inputs break the called function's (or sub-flow's) input schema, found at the step boundary.

    Attributes:
        field: the input (and the path inside it) that is wrong, e.g. `score` or `ticket.priority`.
        binding: what the step binds to that input (`$.steps.rate.output.score`, or a literal), when known.
        violations: every schema violation found, as `input.FIELD: what is wrong` lines.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str,
        binding: str | None,
        violations: Sequence[str],
        step_id: str | None = None,
    ) -> None:
        super().__init__(message, step_id=step_id)
        self.field = field
        self.binding = binding
        self.violations = tuple(violations)

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "binding": self.binding, "violations": list(self.violations)}


class PreconditionFailed(RunError):
    """A `given` condition was false before the call; preconditions are never retried."""

    def __init__(self, message: str, *, condition: str, actual: str | None = None, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.condition = condition
        self.actual = actual

    def details(self) -> dict[str, Any]:
        return {"condition": self.condition, "actual": self.actual}


class PostconditionFailed(RunError):
    """`ensure` (or the output contract) still failed after every retry.

    `history` holds, per attempt, the list of violations fed back to the model.
    """

    def __init__(self, message: str, *, history: Sequence[Sequence[str]], step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.history: tuple[tuple[str, ...], ...] = tuple(tuple(v) for v in history)

    @property
    def violations(self) -> tuple[str, ...]:
        """The violations of the last attempt."""
        return self.history[-1] if self.history else ()

    @property
    def retry_history(self) -> list[list[str]]:
        """Every attempt's violations, as lists (the reference library's field name)."""
        return [list(attempt) for attempt in self.history]

    def details(self) -> dict[str, Any]:
        return {"violations": list(self.violations), "history": [list(h) for h in self.history]}


class ParseFailure(PostconditionFailed):
    """The model's answer never parsed as JSON matching the output contract."""

    raw_output = ""
    """The reference library's field, always empty there too: the raw answers are in the run's attempts."""

    @property
    def error_message(self) -> str:
        """Why the last attempt did not parse (the reference library's field name)."""
        return "; ".join(self.violations)


class BudgetExceeded(RunError):
    """A budget ran out, or a call's reservation could not fit: `dimension` is 'ms', 'usd' or 'tokens'.

    `budget` names the envelope whose limit binds ("flow 'triage'", "step 'draft'"); `reserved` is what the refused
    call needed (None when the budget ran out otherwise) and `left` what the budget still had.
    """

    def __init__(
        self,
        message: str,
        *,
        dimension: str,
        limit: float,
        used: float,
        step_id: str | None = None,
        budget: str | None = None,
        reserved: float | None = None,
        left: float | None = None,
    ) -> None:
        super().__init__(message, step_id=step_id)
        self.dimension = dimension
        self.limit = limit
        self.used = used
        self.budget = budget
        self.reserved = reserved
        self.left = left

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"dimension": self.dimension, "limit": self.limit, "used": self.used}
        extra = {"budget": self.budget, "reserved": self.reserved, "left": self.left}
        details.update({key: value for key, value in extra.items() if value is not None})
        return details


class ConvergenceFailure(RunError):
    """A refine loop ran `max_iterations` times without meeting its `until` condition."""

    def __init__(self, message: str, *, iterations: int, condition: str, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.iterations = iterations
        self.condition = condition

    @property
    def max_iterations(self) -> int:
        """The reference library's name for `iterations`."""
        return self.iterations

    def details(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "condition": self.condition}


class ConsensusFailure(RunError):
    """A quorum's largest agreeing group was smaller than its threshold."""

    def __init__(self, message: str, *, votes: dict[str, int], threshold: int, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.votes = votes
        self.threshold = threshold

    @property
    def quorum(self) -> int:
        """How many answers were asked for and counted (the reference library's field name)."""
        return sum(self.votes.values())

    def details(self) -> dict[str, Any]:
        return {"votes": self.votes, "threshold": self.threshold}


class StabilityAssertionError(RunError):
    """The samples of a `stable: false` function agreed less than required."""

    def __init__(self, message: str, *, agreement: float, required: float, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.agreement = agreement
        self.required = required

    @property
    def threshold(self) -> float:
        """The reference library's name for `required`."""
        return self.required

    @property
    def actual_agreement(self) -> float:
        """The reference library's name for `agreement`."""
        return self.agreement

    def details(self) -> dict[str, Any]:
        return {"agreement": self.agreement, "required": self.required}


class ParallelValidationFailed(RunError):
    """A parallel group did not get the successes its `require` asks for, or `validate` was false."""

    def __init__(self, message: str, *, failures: dict[str, str] | None = None, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.failures = dict(failures or {})

    def details(self) -> dict[str, Any]:
        return {"failures": self.failures}


class HITLTimeoutError(RunError):
    """A person did not answer before the step's timeout, and on_timeout is `raise`."""

    def __init__(self, message: str, *, review_id: str, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.review_id = review_id

    def details(self) -> dict[str, Any]:
        return {"review_id": self.review_id}


class HumanRejected(RunError):
    """A person declined or cancelled the decision a human step asked for."""

    def __init__(self, message: str, *, review_id: str, action: str, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.review_id = review_id
        self.action = action

    def details(self) -> dict[str, Any]:
        return {"review_id": self.review_id, "action": self.action}


class GateKilled(RunError):
    """A gate was decided `kill`: the run ends (after the steps its `on_kill` routes to, if any)."""

    def __init__(self, message: str, *, gate: str, rationale: str | None = None, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.gate = gate
        self.rationale = rationale

    def details(self) -> dict[str, Any]:
        return {"gate": self.gate, "rationale": self.rationale}


class RoutingLimitExceeded(RunError):
    """A gate's `on_revise`, an `on_fail` or a `next` would run a step more often than `limit` allows."""

    def __init__(self, message: str, *, limit: int, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.limit = limit

    def details(self) -> dict[str, Any]:
        return {"limit": self.limit}


class ComputeError(RunError):
    """A compute step's code raised; `traceback` keeps the original, for the trace."""

    def __init__(self, message: str, *, traceback: str, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.traceback = traceback

    def details(self) -> dict[str, Any]:
        return {"traceback": self.traceback}


class ExpressionError(RunError):
    """A sandboxed expression failed: it broke a bound, or read something it may not."""

    def __init__(self, message: str, *, expression: str, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id)
        self.expression = expression

    def details(self) -> dict[str, Any]:
        return {"expression": self.expression}


class LLMError(RunError):
    """The model could not be reached or answered with an error, after the transport retries.

    `usage_unknown` says the model did answer but what it used cannot be known (it reported impossible usage): the
    engine then charges the call's whole reservation.
    """

    def __init__(
        self, message: str, *, model: str, attempts: int, step_id: str | None = None, usage_unknown: bool = False
    ) -> None:
        super().__init__(message, step_id=step_id)
        self.model = model
        self.attempts = attempts
        self.usage_unknown = usage_unknown

    def details(self) -> dict[str, Any]:
        return {"model": self.model, "transport_attempts": self.attempts}


class AgentStepRequired(RunError):
    """An infer step has to be done by the calling agent: the engine has no model for it here."""


class RunCancelled(RunError):
    """The run was cancelled before it finished."""
