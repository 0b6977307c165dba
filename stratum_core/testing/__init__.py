"""Test helpers for Stratum flows: scripted LLM servers on a loopback port (OpenAI chat API, Anthropic Messages API)."""

from stratum_core.testing._fake_anthropic import FakeAnthropic
from stratum_core.testing._fake_llm import Answer, FakeLLM, Fault, Reply, minimal_instance

__all__ = ["Answer", "FakeAnthropic", "FakeLLM", "Fault", "Reply", "minimal_instance"]
