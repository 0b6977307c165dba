"""Signatures of decorated functions: parameters and return annotations as plan inputs and outputs.

Also binds a call's arguments to the JSON inputs the engine gets (defaults filled in, None left out).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from stratum_core.library._codec import Codec, codec, describe_validation
from stratum_core.library._types import DefinitionProblem, merge_contracts, resolved_hints, type_spec
from stratum_core.plan import Contract, Function, TypeSpec

__all__ = ["Signature", "bind_inputs", "build_model", "description_of", "output_spec", "read_signature"]

_RESERVED = frozenset({"result"})


def bind_inputs(
    name: str,
    signature: inspect.Signature,
    codecs: Mapping[str, Codec],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    kind: str = "",
) -> dict[str, Any]:
    """A call's arguments as JSON inputs: defaults filled in, None left out; TypeError or ValueError naming it."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{name}(): {error}") from None
    bound.apply_defaults()
    inputs: dict[str, Any] = {}
    problems: list[str] = []
    for parameter, value in bound.arguments.items():
        if value is None:
            continue
        try:
            inputs[parameter] = codecs[parameter].to_json(value, where=parameter)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError(f"invalid input for {kind}'{name}': " + "; ".join(problems))
    return inputs


@dataclass
class Signature:
    """A function's inputs (specs and codecs), output annotation and the contracts they use."""

    signature: inspect.Signature
    inputs: dict[str, TypeSpec]
    codecs: dict[str, Codec]
    output_annotation: Any
    contracts: dict[str, Contract]


def read_signature(fn: Callable[..., Any], problems: list[DefinitionProblem]) -> Signature:
    """Inputs and output of a function from its annotations; what cannot be expressed goes to `problems`."""
    signature = inspect.signature(fn)
    try:
        hints = resolved_hints(fn)
    except NameError as error:
        problems.append(
            DefinitionProblem(f"the type {error.name!r} is not defined", hint="define contracts before functions")
        )
        hints = {}
    inputs: dict[str, TypeSpec] = {}
    codecs: dict[str, Codec] = {}
    contracts: dict[str, Contract] = {}
    for name, parameter in signature.parameters.items():
        where = f"input.{name}"
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            problems.append(
                DefinitionProblem("*args, **kwargs and positional-only parameters cannot be inputs", path=where)
            )
            continue
        if name in _RESERVED:
            problems.append(
                DefinitionProblem(
                    f"an input cannot be named '{name}'", path=where, hint="`result` names the output in ensure"
                )
            )
            continue
        if name not in hints:
            problems.append(DefinitionProblem("the parameter has no type annotation", path=where))
            continue
        try:
            resolved = type_spec(hints[name])
            merge_contracts(contracts, resolved.contracts)
        except DefinitionProblem as problem:
            problems.append(problem.under(where))
            continue
        spec = resolved.spec
        updates: dict[str, Any] = {}
        if parameter.default is not parameter.empty:
            updates["required"] = False
            if parameter.default is not None:
                try:
                    updates["default"] = codec(hints[name]).to_json(parameter.default, where=name)
                except ValueError as error:
                    problems.append(DefinitionProblem(f"the default does not fit the type: {error}", path=where))
        elif resolved.optional:
            updates["required"] = False
        inputs[name] = spec.model_copy(update=updates) if updates else spec
        codecs[name] = codec(hints[name])
    if "return" not in hints or hints["return"] is type(None):
        problems.append(
            DefinitionProblem("the return type is missing", path="output", hint="annotate it: -> Contract or -> str")
        )
    return Signature(signature, inputs, codecs, hints.get("return"), contracts)


def output_spec(annotation: Any, problems: list[DefinitionProblem], contracts: dict[str, Contract]) -> TypeSpec | None:
    """The plan type of a return annotation (its contracts added to `contracts`); None, with a problem, if none."""
    if annotation is None:
        return None
    try:
        resolved = type_spec(annotation)
        merge_contracts(contracts, resolved.contracts)
    except DefinitionProblem as problem:
        problems.append(problem.under("output"))
        return None
    return resolved.spec


def build_model(model: type[Function], values: dict[str, Any], problems: list[DefinitionProblem]) -> Function | None:
    """The plan function `model(**values)`; None, with a problem in our words, when an option is out of range."""
    try:
        return model(**values)
    except ValidationError as error:
        problems.append(DefinitionProblem(describe_validation(error, "options").removeprefix("options.")))
        return None


def description_of(fn: Callable[..., Any]) -> str | None:
    """A function's docstring, as its description in plans."""
    doc = inspect.getdoc(fn)
    return doc.strip() if doc else None
