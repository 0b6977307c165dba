"""The JSON Schemas of the reference IR, one per version ("0.1", "0.2", "0.3"), as the reference server defines them.

Each version is closed (`additionalProperties: false` everywhere), so a key that only exists from 0.2 on is an error
in a 0.1 plan, as in the reference. Unlike the reference, every schema error is reported (not only the best match),
each located in the text and said in our words by the same translator as our own plans.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from stratum_core.errors import Problem
from stratum_core.plan._plan_schema import _Translator
from stratum_core.plan._yaml import SourceMap

__all__ = ["REFERENCE_VERSIONS", "reference_schema", "reference_schema_problems"]

REFERENCE_VERSIONS = ("0.1", "0.2", "0.3")

_STR: dict[str, Any] = {"type": "string"}
_NON_EMPTY: dict[str, Any] = {"type": "string", "minLength": 1}
_POSITIVE: dict[str, Any] = {"type": "integer", "minimum": 1}
_TARGET: dict[str, Any] = {"type": ["string", "null"]}
_POLICY: dict[str, Any] = {"enum": ["gate", "flag", "skip"]}
_BUDGET: dict[str, Any] = {
    "type": "object",
    "properties": {"ms": {"type": "integer", "minimum": 1}, "usd": {"type": "number", "minimum": 0}},
    "additionalProperties": False,
}
_BUDGET_TOKENS: dict[str, Any] = {
    **_BUDGET,
    "properties": {**_BUDGET["properties"], "max_tokens": {"type": "integer", "minimum": 1}},
}
_CONTRACT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {"type": _STR, "values": {"type": "array"}},
        "required": ["type"],
        "additionalProperties": False,
    },
}


def _function(version: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "mode": {"enum": ["infer", "compute"] if version == "0.1" else ["infer", "compute", "gate"]},
        "intent": _NON_EMPTY,
        "input": {"type": "object"},
        "output": _STR,
        "ensure": {"type": "array", "items": _STR},
        "budget": _BUDGET,
        "retries": _POSITIVE,
        "model": _STR,
    }
    if version != "0.1":
        properties["budget"] = _BUDGET_TOKENS
        properties["timeout"] = _POSITIVE
        properties["guardrails"] = {"type": "array", "items": _NON_EMPTY}
    required = ["mode", "intent", "input", "output"] if version == "0.1" else ["mode"]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _step(version: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": _NON_EMPTY,
        "function": _STR,
        "inputs": {"type": "object", "additionalProperties": _STR},
        "depends_on": {"type": "array", "items": _STR},
        "output_schema": {"type": "object"},
    }
    if version != "0.1":
        properties.update(
            {
                "intent": _NON_EMPTY,
                "flow": _STR,
                "agent": _STR,
                "on_approve": _TARGET,
                "on_revise": _TARGET,
                "on_kill": _TARGET,
                "on_fail": _STR,
                "next": _STR,
                "skip_if": _STR,
                "skip_reason": _STR,
                "policy": _POLICY,
                "policy_fallback": _POLICY,
                "ensure": {"type": "array", "items": _STR},
                "retries": _POSITIVE,
                "output_contract": _STR,
                "model": _STR,
                "budget": _BUDGET_TOKENS,
                "max_iterations": _POSITIVE,
                "exit_criterion": _STR,
                "guardrails": {"type": "array", "items": _NON_EMPTY},
            }
        )
    if version == "0.3":
        properties.update(
            {
                "type": {"enum": ["function", "inline", "flow", "decompose", "parallel_dispatch"]},
                "source": _STR,
                "max_concurrent": _POSITIVE,
                "isolation": {"enum": ["worktree", "branch"]},
                "require": {"oneOf": [{"enum": ["all", "any"]}, _POSITIVE]},
                "merge": {"enum": ["sequential_apply", "manual"]},
                "intent_template": _STR,
            }
        )
    required = ["id", "function", "inputs"] if version == "0.1" else ["id"]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _flow(version: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "input": {"type": "object"},
        "output": _STR,
        "budget": _BUDGET,
        "steps": {"type": "array", "minItems": 1, "items": _step(version)},
    }
    if version != "0.1":
        properties["budget"] = _BUDGET_TOKENS
        properties["max_rounds"] = _POSITIVE
    required = ["input", "steps", "output"] if version == "0.1" else ["input", "steps"]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_WORKFLOW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
        "description": _NON_EMPTY,
        "input": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["string", "boolean", "integer", "number", "array", "object"]},
                    "required": {"type": "boolean"},
                    "default": {},
                },
                "required": ["type"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["name", "description", "input"],
    "additionalProperties": False,
}


@cache
def reference_schema(version: str) -> dict[str, Any]:
    """The closed JSON Schema of reference IR `version` ("0.1", "0.2" or "0.3")."""
    properties: dict[str, Any] = {
        "version": {"const": version},
        "contracts": {"type": "object", "additionalProperties": _CONTRACT},
        "functions": {"type": "object", "additionalProperties": _function(version)},
        "flows": {"type": "object", "additionalProperties": _flow(version)},
    }
    if version != "0.1":
        properties["workflow"] = _WORKFLOW
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": ["version"],
        "additionalProperties": False,
    }
    return copy.deepcopy(schema)


@cache
def _validator(version: str) -> Draft202012Validator:
    return Draft202012Validator(reference_schema(version))


def reference_schema_problems(data: Any, source_map: SourceMap, source: str, version: str) -> list[Problem]:
    """Every way `data` breaks the schema of reference IR `version`, as located problems."""
    translator = _Translator(source, source_map)
    for error in _validator(version).iter_errors(data):
        translator.translate(error)
    return sorted(translator.problems.values())
