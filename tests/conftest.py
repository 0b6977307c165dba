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
