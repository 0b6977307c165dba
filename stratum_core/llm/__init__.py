"""The LLM adapter: a small protocol the engine calls models through, and its LiteLLM implementation."""

from stratum_core.llm._litellm import LiteLLMClient, register_model
from stratum_core.llm._protocol import LLMClient, LLMRequest, LLMResponse

__all__ = ["LLMClient", "LLMRequest", "LLMResponse", "LiteLLMClient", "register_model"]
