"""Test helpers for Stratum flows: a scripted OpenAI-compatible LLM server on a loopback port."""

from stratum_core.testing._fake_llm import Answer, FakeLLM, Fault, Reply, minimal_instance

__all__ = ["Answer", "FakeLLM", "Fault", "Reply", "minimal_instance"]
