"""Plan models back to `.stratum.yaml` text, in the form the loader reads into the same models.

Only what differs from the defaults is written, so an exported plan reads like a hand-written one: `output:
Sentiment` for a contract, `{type: string}` for a primitive field, `required: false` only on optional fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from stratum_core.plan import PRIMITIVE_TYPES, Contract, Flow, Function, Step, TypeSpec

__all__ = ["contract_data", "flow_data", "function_data", "plan_text", "spec_data"]


class _Dumper(yaml.SafeDumper):
    """Small leaf mappings and lists of scalars in flow style (`{type: string}`), as plans are written by hand."""


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    leaf = all(_scalar(v) or (isinstance(v, list) and all(map(_scalar, v))) for v in data.values())
    flow = leaf and len(yaml.safe_dump(data, default_flow_style=True, width=10_000)) <= 90
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(map(_scalar, data)) and len(yaml.safe_dump(data, default_flow_style=True, width=10_000)) <= 90
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if "'" in data and '"' not in data and "\n" not in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)

_FUNCTION_ORDER = ("mode", "description", "intent", "question", "context", "input", "output", "given", "ensure")


def spec_data(spec: TypeSpec, *, short: bool = False) -> Any:
    """A field spec as YAML data; with `short`, a bare contract reference is written as its name."""
    data: dict[str, Any] = spec.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    if spec.items is not None:
        data["items"] = spec_data(spec.items)
    if spec.properties is not None:
        data["properties"] = {key: spec_data(value) for key, value in spec.properties.items()}
    if short and set(data) == {"type"} and data["type"] not in PRIMITIVE_TYPES:
        return data["type"]
    return data


def contract_data(contract: Contract) -> dict[str, Any]:
    """A contract as YAML data: field name -> spec."""
    return {name: spec_data(spec) for name, spec in contract.fields.items()}


def function_data(fn: Function) -> dict[str, Any]:
    """A function as YAML data, `mode` first."""
    data: dict[str, Any] = fn.model_dump(by_alias=True, exclude_defaults=True, mode="json", exclude={"name"})
    data["mode"] = fn.mode
    data["output"] = spec_data(fn.output, short=True)
    if fn.input:
        data["input"] = {name: spec_data(spec) for name, spec in fn.input.items()}
    ordered = {key: data.pop(key) for key in _FUNCTION_ORDER if key in data}
    return {**ordered, **data}


def _step_data(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = _drop_kind(
        step.model_dump(by_alias=True, exclude_defaults=True, mode="json", exclude={"kind"})
    )
    return data


def _drop_kind(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_kind(item) for key, item in value.items() if key != "kind"}
    if isinstance(value, list):
        return [_drop_kind(item) for item in value]
    return value


def flow_data(flow: Flow) -> dict[str, Any]:
    """A flow as YAML data."""
    data: dict[str, Any] = {}
    if flow.description:
        data["description"] = flow.description
    if flow.input:
        data["input"] = {name: spec_data(spec) for name, spec in flow.input.items()}
    if flow.output is not None:
        data["output"] = spec_data(flow.output, short=True)
    if flow.budget is not None:
        data["budget"] = flow.budget.model_dump(exclude_none=True)
    data["steps"] = [_step_data(step) for step in flow.steps]
    if flow.result:
        data["result"] = flow.result if isinstance(flow.result, str) else list(flow.result)
    return data


def plan_text(
    *,
    contracts: Mapping[str, Contract],
    functions: Mapping[str, Function],
    flows: Mapping[str, Flow],
    description: str | None = None,
    header: str | None = None,
    python_path: Sequence[str] = (),
) -> str:
    """The YAML text of a plan (version "1") with these contracts, functions and flows."""
    data: dict[str, Any] = {"version": "1"}
    if description:
        data["description"] = description
    if python_path:
        data["python_path"] = list(python_path)
    if contracts:
        data["contracts"] = {name: contract_data(contract) for name, contract in contracts.items()}
    if functions:
        data["functions"] = {name: function_data(fn) for name, fn in functions.items()}
    if flows:
        data["flows"] = {name: flow_data(flow) for name, flow in flows.items()}
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return f"{header.rstrip()}\n{text}" if header else text
