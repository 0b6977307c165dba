"""How an output contract is asked of a model: a JSON-schema response format, or JSON mode with the schema in text.

Pure functions, no LiteLLM: the adapter passes in what LiteLLM knows about the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias

StructuredMode: TypeAlias = Literal["json_schema", "json_object"]
Preference: TypeAlias = Literal["auto", "json_schema", "json_object"]

JSON_OBJECT_INSTRUCTION = "Answer with one JSON object only, no other text. It must be valid against this JSON Schema:"


def choose_mode(
    preference: Preference, *, model: str, api_base: str | None, supports_response_schema: Callable[[str], bool]
) -> StructuredMode:
    """Pick the structured-output mode for a call.

    "auto" uses json_schema when LiteLLM says the model supports it, or for an `openai/` model on an explicit
    api_base (OpenAI-compatible servers such as llama.cpp accept json_schema); otherwise JSON mode.
    """
    if preference != "auto":
        return preference
    if api_base is not None and model.startswith("openai/"):
        return "json_schema"
    return "json_schema" if supports_response_schema(model) else "json_object"


def json_schema_format(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The OpenAI `response_format` for a JSON schema; strict only when the schema meets strict mode's rules.

    The name is cut down to what OpenAI accepts (letters, digits, `_` and `-`, at most 64).
    """
    safe_name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "output"
    spec = {"name": safe_name, "schema": dict(schema), "strict": is_strict(schema)}
    return {"type": "json_schema", "json_schema": spec}


def is_strict(schema: Mapping[str, Any]) -> bool:
    """True when every object in the schema closes `additionalProperties` and requires all its properties.

    OpenAI's strict mode rejects any other schema, so a schema that falls short is sent with strict off.
    """
    for node in _subschemas(schema):
        if node.get("type") == "object" or "properties" in node:
            properties: Mapping[str, Any] = node.get("properties") or {}
            if node.get("additionalProperties", True) is not False or set(node.get("required") or ()) != set(
                properties
            ):
                return False
    return True


def with_schema_instruction(
    messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """The messages with the JSON-mode instruction and the schema text added as system text.

    The text is appended to a leading system message when there is one (some chat templates accept a single system
    message, first), else a system message is put first.
    """
    instruction = f"{JSON_OBJECT_INSTRUCTION}\n{json.dumps(schema, indent=2, sort_keys=True)}"
    out = list(messages)
    if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{instruction}"}
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def _subschemas(schema: Any) -> Iterator[Mapping[str, Any]]:
    """The schema and every schema nested in it, following the keywords that hold schemas."""
    if not isinstance(schema, Mapping):
        return
    yield schema
    for key in _SCHEMA_MAPS:
        for child in (schema.get(key) or {}).values():
            yield from _subschemas(child)
    for key in _SCHEMA_LISTS:
        for child in schema.get(key) or ():
            yield from _subschemas(child)
    for key in _SCHEMA_VALUES:
        yield from _subschemas(schema.get(key))
