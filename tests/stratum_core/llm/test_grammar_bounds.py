"""Numeric bounds for llama.cpp's grammar: a bounded `number` is sent as the enum of its grid values."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratum_core.llm._grammar_bounds import MAX_VALUES, with_enforced_bounds
from stratum_core.llm._structured import strategy_arguments

SENTIMENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "how sure"},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}


def test_a_number_bounded_at_both_ends_becomes_the_enum_of_its_grid() -> None:
    sent = with_enforced_bounds(SENTIMENT)

    confidence = sent["properties"]["confidence"]
    assert confidence == {"description": "how sure", "enum": [round(i / 100, 2) for i in range(101)]}
    assert sent["properties"]["label"] == SENTIMENT["properties"]["label"]
    assert SENTIMENT["properties"]["confidence"]["maximum"] == 1  # the original is not changed


def test_only_llama_cpps_own_field_gets_the_rewritten_schema() -> None:
    messages = [{"role": "user", "content": "hi"}]

    llama, _ = strategy_arguments(
        "json_schema", schema=SENTIMENT, name="s", schema_field="json_schema", messages=messages
    )
    vllm, _ = strategy_arguments(
        "json_schema", schema=SENTIMENT, name="s", schema_field="structured_outputs", messages=messages
    )

    assert "enum" in llama["extra_body"]["json_schema"]["properties"]["confidence"]
    assert vllm["extra_body"]["structured_outputs"]["json"] == SENTIMENT


@pytest.mark.parametrize(
    ("schema", "values"),
    [
        ({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, (0.01, 1.0, 100)),
        ({"type": "number", "minimum": 0, "exclusiveMaximum": 1}, (0.0, 0.99, 100)),
        ({"type": "number", "minimum": -5, "maximum": 5}, (-5.0, 5.0, 101)),
        ({"type": "number", "minimum": 1, "maximum": 10}, (1.0, 10.0, 901)),
        ({"type": "number", "minimum": 0, "maximum": 500}, (0, 500, 501)),
    ],
)
def test_open_ends_are_left_out_and_the_grid_is_as_fine_as_the_range_needs(
    schema: dict[str, Any], values: tuple[float, float, int]
) -> None:
    grid = with_enforced_bounds(schema)["enum"]

    assert (grid[0], grid[-1], len(grid)) == values


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": 1, "maximum": 5},  # the grammar enforces integer ranges itself
        {"type": "number", "minimum": 0},  # open-ended: no grid
        {"type": "number", "minimum": 0, "maximum": 1e9},  # too many values for a grammar
        {"type": "number", "enum": [0.5, 1.5], "minimum": 0, "maximum": 2},
    ],
)
def test_what_the_grammar_enforces_or_no_grid_can_is_sent_as_it_is(schema: dict[str, Any]) -> None:
    assert with_enforced_bounds(schema) == schema


def test_nested_contracts_and_list_items_are_rewritten_too() -> None:
    schema = {
        "type": "object",
        "properties": {"scores": {"type": "array", "items": {"$ref": "#/$defs/Score"}}},
        "$defs": {"Score": {"type": "object", "properties": {"value": {"type": "number", "minimum": 0, "maximum": 1}}}},
    }

    sent = with_enforced_bounds(schema)

    assert len(sent["$defs"]["Score"]["properties"]["value"]["enum"]) == 101


@settings(deadline=None)  # a busy machine must not fail it
@given(
    low=st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    span=st.floats(min_value=1e-3, max_value=1e4, allow_nan=False),
    low_open=st.booleans(),
    high_open=st.booleans(),
)
def test_every_value_of_a_grid_meets_the_original_bounds(
    low: float, span: float, low_open: bool, high_open: bool
) -> None:
    schema = {
        "type": "number",
        "exclusiveMinimum" if low_open else "minimum": low,
        "exclusiveMaximum" if high_open else "maximum": low + span,
    }

    sent = with_enforced_bounds(schema)

    if "enum" in sent:
        assert 0 < len(sent["enum"]) <= MAX_VALUES
        validator = jsonschema.Draft202012Validator(schema)
        assert all(validator.is_valid(value) for value in sent["enum"])
    else:
        assert sent == schema
