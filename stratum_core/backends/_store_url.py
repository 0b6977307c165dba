"""The run store a server and its workers share, named by a path or a URL."""

from __future__ import annotations

import os
from pathlib import Path

from stratum_core.errors import ConfigurationError
from stratum_core.store import MemoryRunStore, RunStore, SQLiteRunStore

__all__ = ["open_run_store"]


def open_run_store(spec: str | os.PathLike[str] | None) -> RunStore:
    """The store named by `spec`: a file path or a SQLite URL (SQLite), `memory:` or None (in memory).

    SQLite URLs are written as SQLAlchemy writes them: `sqlite:///runs.db` (relative), `sqlite:////var/runs.db`.

    SQLite is safe across processes of one host (WAL, a file lock), so a server and its `stratum worker`s on one
    machine share one file. Across hosts they need one database all of them reach; no networked store ships yet,
    and a SQLite file on a network file system is not safe (its locks do not hold there), so other URLs are refused.
    """
    if spec is None:
        return MemoryRunStore()
    text = os.fspath(spec)
    if text in ("memory:", ":memory:"):
        return MemoryRunStore()
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise ConfigurationError(f"store URL {text!r} names no file (sqlite:///runs.db or sqlite:////abs/runs.db)")
        text = text.removeprefix("sqlite:///")
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigurationError(
            f"store URL scheme {scheme!r} is not supported: the run store is SQLite (sqlite:///PATH or a path), "
            "shared by processes of one host; see docs/backends.md for workers on several hosts"
        )
    file = Path(text).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteRunStore(file)
