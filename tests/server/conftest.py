"""Fixtures for the server tests: servers on the test plans, both protocol eras, the test LLM."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import MODES, TEST_PLANS, make_server

from server import StratumServer
from stratum_core.testing import FakeLLM


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: the initialize handshake (2025-11-25) and 2026-07-28."""
    return str(request.param)


@pytest.fixture
def server() -> Iterator[StratumServer]:
    srv = make_server()
    yield srv
    srv.close()


@pytest.fixture
def plans_copy(tmp_path: Path) -> Path:
    """A writable copy of the test plans (for reload tests)."""
    target = tmp_path / "plans"
    shutil.copytree(TEST_PLANS, target)
    return target


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """One scripted OpenAI-compatible server for the whole session; reset it in tests that script it."""
    with FakeLLM() as llm:
        yield llm
