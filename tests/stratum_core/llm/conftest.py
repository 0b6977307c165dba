from __future__ import annotations

import pytest

from stratum_core.llm import LiteLLMClient


@pytest.fixture
def client() -> LiteLLMClient:
    """A client with tiny backoffs, so retry tests stay fast (the test LLM fixtures are in tests/conftest.py)."""
    return LiteLLMClient(backoff_base=0.01, backoff_max=0.05, request_timeout=10.0)
