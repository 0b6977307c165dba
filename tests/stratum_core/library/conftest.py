"""Fixtures for the library tests: the library configured on the test LLM (LiteLLM over HTTP) and a SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from library_helpers import ScriptedSink

from stratum_core.engine import Engine
from stratum_core.library import configure
from stratum_core.llm import LiteLLMClient, register_model
from stratum_core.store import MemoryRunStore, SQLiteRunStore
from stratum_core.testing import FakeLLM


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteRunStore]:
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        yield store


@pytest.fixture
def sink() -> ScriptedSink:
    return ScriptedSink()


@pytest.fixture
def engine(fake_llm: FakeLLM, store: SQLiteRunStore, sink: ScriptedSink) -> Iterator[Engine]:
    """The library's engine, on the test LLM; put back to an in-memory default afterwards."""
    register_model(fake_llm.model, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    yield configure(
        model=fake_llm.model,
        api_base=fake_llm.url,
        api_key="test",
        store=store,
        review_sink=sink,
        llm=LiteLLMClient(backoff_base=0.01, backoff_max=0.05),
    )
    configure(store=MemoryRunStore())
