"""How an output contract is asked of a model: one output strategy per provider, with fallback.

Three strategies, best first:
- `json_schema`: the provider constrains decoding to the schema (OpenAI's `response_format`, vLLM's structured
  outputs, llama.cpp's `json_schema` grammar, Ollama's `format`);
- `json_object`: JSON mode, with the schema as text in the prompt;
- `text`: no response format at all; the schema is in the prompt and the answer is parsed as text.

`output_profile` picks the chain for a model from LiteLLM's capability data and Stratum's own table for
self-hosted servers (which LiteLLM cannot know), or from what the user configured. When a provider rejects a
strategy (`is_strategy_rejection`), the client falls back to the next one for that attempt. Whatever the strategy,
the engine still validates the answer and retries with the violation: a grammar may not enforce every keyword.

Pure functions, no LiteLLM: the adapter passes in what LiteLLM knows about the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

from stratum_core.llm._grammar_bounds import with_enforced_bounds

__all__ = [
    "JSON_OBJECT_INSTRUCTION",
    "SCHEMA_FIELDS",
    "STRATEGIES",
    "Capabilities",
    "OutputProfile",
    "OutputStrategy",
    "Preference",
    "SchemaField",
    "is_strategy_rejection",
    "is_strict",
    "json_schema_format",
    "output_profile",
    "strategy_arguments",
    "with_schema_instruction",
]

OutputStrategy: TypeAlias = Literal["json_schema", "json_object", "text"]
STRATEGIES: tuple[OutputStrategy, ...] = get_args(OutputStrategy)

SchemaField: TypeAlias = Literal["response_format", "json_schema", "structured_outputs", "guided_json"]
"""Where a `json_schema` request carries the schema.

response_format: OpenAI's `response_format: {type: json_schema}` (OpenAI, most hosted providers, llama.cpp's
server, LM Studio, vLLM; LiteLLM turns it into Ollama's `format`); json_schema: llama.cpp's own top-level
`json_schema` field; structured_outputs: vLLM's `structured_outputs: {json: ...}` (vLLM 0.12 and later);
guided_json: vLLM's `guided_json` (before 0.12).
"""
SCHEMA_FIELDS: tuple[SchemaField, ...] = get_args(SchemaField)

Preference: TypeAlias = Literal["auto", "json_schema", "json_object", "text"]
"""A client-wide choice: `auto` uses each model's profile; a strategy forces the chain to start there."""

JSON_OBJECT_INSTRUCTION = "Answer with one JSON object only, no other text. It must be valid against this JSON Schema:"


@dataclass(frozen=True)
class Capabilities:
    """What LiteLLM's model data says a hosted model supports."""

    response_schema: bool
    json_mode: bool


@dataclass(frozen=True, kw_only=True)
class OutputProfile:
    """How one model is asked for structured output: the strategies to try in order, and the schema's field.

    `reason` says where the profile came from, for docs and error messages.
    """

    strategies: tuple[OutputStrategy, ...]
    schema_field: SchemaField = "response_format"
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ValueError("an output profile needs at least one strategy")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown output strategies {unknown}; choose from {list(STRATEGIES)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"output strategies repeat: {list(self.strategies)}")
        if self.schema_field not in SCHEMA_FIELDS:
            raise ValueError(f"unknown schema field {self.schema_field!r}; choose from {list(SCHEMA_FIELDS)}")

    def starting_at(self, preference: Preference) -> OutputProfile:
        """This profile with the chain cut to start at `preference` (kept whole for `auto`)."""
        if preference == "auto":
            return self
        chain = STRATEGIES[STRATEGIES.index(preference) :]
        kept = tuple(s for s in self.strategies if s in chain) or chain
        return OutputProfile(strategies=kept, schema_field=self.schema_field, reason=f"{self.reason}; forced")


_ALL: tuple[OutputStrategy, ...] = STRATEGIES

# Self-hosted servers, by LiteLLM provider prefix: LiteLLM has no capability data for the model behind them.
_SELF_HOSTED: dict[str, OutputProfile] = {
    "hosted_vllm": OutputProfile(strategies=_ALL, schema_field="structured_outputs", reason="vLLM structured outputs"),
    "ollama": OutputProfile(strategies=_ALL, reason="Ollama structured outputs (format)"),
    "ollama_chat": OutputProfile(strategies=_ALL, reason="Ollama structured outputs (format)"),
    "lm_studio": OutputProfile(strategies=_ALL, reason="LM Studio structured output"),
    "llamafile": OutputProfile(strategies=_ALL, reason="llama.cpp server (llamafile)"),
}
_OPENAI_COMPATIBLE = OutputProfile(
    strategies=_ALL, reason="an OpenAI-compatible server on api_base (llama.cpp, vLLM, LM Studio, ...)"
)


def output_profile(
    model: str,
    *,
    api_base: str | None,
    capabilities: Capabilities,
    configured: OutputProfile | None = None,
) -> OutputProfile:
    """The output strategies for `model`: what was configured, else Stratum's table, else LiteLLM's data.

    A hosted model gets `json_schema` only when LiteLLM says it supports response schemas, `json_object` only
    when it supports `response_format`; `text` always comes last, since every chat model can answer in text.
    """
    if configured is not None:
        return configured
    provider = model.split("/", 1)[0] if "/" in model else ""
    if provider in _SELF_HOSTED:
        return _SELF_HOSTED[provider]
    if api_base is not None and provider in ("openai", "custom_openai", "text-completion-openai", ""):
        return _OPENAI_COMPATIBLE
    chain: list[OutputStrategy] = []
    if capabilities.response_schema:
        chain.append("json_schema")
    if capabilities.json_mode:
        chain.append("json_object")
    chain.append("text")
    supported = "response schema" if capabilities.response_schema else "JSON mode" if capabilities.json_mode else ""
    reason = f"LiteLLM's data: supports {supported}" if supported else "LiteLLM's data: no structured output"
    return OutputProfile(strategies=tuple(chain), reason=reason)


def strategy_arguments(
    strategy: OutputStrategy,
    *,
    schema: Mapping[str, Any],
    name: str,
    schema_field: SchemaField,
    messages: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """The LiteLLM keyword arguments and the messages for one strategy.

    Fields a provider's OpenAI schema lacks go in `extra_body`, which LiteLLM passes through to the request body.
    """
    match strategy:
        case "json_schema":
            match schema_field:
                case "response_format":
                    return {"response_format": json_schema_format(schema, name)}, list(messages)
                case "json_schema":  # llama.cpp: its grammar enforces a number's range only as an enum
                    return {"extra_body": {"json_schema": with_enforced_bounds(schema)}}, list(messages)
                case "structured_outputs":
                    return {"extra_body": {"structured_outputs": {"json": dict(schema)}}}, list(messages)
                case "guided_json":
                    return {"extra_body": {"guided_json": dict(schema)}}, list(messages)
        case "json_object":
            # A provider without JSON mode drops the response_format; the schema still travels in the prompt.
            arguments = {"response_format": {"type": "json_object"}, "drop_params": True}
            return arguments, with_schema_instruction(messages, schema)
        case "text":
            return {}, with_schema_instruction(messages, schema)


# What a provider says when it refuses a structured-output request (not a fault of the prompt or the key): the error
# names one of the fields that carry it (response_format, json_schema, guided_json, structured_outputs, JSON mode's
# json_object), or the grammar a server compiles from the schema failed. A bare "schema" is not enough: a tool's
# parameters, or a request body that does not match the API, are schemas too, and falling back would hide them.
_REJECTION = re.compile(
    r"response[ _]format|json[ _]schema|guided[ _](?:json|decoding)|structured[ _]outputs?|json_object"
    r"|\bgrammar\b.*(?:pars|compil|too large|too complex|not supported|unsupported|invalid)"
    r"|(?:pars|compil|build)\w*\b.*\bgrammar\b",
    re.IGNORECASE,
)
_REJECTION_STATUS = frozenset({400, 422, 500, 501})


def is_strategy_rejection(status: int | None, detail: str) -> bool:
    """True when a failed call reads as the provider refusing the output strategy (fall back, don't fail).

    Servers say it with a 400 or 422 ("response_format json_schema is not supported", "failed to parse grammar",
    "Invalid schema for response_format"), some with a 500 from their grammar compiler; the text must name a
    structured-output field or the grammar built from it (an error about some other schema is not a refusal).
    """
    return (status is None or status in _REJECTION_STATUS) and _REJECTION.search(detail) is not None


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
