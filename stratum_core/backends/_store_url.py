"""The run store a server and its workers share, named by a path or a URL."""

from __future__ import annotations

import os
from pathlib import Path

from stratum_core.errors import ConfigurationError
from stratum_core.store import MemoryRunStore, RunStore, SQLiteRunStore

__all__ = ["open_run_store"]


def open_run_store(spec: str | os.PathLike[str] | None) -> RunStore:
    """The store named by `spec`: a PostgreSQL URL, a file path or a SQLite URL (SQLite), `memory:` or None.

    SQLite URLs are written as SQLAlchemy writes them: `sqlite:///runs.db` (relative), `sqlite:////var/runs.db`.
    SQLite is safe across processes of one host (WAL, a file lock), so a server and its `stratum worker`s on one
    machine share one file; a SQLite file on a network file system is not safe (its locks do not hold there).

    Across hosts, every server and worker names one PostgreSQL database: `postgresql://USER:PASSWORD@HOST:5432/DB`
    (or `postgres://`; libpq's query options apply, e.g. `?sslmode=require`). It needs the `postgres` extra
    (`pip install 'stratum[postgres]'`); the tables are created on first use. Other URL schemes are refused.
    """
    if spec is None:
        return MemoryRunStore()
    text = os.fspath(spec)
    if text in ("memory:", ":memory:"):
        return MemoryRunStore()
    if text.startswith(("postgresql://", "postgres://")):
        return _postgres_store(text)
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise ConfigurationError(f"store URL {text!r} names no file (sqlite:///runs.db or sqlite:////abs/runs.db)")
        text = text.removeprefix("sqlite:///")
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigurationError(
            f"store URL scheme {scheme!r} is not supported: name a SQLite file (a path or sqlite:///PATH), shared "
            "by processes of one host, or a PostgreSQL database (postgresql://USER@HOST:PORT/DB), shared across "
            "hosts; see docs/backends.md"
        )
    file = Path(text).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteRunStore(file)


def _postgres_store(url: str) -> RunStore:
    """The PostgreSQL store at `url`; psycopg is imported only here, so other stores never load it."""
    try:
        from stratum_core.store._postgres import PostgresRunStore
    except ImportError as e:
        raise ConfigurationError(
            f"store URL {_scheme(url)}://... names a PostgreSQL database, which needs the postgres extra "
            f"(psycopg): pip install 'stratum[postgres]' ({e})"
        ) from e
    return PostgresRunStore(url)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]
