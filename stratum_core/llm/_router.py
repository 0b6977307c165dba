"""The engine's default model client and default model: `local` runs on the embedded model, the rest on LiteLLM."""

from __future__ import annotations

from collections.abc import Mapping

from stratum_core.llm._litellm import LiteLLMClient
from stratum_core.llm._local import LocalModelClient, available
from stratum_core.llm._protocol import LLMClient
from stratum_core.llm._structured import OutputProfile

__all__ = ["default_client", "default_model"]


def default_client(
    *, output_profiles: Mapping[str, OutputProfile] | None = None, call_timeout: float = 300.0, max_wait: float = 30.0
) -> LLMClient:
    """The client an Engine makes when given none: `local` models go to the embedded model, others to LiteLLM.

    `output_profiles` (from the models file) override how the models they name are asked for structured output;
    `call_timeout` caps one call (retries and waits included) and `max_wait` one wait before a retry.
    """
    return LocalModelClient(
        LiteLLMClient(output_profiles=output_profiles, call_timeout=call_timeout, max_wait=max_wait)
    )


def default_model() -> str | None:
    """The model to use when none is configured anywhere: `local` if it is installed, else None.

    Cheap: it only looks for the packages, without importing them or starting anything.
    """
    return "local" if available() else None
