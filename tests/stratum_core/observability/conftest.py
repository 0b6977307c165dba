"""Fixtures for the observability tests: an OTLP receiver, a SQLite store, the engine's config on the test LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from observability_helpers import OTLPReceiver

from stratum_core.engine import EngineConfig
from stratum_core.llm import register_model
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteRunStore]:
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        yield store


@pytest.fixture
def llm_config(fake_llm: FakeLLM) -> EngineConfig:
    register_model(fake_llm.model, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    return EngineConfig(model=fake_llm.model, api_base=fake_llm.url)
