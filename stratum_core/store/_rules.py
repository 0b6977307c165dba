"""Rules both stores share (update checks, review transitions, cursors, JSON text), so they agree to the message."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import JsonValue, ValidationError

from stratum_core.store._lease import lease_is_live
from stratum_core.store._protocol import RunBusy, StoreError
from stratum_core.store._records import AnsweredBy, ReviewAction, ReviewRecord, RunRecord, RunStatus, now

__all__ = [
    "answered_review",
    "check_lease",
    "check_limit",
    "closed_review",
    "decode_cursor",
    "encode_cursor",
    "to_json",
    "updated_run",
]


def encode_cursor(created_at: float, run_id: str) -> str:
    """An opaque cursor naming the last run of a page."""
    raw = json.dumps([created_at, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (created_at, run_id) a cursor names; a cursor not made by `encode_cursor` is a StoreError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as e:
        raise StoreError(f"invalid cursor {cursor!r}: pass back a next_cursor from list_runs") from e
    if not isinstance(created_at, int | float) or isinstance(created_at, bool) or not isinstance(run_id, str):
        raise StoreError(f"invalid cursor {cursor!r}: pass back a next_cursor from list_runs")
    return float(created_at), run_id


def check_limit(limit: int) -> None:
    """A page size must be at least 1."""
    if limit < 1:
        raise StoreError(f"limit must be at least 1, got {limit}")


def to_json(value: Any) -> str:
    """JSON text as both stores keep it: compact, UTF-8, and strict (NaN or a non-JSON object is a StoreError)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"value is not JSON: {e}") from e
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a raw model answer, say): keep it, escaped
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text


def check_lease(
    record: RunRecord | None, run_id: str, holder: str, *, statuses: tuple[RunStatus, ...], at: float
) -> RunRecord:
    """The run `holder` may take the lease of: known, in one of `statuses`, and not leased live by another."""
    if record is None:
        raise StoreError(f"no run with id {run_id!r}")
    if record.lease_holder != holder and lease_is_live(record.lease_holder, record.lease_expires, now=at):
        raise RunBusy(run_id, holder=record.lease_holder, expires_at=record.lease_expires)
    if record.status not in statuses:
        raise StoreError(
            f"run {run_id} is {record.status}; only {' or '.join(statuses)} runs can be advanced"
            if statuses != ("paused", "running")
            else f"run {run_id} is {record.status}; only paused or interrupted runs can be resumed"
        )
    return record


def _summary(error: ValidationError) -> str:
    """A pydantic error as one line per field, without pydantic's links and input echo."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


def updated_run(record: RunRecord | Mapping[str, Any], fields: Mapping[str, Any]) -> RunRecord:
    """`record` (a run or its stored fields) with `fields` changed and checked; `updated_at` is now unless given."""
    data = {**(record.model_dump() if isinstance(record, RunRecord) else record), **fields}
    run_id = record.run_id if isinstance(record, RunRecord) else record["run_id"]
    unknown = sorted(set(fields) - set(RunRecord.model_fields))
    if unknown:
        raise StoreError(f"update_run {run_id!r}: unknown field(s) {', '.join(unknown)}")
    if data["run_id"] != run_id:
        raise StoreError(f"update_run {run_id!r}: run_id cannot change")
    if "updated_at" not in fields:
        data["updated_at"] = now()
    try:
        return RunRecord.model_validate(data)
    except ValidationError as e:
        raise StoreError(f"update_run {run_id!r}: {_summary(e)}") from e


def _checked_pending(record: ReviewRecord | None, review_id: str) -> ReviewRecord:
    if record is None:
        raise StoreError(f"unknown review {review_id!r}")
    if record.status != "pending":
        raise StoreError(f"review {review_id!r} is already {record.status.replace('_', ' ')}; it takes one answer")
    return record


def answered_review(
    record: ReviewRecord | None,
    review_id: str,
    *,
    action: ReviewAction,
    value: JsonValue,
    reviewer: str | None,
    rationale: str | None,
    answered_by: AnsweredBy = "person",
    channel: str | None = None,
) -> ReviewRecord:
    """The pending review `record` with its answer.

    Unknown, not pending, or an agent answering a review that needs a person: StoreError.
    """
    pending = _checked_pending(record, review_id)
    if pending.needs_person and answered_by != "person":
        raise StoreError(
            f"review {review_id!r} must be answered by a person (its step says answered_by: person), "
            "not by the agent: ask the person through the client's form or `stratum review answer`"
        )
    data = pending.model_dump()
    data.update(
        status="answered",
        action=action,
        value=value,
        reviewer=reviewer,
        rationale=rationale,
        answered_by=answered_by,
        channel=channel,
    )
    data["decided_at"] = now()
    try:
        return ReviewRecord.model_validate(data)
    except ValidationError as e:
        raise StoreError(f"answer to review {review_id!r}: {_summary(e)}") from e


def closed_review(
    record: ReviewRecord | None, review_id: str, *, status: Literal["timed_out", "cancelled"]
) -> ReviewRecord:
    """The pending review `record` closed unanswered; unknown or not pending is a StoreError."""
    if status not in ("timed_out", "cancelled"):
        raise StoreError(f"close_review: status must be 'timed_out' or 'cancelled', got {status!r}")
    pending = _checked_pending(record, review_id)
    return pending.model_copy(update={"status": status, "decided_at": now()})
