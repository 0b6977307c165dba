"""Static checks of contracts and functions: type names, expressions, and each mode's own rules."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path as FilePath

from stratum_core.plan._check_context import CheckContext
from stratum_core.plan._imports import CallChecks, call_target_problem
from stratum_core.plan._learned import LearnedError, function_contract_hash, load_learned
from stratum_core.plan._model import (
    PRIMITIVE_TYPES,
    AdaptiveFunction,
    ComputeFunction,
    Contract,
    Function,
    HumanFunction,
    InferFunction,
    TypeSpec,
)
from stratum_core.plan._plan_schema import describe, did_you_mean
from stratum_core.plan._schema import contract_schema
from stratum_core.plan._typecheck import check_expression, check_feed, function_output
from stratum_core.plan._types import Ty, can_feed, from_spec, literal_ty, lookup_field, ty_text
from stratum_core.plan._yaml import Path

__all__ = ["check_contracts", "check_functions", "check_type_names"]

_FORM_TYPES = frozenset({"string", "number", "integer", "boolean"})
MAX_CONTRACT_DEPTH = 32
"""Longest chain of contracts nested in one another's fields."""
CALL_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def check_type_names(ctx: CheckContext, spec: TypeSpec | None, path: Path) -> None:
    """Report every contract name in `spec` (nested items and properties too) that no contract declares."""
    if spec is None:
        return
    raw = ctx.raw(path)
    type_path = path if isinstance(raw, str) else (*path, "type")
    if spec.type is not None and not ctx.type_declared(spec.type):
        message, hint = ctx.unknown_name("contract", spec.type, ctx.declared_contracts | set(PRIMITIVE_TYPES))
        ctx.report(type_path, message, hint)
    if spec.enum is not None and spec.type in _FORM_TYPES:
        wanted = Ty(spec.type)
        for index, value in enumerate(spec.enum):
            if not can_feed(literal_ty(value), wanted):
                key = "values" if isinstance(raw, dict) and "values" in raw else "enum"
                ctx.report((*path, key, index), f"{describe(value)} is not {ty_text(wanted)}")
    if spec.items is not None:
        check_type_names(ctx, spec.items, (*path, "items"))
    for name, child in (spec.properties or {}).items():
        check_type_names(ctx, child, (*path, "properties", name))


def _named_types(spec: TypeSpec) -> Iterator[str]:
    """The type names used in `spec`, its items and properties, at any depth."""
    stack = [spec]
    while stack:
        item = stack.pop()
        if item.type is not None and item.type not in PRIMITIVE_TYPES:
            yield item.type
        if item.items is not None:
            stack.append(item.items)
        stack.extend((item.properties or {}).values())


def _too_deep_contracts(contracts: Mapping[str, Contract]) -> dict[str, list[str]]:
    """Contracts from which a chain of nested contracts (a cycle followed once) is longer than MAX_CONTRACT_DEPTH.

    Each maps to the chain found, for the message. Found without recursion: a chain of thousands is refused, not a
    RecursionError.
    """
    uses = {
        name: sorted({used for spec in contract.fields.values() for used in _named_types(spec) if used in contracts})
        for name, contract in contracts.items()
    }
    longest: dict[str, list[str]] = {}  # the longest chain starting at each finished contract
    for root in uses:
        if root in longest:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: set[str] = {root}
        while stack:
            name, index = stack[-1]
            children = uses[name]
            if index < len(children):
                stack[-1] = (name, index + 1)
                child = children[index]
                if child not in longest and child not in on_path:
                    stack.append((child, 0))
                    on_path.add(child)
                continue
            stack.pop()
            on_path.discard(name)
            best = max((longest[child] for child in children if child in longest), key=len, default=[])
            longest[name] = [name, *best[:MAX_CONTRACT_DEPTH]]
    return {name: chain for name, chain in longest.items() if len(chain) > MAX_CONTRACT_DEPTH}


def check_contracts(ctx: CheckContext) -> None:
    """Contract names, their fields' types, their nesting, and that each compiles to JSON Schema."""
    for name, contract in ctx.plan.contracts.items():
        path: Path = ("contracts", name)
        if name in PRIMITIVE_TYPES:
            ctx.report(path, f"'{name}' is a built-in type and cannot name a contract", key=True)
        for field_name, spec in contract.fields.items():
            check_type_names(ctx, spec, (*path, field_name))
    too_deep = _too_deep_contracts(ctx.plan.contracts)
    inner = {chain[1] for chain in too_deep.values()}  # reported through the contract that uses it
    heads = [name for name in too_deep if name not in inner] or list(too_deep)[:1]
    for name in heads:
        chain = too_deep[name]
        shown = " -> ".join(chain[:4]) + " -> ..."
        ctx.report(
            ("contracts", name),
            f"contracts nest more than {MAX_CONTRACT_DEPTH} levels deep from here ({shown})",
            "flatten the nesting",
            key=True,
        )
    for name in ctx.plan.contracts:
        if too_deep:
            break  # compiling would recurse through the whole chain
        try:
            contract_schema(name, ctx.plan.contracts)
        except KeyError:
            continue  # an unknown contract inside it, reported above


def check_functions(ctx: CheckContext, *, check_imports: CallChecks) -> None:
    """Every function: its types, expressions, and the rules of its mode."""
    for name, fn in ctx.plan.functions.items():
        path: Path = ("functions", name)
        for input_name, spec in fn.input.items():
            check_type_names(ctx, spec, (*path, "input", input_name))
        check_type_names(ctx, fn.output, (*path, "output"))
        inputs = {key: from_spec(spec) for key, spec in fn.input.items()}
        with_result = {**inputs, "result": from_spec(fn.output)}
        for item_path, text in ctx.item_paths((*path, "given")):
            check_expression(ctx, item_path, text, inputs, role="given")
        for item_path, text in ctx.item_paths((*path, "ensure")):
            check_expression(ctx, item_path, text, with_result, role="ensure")
        if isinstance(fn, InferFunction):
            _check_infer(ctx, fn, path, with_result)
        elif isinstance(fn, ComputeFunction):
            _check_compute(ctx, fn, path, inputs, check_imports=check_imports)
        elif isinstance(fn, HumanFunction):
            _check_human(ctx, fn, path)
        elif isinstance(fn, AdaptiveFunction):
            _check_adaptive(ctx, fn, path, inputs)


def _check_learned(ctx: CheckContext, fn: InferFunction, path: Path) -> None:
    """The `learned:` file exists, reads as a learned context for this function, and fits its current contract."""
    if fn.learned is None:
        return
    where = (*path, "learned")
    if ctx.untrusted:
        ctx.report(where, "learned context is not allowed in plans sent by a client (it reads a file)")
        return
    base = ctx.loaded.base_dir if ctx.loaded.base_dir is not None else FilePath.cwd()
    file = base / fn.learned
    try:
        learned = load_learned(file)
    except LearnedError as e:
        ctx.report(where, f"{fn.learned}: {e}", "run `stratum optimize` to write it")
        return
    try:
        expected = function_contract_hash(fn.input, fn.output, ctx.plan.contracts)
    except KeyError:
        return  # an unknown contract, reported where it is named
    if learned.function != fn.name:
        ctx.report(where, f"{fn.learned}: it was learned for function '{learned.function}', not '{fn.name}'")
    elif learned.contract_hash != expected:
        ctx.report(
            where,
            f"{fn.learned}: it was learned for another contract (hash {learned.contract_hash}; the function's "
            f"input and output now hash to {expected})",
            "run `stratum optimize` again on the changed function",
        )
    else:
        ctx.loaded.learned[fn.name] = learned


def _check_infer(ctx: CheckContext, fn: InferFunction, path: Path, with_result: dict[str, Ty]) -> None:
    _check_learned(ctx, fn, path)
    if fn.refine is not None:
        check_expression(ctx, (*path, "refine", "until"), fn.refine.until, with_result, role="until")
        if fn.refine.feedback is not None:
            check_expression(ctx, (*path, "refine", "feedback"), fn.refine.feedback, with_result, role="feedback")
    if fn.samples is not None and fn.stable:
        ctx.report((*path, "samples"), "samples only apply when stable is false", "add stable: false", key=True)
    if fn.min_agreement is not None and fn.stable:
        ctx.report((*path, "min_agreement"), "min_agreement only applies when stable is false", key=True)
    quorum = fn.quorum
    if quorum is None:
        return
    quorum_path: Path = (*path, "quorum")
    if quorum.threshold is None:
        ctx.report(quorum_path, "quorum needs 'threshold' (how many answers must agree)", key=True)
    elif quorum.threshold > quorum.n:
        ctx.report((*quorum_path, "threshold"), f"threshold {quorum.threshold} is more than n ({quorum.n})")
    output = from_spec(fn.output)
    if quorum.agree_on is None:
        if (output.kind == "contract" and output.name in ctx.plan.contracts) or output.fields:
            ctx.report(quorum_path, "quorum needs 'agree_on' (the output field the answers must agree on)", key=True)
        return
    _, error, candidates = lookup_field(output, quorum.agree_on, ctx.plan.contracts)
    if error is not None:
        ctx.report((*quorum_path, "agree_on"), f"agree_on: {error}", did_you_mean(quorum.agree_on, candidates))


def _check_compute(
    ctx: CheckContext, fn: ComputeFunction, path: Path, inputs: dict[str, Ty], *, check_imports: CallChecks
) -> None:
    if fn.call is not None and fn.expr is not None:
        ctx.report(path, "a compute function has 'call' or 'expr', not both", at=(*path, "expr"), key=True)
    if fn.call is None and fn.expr is None and ctx.plan.version not in ("0.1", "0.2", "0.3"):
        ctx.report(
            path,
            "a compute function needs 'call' or 'expr'",
            "only reference plans, versions 0.1 to 0.3, leave compute functions to the calling agent",
            key=True,
        )
    if fn.expr is not None:
        check_expression(ctx, (*path, "expr"), fn.expr, inputs, role="expr", expect=from_spec(fn.output))
    if fn.call is not None and check_imports and CALL_TARGET.fullmatch(fn.call):
        problem = call_target_problem(
            fn.call, search_path=ctx.plan.module_search_path(), statically=check_imports == "static"
        )
        if problem is not None:
            ctx.report((*path, "call"), problem[0], problem[1])


def _check_human(ctx: CheckContext, fn: HumanFunction, path: Path) -> None:
    output = from_spec(fn.output)
    output_path: Path = (*path, "output")
    fields: list[tuple[str, TypeSpec]]
    if output.kind == "contract":
        contract = ctx.plan.contracts.get(str(output.name))
        if contract is None:
            return
        fields = list(contract.fields.items())
        owner = f"decision type '{output.name}'"
    elif output.kind in _FORM_TYPES or output.kind == "any":
        fields = [("value", fn.output)]
        owner = "the decision"
    else:
        ctx.report(
            output_path,
            f"the decision ({ty_text(output)}) cannot be asked as a form",
            "a decision is a contract of flat fields, or a string, number, integer or boolean",
        )
        return
    flat = True
    for name, spec in fields:
        if spec.type not in _FORM_TYPES and not (spec.type is None and spec.enum is not None):
            flat = False
            ctx.report(
                output_path,
                f"{owner} cannot be asked as a form: field '{name}' is {ty_text(from_spec(spec, as_field=False))}",
                "a form has only string, number, integer, boolean and enum fields",
            )
    if fn.options is not None and flat and fields:
        required = [(name, spec) for name, spec in fields if spec.required]
        name, spec = (required or fields)[0]
        wanted = from_spec(spec)
        for index, option in enumerate(fn.options):
            if not can_feed(literal_ty(option), wanted):
                ctx.report(
                    (*path, "options", index),
                    f"option {describe(option)} is not {ty_text(wanted)}",
                    f"options are the values of field '{name}'" if name != "value" else None,
                )
            elif spec.enum is not None and option not in spec.enum:
                allowed = ", ".join(describe(value) for value in spec.enum)
                ctx.report(
                    (*path, "options", index),
                    f"option {describe(option)} is not a value of field '{name}'",
                    f"one of {allowed}",
                )
    _check_on_timeout(ctx, fn, path, fields, owner)


def _check_on_timeout(
    ctx: CheckContext, fn: HumanFunction, path: Path, fields: list[tuple[str, TypeSpec]], owner: str
) -> None:
    value = fn.on_timeout
    where: Path = (*path, "on_timeout")
    if value == "raise":
        return
    if fields == [("value", fn.output)]:
        if not can_feed(literal_ty(value), from_spec(fn.output)):
            ctx.report(where, f"on_timeout {describe(value)} is not {ty_text(from_spec(fn.output))}")
        return
    if not isinstance(value, dict):
        ctx.report(where, f"on_timeout must be 'raise' or a value of {owner}, got {describe(value)}")
        return
    known = dict(fields)
    for key, item in value.items():
        if key not in known:
            ctx.report((*where, key), f"{owner} has no field '{key}'", did_you_mean(key, known), key=True)
        elif not can_feed(literal_ty(item), from_spec(known[key])):
            ctx.report((*where, key), f"{describe(item)} is not {ty_text(from_spec(known[key]))}")
    for key, spec in fields:
        if spec.required and spec.default is None and key not in value:
            ctx.report(where, f"on_timeout is missing field '{key}' of {owner}")


def _check_adaptive(ctx: CheckContext, fn: AdaptiveFunction, path: Path, inputs: dict[str, Ty]) -> None:
    check_expression(ctx, (*path, "dispatch"), fn.dispatch, inputs, role="dispatch")
    for key, mode in (("compute", "compute"), ("infer", "infer")):
        name = getattr(fn, key)
        target: Function | None = ctx.function(name)
        where: Path = (*path, key)
        if name not in ctx.declared_functions:
            message, hint = ctx.unknown_name("function", name, ctx.declared_functions)
            ctx.report(where, message, hint)
            continue
        if target is None:
            continue
        if target.mode != mode:
            ctx.report(where, f"'{name}' is {_a(target.mode)} function", f"{key}: names {_a(mode)} function")
            continue
        if set(target.input) != set(fn.input):
            theirs = ", ".join(target.input) or "none"
            ours = ", ".join(fn.input) or "none"
            ctx.report(where, f"'{name}' takes inputs ({theirs}), not ({ours})", "both paths take the same inputs")
        produced, wanted = function_output(ctx, name), from_spec(fn.output)
        if not can_feed(produced, wanted, ctx.plan.contracts):
            ctx.report(where, f"'{name}' returns {ty_text(produced)}, not {ty_text(wanted)}")
        else:
            check_feed(ctx, where, f"'{name}'", produced, wanted, "the adaptive function's output")
