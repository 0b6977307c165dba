"""@contract: pydantic models and plain annotated classes as plan contracts, with their JSON Schema and hash."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from stratum_core.errors import PlanError
from stratum_core.library import contract, contract_info, opaque
from stratum_core.plan import load_plan_text
from stratum_core.plan._schema import content_hash, contract_schema


@contract
class Sentiment(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    confidence: float = Field(ge=0, le=1, description="How sure")
    reasoning: str


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@contract
class Note:
    text: Annotated[str, Field(min_length=1, max_length=200, pattern="^[A-Z]")]
    colour: Colour
    secret: opaque[str]
    tags: list[str] = dataclasses.field(default_factory=list)
    rating: int | None = None
    sentiment: Sentiment | None = None


def test_a_pydantic_contract_compiles_to_the_schema_and_hash_a_plan_would_give() -> None:
    info = contract_info(Sentiment)
    plan = load_plan_text(
        """
version: "1"
contracts:
  Sentiment:
    label: {type: string, enum: [positive, negative, neutral]}
    confidence: {type: number, minimum: 0, maximum: 1, description: How sure}
    reasoning: {type: string}
"""
    )
    assert info.name == "Sentiment"
    assert info.contract == plan.contracts["Sentiment"]
    assert info.schema == contract_schema("Sentiment", plan.contracts)
    assert info.content_hash == content_hash(info.schema) and len(info.content_hash) == 12
    assert info.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert info.schema["required"] == ["label", "confidence", "reasoning"]


def test_a_plain_annotated_class_becomes_a_dataclass_contract_with_constraints_opaque_and_optional_fields() -> None:
    assert dataclasses.is_dataclass(Note)
    note = Note(text="Hi", colour=Colour.RED, secret="s")
    assert note.tags == [] and note.rating is None
    fields = contract_info(Note).contract.fields
    assert fields["text"].min_length == 1 and fields["text"].max_length == 200 and fields["text"].pattern == "^[A-Z]"
    assert fields["colour"].enum == ("red", "blue") and fields["colour"].type == "string"
    assert fields["secret"].opaque and fields["secret"].type == "string"
    assert fields["tags"].type == "array" and fields["tags"].items is not None and not fields["tags"].required
    assert fields["rating"].type == "integer" and not fields["rating"].required
    assert fields["sentiment"].type == "Sentiment" and not fields["sentiment"].required
    assert set(contract_info(Note).contracts) == {"Note", "Sentiment"}
    assert "Sentiment" in contract_info(Note).schema["$defs"]


def test_a_contract_can_be_renamed() -> None:
    @contract(name="Mood")
    class Feeling(BaseModel):
        label: str

    assert contract_info(Feeling).name == "Mood"
    assert contract_info(Feeling).schema["title"] == "Mood"


def test_a_contract_that_refers_back_to_itself_is_refused_with_the_cycle() -> None:
    with pytest.raises(PlanError) as caught:

        @contract
        class Node(BaseModel):
            value: int
            children: list[Node]

    [problem] = caught.value.problems
    assert problem.path == "contracts.Node.children.items"
    assert "contract 'Node' refers back to itself (Node -> Node)" in problem.message
    assert Path(problem.file).resolve() == Path(__file__).resolve() and problem.line > 1
    assert problem.hint is not None and "recursive" in problem.hint


def test_a_field_type_with_no_plan_form_is_refused_naming_the_field() -> None:
    with pytest.raises(PlanError) as caught:

        @contract
        class Mixed:
            value: int | str

    [problem] = caught.value.problems
    assert problem.path == "contracts.Mixed.value"
    assert "the union int | str has no plan type" in problem.message


def test_a_class_that_is_neither_a_model_nor_a_dataclass_cannot_be_a_nested_type() -> None:
    class Plain:
        pass

    with pytest.raises(PlanError) as caught:

        @contract
        class Holder:
            thing: Any
            other: list[Plain]

    [problem] = caught.value.problems
    assert problem.path == "contracts.Holder.other.items"
    assert "Plain has no plan type" in problem.message


def test_two_different_contracts_with_one_name_are_refused() -> None:
    def make(field_type: type) -> type:
        class Same(BaseModel):
            value: field_type  # type: ignore[valid-type]

        return Same

    first, second = make(int), make(str)
    with pytest.raises(PlanError, match="two different contracts are named 'Same'"):

        @contract
        class Both(BaseModel):
            a: first  # type: ignore[valid-type]
            b: second  # type: ignore[valid-type]


def test_a_built_in_type_name_cannot_name_a_contract() -> None:
    with pytest.raises(PlanError, match="'string' is a built-in type"):

        @contract(name="string")
        class Text(BaseModel):
            value: str
