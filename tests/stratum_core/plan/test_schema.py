from __future__ import annotations

import json
from pathlib import Path

import pytest
from inline_snapshot import snapshot
from jsonschema import Draft202012Validator

from stratum_core.plan import AdaptiveFunction, ComputeFunction, HumanFunction, InferFunction, load_plan_text
from stratum_core.plan._plan_schema import plan_schema
from stratum_core.plan._schema import content_hash, contract_schema
from stratum_core.plan._yaml import parse_yaml

PLANS = sorted((Path(__file__).parents[3] / "plans").glob("*.stratum.yaml"))

CONTRACTS = """\
version: "1"
contracts:
  Customer:
    name: {type: string}
    plan: {type: string, values: [free, team]}
  Ticket:
    text: {type: string, minLength: 1}
    note: {type: string, opaque: true, required: false}
    tags: {type: array, items: {type: string}, maxItems: 3}
    customer: {type: Customer}
"""


def test_a_contract_compiles_to_a_self_contained_json_schema() -> None:
    plan = load_plan_text(CONTRACTS)
    schema = contract_schema("Ticket", plan.contracts)
    Draft202012Validator.check_schema(schema)
    assert schema == snapshot(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Ticket",
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1},
                "note": {"type": "string"},
                "tags": {"type": "array", "maxItems": 3, "items": {"type": "string"}},
                "customer": {"$ref": "#/$defs/Customer"},
            },
            "required": ["text", "tags", "customer"],
            "additionalProperties": False,
            "$defs": {
                "Customer": {
                    "title": "Customer",
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "plan": {"type": "string", "enum": ["free", "team"]}},
                    "required": ["name", "plan"],
                    "additionalProperties": False,
                }
            },
        }
    )


def test_contract_hashes_are_stable_and_change_with_the_contract() -> None:
    plan = load_plan_text(CONTRACTS)
    assert content_hash(contract_schema("Ticket", plan.contracts)) == snapshot("f1d2a8bf8c77")
    assert content_hash(contract_schema("Customer", plan.contracts)) == snapshot("75ee4e709011")
    changed = load_plan_text(CONTRACTS.replace("values: [free, team]", "values: [free, team, enterprise]"))
    assert content_hash(contract_schema("Customer", changed.contracts)) != content_hash(
        contract_schema("Customer", plan.contracts)
    )


def test_the_plan_schema_is_a_valid_draft_2020_12_schema_with_descriptions() -> None:
    schema = plan_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for name, definition in schema["$defs"].items():
        for key, value in definition.get("properties", {}).items():
            assert "description" in value or "$ref" in value, f"{name}.{key} has no description for editors"


@pytest.mark.parametrize(
    ("model", "definition"),
    [
        (InferFunction, "inferFunction"),
        (ComputeFunction, "computeFunction"),
        (HumanFunction, "humanFunction"),
        (AdaptiveFunction, "adaptiveFunction"),
    ],
)
def test_every_function_option_of_the_models_is_in_the_schema(model: type, definition: str) -> None:
    keys = set(plan_schema()["$defs"][definition]["properties"])
    reference_only = {"guardrails", "output_schema", "file_ensure"}  # checks of reference plans (0.x) only
    # fields the loader fills in itself (excluded from dumps, e.g. a learned context it read) are not plan keys
    loader_filled = {name for name, info in model.model_fields.items() if info.exclude}
    fields = {info.alias or name for name, info in model.model_fields.items()} - {
        "name",
        *reference_only,
        *loader_filled,
    }
    assert fields <= keys


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_every_example_plan_passes_the_schema(path: Path) -> None:
    data = parse_yaml(path.read_text(encoding="utf-8")).data
    if data["version"] != "1":
        return  # a reference plan: its version's own schema checks it (tests/stratum_core/plan/reference)
    errors = list(Draft202012Validator(plan_schema()).iter_errors(data))
    assert errors == []


def test_the_checked_in_schema_is_the_one_the_loader_uses() -> None:
    checked_in = Path(__file__).parents[3] / "stratum_core" / "plan" / "plan.schema.json"
    assert json.loads(checked_in.read_text(encoding="utf-8")) == plan_schema()
