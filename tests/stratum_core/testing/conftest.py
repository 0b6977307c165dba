from __future__ import annotations

from collections.abc import Iterator

import pytest

from stratum_core.testing import FakeLLM


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> FakeLLM:
    """The session's fake, with no queue, rules, requests or latency left by another test."""
    fake_llm_server.reset()
    fake_llm_server.latency = 0.0
    return fake_llm_server
