"""The `store` fixture: every run store (memory, a SQLite file, a PostgreSQL database), for the shared contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stratum_core.backends import open_run_store
from stratum_core.store import RunStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    made = open_run_store(
        "memory:"
        if request.param == "memory"
        else tmp_path / "stratum.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    yield made
    made.close()
