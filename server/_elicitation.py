"""Human steps through MCP elicitation, in both protocol eras.

The engine hands a `ReviewRequest` (a flat decision form) to a `ReviewSink`:

- handshake era, client with elicitation: `PushSink` sends `elicitation/create` in the middle of the tool call and
  returns the person's answer;
- 2026-07-28 client with elicitation, or any client without it: `PauseSink` answers None, so the run pauses
  durably; the server then answers the call with an `InputRequiredResult` (2026-07-28) or a paused result.

Answers: accept gives the form's content (validated; enum labels mapped back to the option values), decline and
cancel are passed on as such; the engine fails the step with HumanRejected for both and records the action.

An answer that does not fit the decision contract is treated the same way in both eras (and through tasks): the
person is told what is wrong and asked again, at most `MAX_INVALID_ANSWERS` times in all (`InvalidAnswers` counts
them per review); then the run stays paused with the review open, to be answered through the approval card, the
`stratum_resume` tool or `stratum review`. No choice the person did not make is ever recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp.types as types
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError

from server._catalog import argument_errors
from stratum_core.engine import ReviewAnswer, ReviewRequest
from stratum_core.plan._patterns import SchemaValidator
from stratum_core.store import ReviewRecord

__all__ = [
    "ELICITATION",
    "MAX_INVALID_ANSWERS",
    "REVIEW_INPUT_KEY",
    "Form",
    "InvalidAnswers",
    "PauseSink",
    "PushSink",
    "client_can_elicit",
    "decision_schema",
    "decision_value",
    "decode_state",
    "encode_state",
    "form_for",
    "request_from_record",
    "reviewer_of",
]

logger = logging.getLogger("stratum.server")

REVIEW_INPUT_KEY = "review"
ELICITATION = "elicitation"
"""The channel recorded for an answer a person gave in the client's elicitation form."""
_FORM_KEYS = ("title", "description", "default", "minimum", "maximum", "minLength", "maxLength")
_FORMATS = ("date", "date-time", "email", "uri")
_ELICITABLE = types.ClientCapabilities(elicitation=types.ElicitationCapability())
_MESSAGE_LIMIT = 4000
MAX_INVALID_ANSWERS = 3
_REMEMBERED_REVIEWS = 10_000


class InvalidAnswers:
    """The answers to each review that did not fit its decision contract, in this process (a bounded memory)."""

    def __init__(self) -> None:
        self._problems: dict[str, list[str]] = {}

    def add(self, review_id: str, problem: str) -> int:
        """Note one more invalid answer; returns how many there were."""
        problems = self._problems.pop(review_id, [])
        problems.append(problem)
        self._problems[review_id] = problems
        while len(self._problems) > _REMEMBERED_REVIEWS:
            del self._problems[next(iter(self._problems))]
        return len(problems)

    def count(self, review_id: str) -> int:
        """How many invalid answers this review had."""
        return len(self._problems.get(review_id, ()))

    def last(self, review_id: str) -> str | None:
        """What was wrong with the last invalid answer."""
        problems = self._problems.get(review_id)
        return problems[-1] if problems else None

    def exhausted(self, review_id: str) -> bool:
        """Whether this review was answered wrongly too often to be asked again through a form."""
        return self.count(review_id) >= MAX_INVALID_ANSWERS

    def prefix(self, review_id: str) -> str:
        """The paragraph that tells the person what was wrong with their last answer (empty if nothing was)."""
        last = self.last(review_id)
        if last is None:
            return ""
        left = MAX_INVALID_ANSWERS - self.count(review_id)
        return f"That answer was not accepted ({last}). Please answer again ({left} tries left).\n\n"

    def gave_up(self, review_id: str) -> str:
        """Why the form is not asked again."""
        return (
            f"{self.count(review_id)} answers did not fit the decision (last: {self.last(review_id)}); "
            "nothing was recorded and the review is still open"
        )


@dataclass(frozen=True)
class Form:
    """The elicitation form of a review, and how to turn a form answer back into the decision value."""

    message: str
    schema: dict[str, Any]
    decision_schema: Mapping[str, Any]
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # field -> enum label -> option value
    json_fields: frozenset[str] = frozenset()  # fields asked as JSON text (no flat form type fits them)

    def elicit_request(self, *, prefix: str = "") -> types.ElicitRequest:
        """The 2026-07-28 input request asking this form."""
        return types.ElicitRequest(
            params=types.ElicitRequestFormParams(message=prefix + self.message, requested_schema=self.schema)
        )

    def answer(self, result: types.ElicitResult, *, reviewer: str | None) -> ReviewAnswer | str:
        """The engine's answer for an elicitation result, or a line saying why the content is not acceptable."""
        if result.action != "accept":
            return ReviewAnswer(action=result.action, reviewer=reviewer, answered_by="person", channel=ELICITATION)
        value: dict[str, Any] = {}
        for key, raw in (result.content or {}).items():
            if key in self.json_fields and isinstance(raw, str):
                try:
                    value[key] = json.loads(raw)
                except ValueError:
                    return f"{key}: not valid JSON"
            elif key in self.labels and isinstance(raw, str) and raw in self.labels[key]:
                value[key] = self.labels[key][raw]
            else:
                value[key] = raw
        errors = argument_errors(SchemaValidator(dict(self.decision_schema)), value)
        if errors:
            return "; ".join(errors)
        return ReviewAnswer(action="accept", value=value, reviewer=reviewer, answered_by="person", channel=ELICITATION)


def _label(option: Any) -> str:
    return option if isinstance(option, str) else json.dumps(option, ensure_ascii=False)


def form_for(request: ReviewRequest) -> Form:
    """An elicitation form for a review: flat string/number/integer/boolean/enum fields, as MCP allows."""
    decision = dict(request.schema)
    properties: dict[str, Any] = {}
    labels: dict[str, dict[str, Any]] = {}
    json_fields: set[str] = set()
    for name, spec in (decision.get("properties") or {}).items():
        spec = dict(spec) if isinstance(spec, Mapping) else {}
        out = {key: spec[key] for key in _FORM_KEYS if key in spec}
        kind = spec.get("type")
        if "enum" in spec:
            options = list(spec["enum"])
            labels[name] = {_label(option): option for option in options}
            out = {k: v for k, v in out.items() if k in ("title", "description")}
            out.update(type="string", enum=list(labels[name]))
            if "default" in spec:
                out["default"] = _label(spec["default"])
        elif kind in ("string", "number", "integer", "boolean"):
            out["type"] = kind
            if kind == "string" and spec.get("format") in _FORMATS:
                out["format"] = spec["format"]
        else:
            json_fields.add(name)
            out = {"type": "string", "description": (str(spec.get("description", "")) + " (JSON)").strip()}
        properties[name] = out
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [name for name in decision.get("required") or [] if name in properties]
    if required:
        schema["required"] = required
    message = request.question
    if request.context:
        context = json.dumps(dict(request.context), ensure_ascii=False, indent=2, default=str)
        message += "\n\n" + context
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 1] + "…"
    return Form(
        message=message, schema=schema, decision_schema=decision, labels=labels, json_fields=frozenset(json_fields)
    )


def decision_schema(review: ReviewRecord) -> dict[str, Any]:
    """The JSON Schema a stored review's answer must match."""
    schema = (review.request or {}).get("schema")
    return dict(schema) if isinstance(schema, dict) else {"type": "object"}


def decision_value(answer: Any, schema: Mapping[str, Any]) -> Any:
    """A bare value for a decision asked as `{"value": ...}` (a primitive decision) is wrapped."""
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and list(properties) == ["value"] and not isinstance(answer, dict):
        return {"value": answer}
    return answer


def request_from_record(review: ReviewRecord) -> ReviewRequest:
    """The ReviewRequest of a stored review (to ask it again in a later round)."""
    request = review.request or {}
    schema = request.get("schema")
    options = request.get("options")
    context = request.get("context")
    return ReviewRequest(
        review_id=review.review_id,
        run_id=review.run_id,
        step_id=review.step_id,
        question=review.question,
        schema=schema if isinstance(schema, dict) else {"type": "object", "properties": {}},
        options=tuple(options) if isinstance(options, list) else None,
        context=context if isinstance(context, dict) else {},
        deadline=review.deadline,
    )


def client_can_elicit(session: ServerSession) -> bool:
    """Whether the client declared the elicitation capability (form mode is the default one)."""
    return session.check_client_capability(_ELICITABLE)


def reviewer_of(session: ServerSession) -> str | None:
    """Who answered: the MCP client's name, as far as the server can tell."""
    params = session.client_params
    return f"mcp:{params.client_info.name}" if params is not None else None


class PauseSink:
    """A sink that never asks: the run pauses at its first human step, which `requests` records."""

    def __init__(self) -> None:
        self.requests: list[ReviewRequest] = []

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        self.requests.append(request)
        return None


class PushSink:
    """Asks through `elicitation/create` on the tool call's own stream (handshake era only).

    An answer that does not fit the form is asked again, up to `MAX_INVALID_ANSWERS` invalid answers in all; then,
    like a client that fails the request, the run pauses with the review open (nothing is recorded for it).
    """

    def __init__(
        self, session: ServerSession, request_id: types.RequestId | None, invalid: InvalidAnswers | None = None
    ) -> None:
        self._session = session
        self._request_id = request_id
        self._invalid = invalid if invalid is not None else InvalidAnswers()

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        form = form_for(request)
        reviewer = reviewer_of(self._session)
        while not self._invalid.exhausted(request.review_id):
            prefix = self._invalid.prefix(request.review_id)
            try:
                result = await self._session.elicit_form(
                    prefix + form.message, form.schema, related_request_id=self._request_id
                )
            except MCPError as e:
                logger.warning("elicitation for review %s failed (%s): the run pauses", request.review_id, e)
                return None
            answer = form.answer(result, reviewer=reviewer)
            if isinstance(answer, ReviewAnswer):
                return answer
            self._invalid.add(request.review_id, answer)
        logger.info("review %s: %s", request.review_id, self._invalid.gave_up(request.review_id))
        return None


def encode_state(run_id: str, review_id: str) -> str:
    """The plaintext `request_state` naming a paused run; the SDK's RequestStateBoundary seals it on the way out."""
    return json.dumps({"v": 1, "run_id": run_id, "review_id": review_id}, separators=(",", ":"))


def decode_state(state: str) -> tuple[str, str] | None:
    """(run_id, review_id) from an unsealed `request_state`, or None if it is not one of ours."""
    try:
        data = json.loads(state)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    run_id, review_id = data.get("run_id"), data.get("review_id")
    if not isinstance(run_id, str) or not isinstance(review_id, str):
        return None
    return run_id, review_id
