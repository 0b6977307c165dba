"""The run store a server and its workers share is named by a path or a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratum_core.backends import open_run_store
from stratum_core.errors import ConfigurationError
from stratum_core.store import MemoryRunStore, SQLiteRunStore


def test_a_path_and_a_sqlite_url_name_the_same_sqlite_file(tmp_path: Path) -> None:
    for spec in (tmp_path / "a" / "runs.db", f"sqlite:///{tmp_path}/a/runs.db"):
        store = open_run_store(spec)
        assert isinstance(store, SQLiteRunStore) and store.path == tmp_path / "a" / "runs.db"
        store.close()


def test_memory_and_none_keep_runs_in_memory() -> None:
    assert isinstance(open_run_store("memory:"), MemoryRunStore)
    assert isinstance(open_run_store(None), MemoryRunStore)


def test_a_networked_database_url_is_refused_with_what_to_use() -> None:
    with pytest.raises(ConfigurationError, match=r"scheme 'postgresql' is not supported.*docs/backends.md"):
        open_run_store("postgresql://db.example/stratum")
