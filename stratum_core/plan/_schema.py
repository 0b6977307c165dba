"""Compile plan types to JSON Schema 2020-12, and hash them.

A contract compiles to an object schema whose nested contracts live under `$defs`, so every schema is
self-contained (what structured output and MCP tool schemas need). The content hash is the sha256 of the
canonical JSON (sorted keys, no whitespace), 12 hex characters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from stratum_core.plan._model import PRIMITIVE_TYPES, Contract, TypeSpec

__all__ = ["canonical_json", "content_hash", "contract_schema", "fields_schema", "type_schema"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_KEYWORDS = (
    ("description", "description"),
    ("enum", "enum"),
    ("const", "const"),
    ("default", "default"),
    ("minimum", "minimum"),
    ("maximum", "maximum"),
    ("exclusive_minimum", "exclusiveMinimum"),
    ("exclusive_maximum", "exclusiveMaximum"),
    ("min_length", "minLength"),
    ("max_length", "maxLength"),
    ("pattern", "pattern"),
    ("format", "format"),
    ("min_items", "minItems"),
    ("max_items", "maxItems"),
    ("unique_items", "uniqueItems"),
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: Any) -> str:
    """sha256 of the canonical JSON of `value`, 12 hex characters."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:12]


class _Compiler:
    def __init__(self, contracts: Mapping[str, Contract], root: str | None = None) -> None:
        self.contracts = contracts
        self.root = root
        self.defs: dict[str, dict[str, Any]] = {}
        self._compiling: set[str] = set()

    def spec(self, spec: TypeSpec) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        name = spec.type
        if name is not None and name == self.root:
            schema["$ref"] = "#"  # a contract that contains itself (a tree)
        elif name is not None and name not in PRIMITIVE_TYPES:
            self.define(name)
            schema["$ref"] = f"#/$defs/{name}"
        elif name is not None and name != "any":
            schema["type"] = name
        for attribute, keyword in _KEYWORDS:
            value = getattr(spec, attribute)
            if value is not None:
                schema[keyword] = list(value) if isinstance(value, tuple) else value
        if spec.items is not None:
            schema["items"] = self.spec(spec.items)
        if spec.properties is not None:
            schema.update(self.fields(spec.properties))
        return schema

    def fields(self, fields: Mapping[str, TypeSpec]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {key: self.spec(value) for key, value in fields.items()},
            "required": [key for key, value in fields.items() if value.required],
            "additionalProperties": False,
        }

    def define(self, name: str) -> None:
        if name in self.defs or name in self._compiling:
            return
        contract = self.contracts.get(name)
        if contract is None:
            raise KeyError(f"unknown contract {name!r}")
        self._compiling.add(name)
        body = {"title": name, **self.fields(contract.fields)}
        if contract.description:
            body["description"] = contract.description
        self.defs[name] = body
        self._compiling.discard(name)

    def finish(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.defs:
            schema["$defs"] = dict(sorted(self.defs.items()))
        return schema


def contract_schema(name: str, contracts: Mapping[str, Contract]) -> dict[str, Any]:
    """The JSON Schema of contract `name`: an object at the root, nested contracts under `$defs`."""
    compiler = _Compiler(contracts, root=name)
    compiler.define(name)
    root = dict(compiler.defs.pop(name))
    return {"$schema": DIALECT, **compiler.finish(root)}


def type_schema(spec: TypeSpec, contracts: Mapping[str, Contract]) -> dict[str, Any]:
    """The JSON Schema of one type; a contract type is inlined at the root."""
    if spec.type is not None and spec.type not in PRIMITIVE_TYPES and spec.items is None:
        schema = contract_schema(spec.type, contracts)
        if spec.description:
            schema["description"] = spec.description
        return schema
    compiler = _Compiler(contracts)
    return {"$schema": DIALECT, **compiler.finish(compiler.spec(spec))}


def fields_schema(
    fields: Mapping[str, TypeSpec], contracts: Mapping[str, Contract], *, title: str | None = None
) -> dict[str, Any]:
    """An object schema for named fields (a function's or a flow's input)."""
    compiler = _Compiler(contracts)
    schema = compiler.fields(fields)
    if title:
        schema = {"title": title, **schema}
    return {"$schema": DIALECT, **compiler.finish(schema)}
