"""The LLM adapter: a small protocol the engine calls models through, over LiteLLM or the embedded local model."""

from stratum_core.llm._litellm import LiteLLMClient, import_in_background, register_model
from stratum_core.llm._local import LocalModel, LocalModelClient
from stratum_core.llm._protocol import LLMClient, LLMRequest, LLMResponse
from stratum_core.llm._router import default_client, default_model

__all__ = [
    "LLMClient",
    "LLMRequest",
    "LLMResponse",
    "LiteLLMClient",
    "LocalModel",
    "LocalModelClient",
    "default_client",
    "default_model",
    "import_in_background",
    "register_model",
]
