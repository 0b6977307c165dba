"""The engine's default model client and default model: `local` runs on the embedded model, the rest on LiteLLM."""

from __future__ import annotations

from stratum_core.llm._litellm import LiteLLMClient
from stratum_core.llm._local import LocalModelClient, available
from stratum_core.llm._protocol import LLMClient

__all__ = ["default_client", "default_model"]


def default_client() -> LLMClient:
    """The client an Engine makes when given none: `local` models go to the embedded model, others to LiteLLM."""
    return LocalModelClient(LiteLLMClient())


def default_model() -> str | None:
    """The model to use when none is configured anywhere: `local` if it is installed, else None.

    Cheap: it only looks for the packages, without importing them or starting anything.
    """
    return "local" if available() else None
