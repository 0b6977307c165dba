"""The run store a server and its workers share is named by a path or a URL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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


def test_a_postgresql_url_opens_the_postgresql_store(postgres_url: str) -> None:
    from stratum_core.store._postgres import PostgresRunStore

    store = open_run_store(postgres_url)
    try:
        assert isinstance(store, PostgresRunStore)
        assert store.get_run("nope") is None
    finally:
        store.close()


def test_another_database_url_is_refused_with_what_to_use() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_run_store("mysql://db.example/stratum")
    assert str(caught.value) == (
        "store URL scheme 'mysql' is not supported: name a SQLite file (a path or sqlite:///PATH), shared by "
        "processes of one host, or a PostgreSQL database (postgresql://USER@HOST:PORT/DB), shared across hosts; "
        "see docs/backends.md"
    )


def test_a_postgresql_url_without_the_extra_says_how_to_install_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None  # as if the postgres extra were not installed
        from stratum_core.backends import open_run_store
        from stratum_core.errors import ConfigurationError
        try:
            open_run_store("postgresql://stratum@db.example/stratum")
        except ConfigurationError as e:
            print(e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith(
        "store URL postgresql://... names a PostgreSQL database, which needs the postgres extra (psycopg): "
        "pip install 'stratum[postgres]'"
    )
