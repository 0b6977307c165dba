"""What the SQL stores (SQLite, PostgreSQL) share: records as rows and back, and the statements both dialects run.

A record's columns are its model's fields, in order; JSON values are kept as compact JSON text (SQL NULL for None),
so both databases hold the same text and read back the same records. Statements are written with `?` placeholders
(SQLite's); the PostgreSQL store turns them into psycopg's `%s`.
"""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

from pydantic import BaseModel

from stratum_core.store._protocol import StoreError
from stratum_core.store._records import ReviewRecord, ReviewStatus, RunRecord, RunStatus, StepRecord
from stratum_core.store._rules import decode_cursor, to_json

__all__ = [
    "CACHE_GET",
    "CACHE_PUT",
    "JSON_COLUMNS",
    "RELEASE_LEASE",
    "RENEW_LEASE",
    "SELECT_REVIEW",
    "SELECT_RUN",
    "TAKE_LEASE",
    "UPDATE_REVIEW",
    "columns",
    "decode",
    "dumps",
    "encode",
    "encode_checked",
    "fields",
    "insert",
    "json_flags",
    "reviews_query",
    "runs_query",
    "select",
    "text",
    "update_run",
    "upsert_step",
]

# Columns holding JSON text; SQL NULL stands for Python None.
JSON_COLUMNS = frozenset(
    {
        "input",
        "output",
        "error",
        "attributes",
        "violations",
        "transport_errors",
        "request",
        "value",
        "strategy_fallbacks",
    }
)

_R = TypeVar("_R", bound=BaseModel)


@functools.cache
def columns(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields)


@functools.cache
def select(model: type[BaseModel], table: str) -> str:
    return f"SELECT {', '.join(columns(model))} FROM {table}"


@functools.cache
def insert(model: type[BaseModel], table: str) -> str:
    names = columns(model)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


@functools.cache
def upsert_step() -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns(StepRecord) if c not in ("run_id", "step_id"))
    return f"{insert(StepRecord, 'steps')} ON CONFLICT (run_id, step_id) DO UPDATE SET {updates}"


@functools.cache
def json_flags(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    return tuple((name, name in JSON_COLUMNS) for name in columns(model))


@functools.cache
def update_run(names: tuple[str, ...]) -> str:
    return f"UPDATE runs SET {', '.join(f'{c} = ?' for c in names)} WHERE run_id = ?"


def encode(record: BaseModel, only: tuple[str, ...] | None = None) -> list[Any]:
    """The record's column values (all, or `only` these) in column order: JSON as compact text, None as NULL.

    Text is not checked for lone surrogates here (that costs a UTF-8 encode of every value): a store retries
    with `encode_checked` when its database refuses a value for one.
    """
    data = record.model_dump(mode="json", include=set(only) if only is not None else None)
    return [
        None if (value := data[name]) is None else dumps(value) if is_json else value
        for name, is_json in json_flags(type(record))
        if only is None or name in data
    ]


def encode_checked(record: BaseModel, only: tuple[str, ...] | None = None) -> list[Any]:
    """`encode` for values with lone surrogates: JSON escaped as `to_json` does it, text with U+FFFD for them."""
    data = record.model_dump(mode="json", include=set(only) if only is not None else None)
    return [
        None if (value := data[name]) is None else to_json(value) if is_json else text(value)
        for name, is_json in json_flags(type(record))
        if only is None or name in data
    ]


def dumps(value: Any) -> str:
    """`to_json` without its UTF-8 check (see `encode`)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"value is not JSON: {e}") from e


def text(value: Any) -> Any:
    """A text column as a database can store it: a lone surrogate (from a raw model answer) becomes U+FFFD."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    return value


def fields(model: type[BaseModel], row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        name: json.loads(value) if is_json and value is not None else value
        for (name, is_json), value in zip(json_flags(model), row, strict=True)
    }


def decode(model: type[_R], row: tuple[Any, ...]) -> _R:
    return model.model_validate(fields(model, row))


def runs_query(
    *,
    batch_id: str,
    flow: str | None,
    status: RunStatus | None,
    since: float | None,
    until: float | None,
    limit: int,
    cursor: str | None,
    owner: str | None,
    batch: str | None,
) -> tuple[str, list[Any]]:
    """`list_runs` as one statement and its parameters: a page of `limit` runs and one more (is there a next page).

    `batch_id` is the dialect's expression for `attributes["batch"]["id"]` (the one its index is on).
    """
    where: list[str] = []
    params: list[Any] = []
    clauses = (
        ("flow = ?", flow),
        ("status = ?", status),
        ("created_at >= ?", since),
        ("owner = ?", owner),
        (f"{batch_id} = ?", batch),
        ("created_at < ?", until),
    )
    for clause, value in clauses:
        if value is not None:
            where.append(clause)
            params.append(value)
    if cursor is not None:
        where.append("(created_at, run_id) < (?, ?)")
        params.extend(decode_cursor(cursor))
    sql = select(RunRecord, "runs")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY created_at DESC, run_id DESC LIMIT ?", [*params, limit + 1]


def reviews_query(*, status: ReviewStatus | None, run_id: str | None, order: str) -> tuple[str, list[Any]]:
    """`list_reviews` as one statement and its parameters; `order` is the dialect's insertion order column."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (("status = ?", status), ("run_id = ?", run_id)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = select(ReviewRecord, "reviews")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} ORDER BY created_at, {order}", params


SELECT_RUN = f"{select(RunRecord, 'runs')} WHERE run_id = ?"
SELECT_REVIEW = f"{select(ReviewRecord, 'reviews')} WHERE review_id = ?"
UPDATE_REVIEW = f"UPDATE reviews SET {', '.join(f'{c} = ?' for c in columns(ReviewRecord))} WHERE review_id = ?"
TAKE_LEASE = "UPDATE runs SET lease_holder = ?, lease_expires = ? WHERE run_id = ?"
RENEW_LEASE = "UPDATE runs SET lease_expires = ? WHERE run_id = ? AND lease_holder = ?"
RELEASE_LEASE = "UPDATE runs SET lease_holder = NULL, lease_expires = NULL WHERE run_id = ? AND lease_holder = ?"
CACHE_GET = "SELECT value FROM cache WHERE cache_key = ?"
CACHE_PUT = (
    "INSERT INTO cache (cache_key, value, contract_hash, created_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (cache_key) DO UPDATE SET value = excluded.value, "
    "contract_hash = excluded.contract_hash, created_at = excluded.created_at"
)
