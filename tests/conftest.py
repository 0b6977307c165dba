"""Test-wide settings: LiteLLM stays offline, anyio runs on asyncio."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


from collections.abc import Iterator  # noqa: E402

from stratum_core.testing import FakeLLM  # noqa: E402
from tests.fixtures.postgres import PostgresServer, UnavailableError  # noqa: E402


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    """One test LLM (a real HTTP server on a loopback port) for the whole session."""
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> FakeLLM:
    """The session's test LLM, with no queue, rules, requests or latency left by another test."""
    fake_llm_server.reset()
    fake_llm_server.latency = 0.0
    return fake_llm_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (a throwaway cluster on a free loopback port) for the session; skipped, saying why,
    only where no server can be started (no binaries) or psycopg (the `postgres` extra) is not installed."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the postgres extra (psycopg) is not installed: pip install -e '.[dev]'")
    try:
        server = PostgresServer()
    except UnavailableError as e:
        pytest.skip(str(e))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A database URL of the session's PostgreSQL server, in an empty schema of this test's own."""
    return postgres_server.fresh_url()
