"""Checks of what data flows where: `$.` references, the inputs they feed, and the names expressions read.

Every step's output has a type (see `_types.Ty`); a reference is walked field by field through it, and must be
able to feed the input it is bound to. Expressions are parsed by the sandbox and their free names and field reads
are checked against the scope of the place they appear in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratum_core.expressions import ExpressionSyntaxError, compile_expression
from stratum_core.expressions._folding import fold_constants
from stratum_core.expressions._inference import infer_type
from stratum_core.plan._check_context import CheckContext, FlowScope
from stratum_core.plan._model import (
    CallStep,
    DebateStep,
    ForEachStep,
    InferFunction,
    ParallelStep,
    RaceStep,
    Step,
    TypeSpec,
    iter_references,
    parse_reference,
)
from stratum_core.plan._patterns import SchemaValidator
from stratum_core.plan._plan_schema import describe, did_you_mean
from stratum_core.plan._schema import type_schema
from stratum_core.plan._types import (
    ANY,
    METHODS,
    Ty,
    can_feed,
    common,
    feed,
    fields_of,
    from_spec,
    lookup_field,
    record,
    ty_text,
)
from stratum_core.plan._yaml import Path

__all__ = [
    "check_binding",
    "check_expression",
    "check_feed",
    "flow_expression_scope",
    "function_output",
    "reference_type",
    "step_output",
]


def function_output(ctx: CheckContext, name: str | None) -> Ty:
    """The type a call of function `name` produces (`stable: false` wraps it in {value, samples, agreement})."""
    fn = ctx.function(name)
    if fn is None:
        return ANY
    ty = from_spec(fn.output)
    if isinstance(fn, InferFunction) and not fn.stable:
        agreement = Ty("number", minimum=0, maximum=1)
        return record(value=ty, samples=Ty("array", items=ty, min_items=1), agreement=agreement)
    return ty


def _call_output(ctx: CheckContext, step: CallStep) -> Ty:
    if step.function is not None:
        return function_output(ctx, step.function)
    flow = ctx.plan.flows.get(step.flow or "")
    return from_spec(flow.output) if flow is not None and flow.output is not None else ANY


def step_output(ctx: CheckContext, step: Step) -> Ty:
    """The type of `$.steps.ID.output` for a top-level step."""
    if isinstance(step, CallStep):
        return _call_output(ctx, step)
    if isinstance(step, ParallelStep):
        branch = common([_call_output(ctx, item) for item in step.parallel.steps])
        require = step.parallel.require
        if require == "any":
            return branch
        count = len(step.parallel.steps)
        if require == 0:
            outcome = record(ok=Ty("boolean"), output=branch.maybe(), error=Ty("string").maybe())
            return Ty("array", items=outcome, min_items=count, max_items=count)
        unconditional = sum(1 for branch in step.parallel.steps if branch.when is None)
        least = unconditional if require == "all" else int(require)
        return Ty("array", items=branch, min_items=least, max_items=count)
    if isinstance(step, RaceStep):
        return common([_call_output(ctx, item) for item in step.race])
    if isinstance(step, ForEachStep):
        return Ty("array", items=_call_output(ctx, step.step))
    if isinstance(step, DebateStep):
        if step.debate.synthesize is not None:
            return function_output(ctx, step.debate.synthesize)
        argument = record(agent=Ty("string"), round=Ty("integer"), argument=ANY)
        arguments = Ty("object", fields=tuple((agent, function_output(ctx, agent)) for agent in step.debate.agents))
        return record(
            rounds=Ty("integer"), converged=Ty("boolean"), arguments=arguments, history=Ty("array", items=argument)
        )
    return ANY  # pragma: no cover - every step kind is handled above


def _walk(
    ctx: CheckContext, ty: Ty, parts: tuple[str | int, ...], shown: str, path: Path, offset: int | None = None
) -> Ty | None:
    """Follow `parts` through `ty`; report the first part that does not exist (None then)."""
    absent = False
    for part in parts:
        if isinstance(part, str) and part in METHODS and ty.kind in ("string", "array", "object", "number", "integer"):
            return ANY
        if ty.optional and offset is None:
            absent = True
        if isinstance(part, int) and ty.kind == "array" and offset is None and (ty.min_items or 0) <= part:
            ctx.report(
                path,
                f"{shown}: the list may have fewer than {part + 1} item{'s' if part else ''} "
                f"({ty_text(ty)} without minItems: {part + 1})",
                f"declare minItems: {part + 1} on the list, or bind the whole list",
            )
            return None
        ty, error, candidates = lookup_field(ty.present(), part, ctx.plan.contracts)
        if error is not None:
            hint = did_you_mean(str(part), candidates) if candidates else None
            ctx.report(path, f"{shown}: {error}", hint, column_offset=offset)
            return None
    return ty.maybe() if absent else ty


def reference_type(
    ctx: CheckContext,
    scope: FlowScope,
    text: str,
    path: Path,
    *,
    current: str | None,
    item: Ty | None = None,
) -> Ty:
    """The type of reference `text` at `path` inside step `current` (None: the flow's result); reports problems."""
    reference = parse_reference(text)
    if reference is None:
        ctx.report(
            path,
            f"{text}: not a valid reference",
            "write $.input.NAME, $.steps.ID.output[.FIELD...] or $.item inside a for_each",
        )
        return ANY
    if reference.root == "item":
        if item is None:
            ctx.report(path, f"{text}: $.item is only defined in the step of a for_each")
            return ANY
        return _walk(ctx, item, reference.path, text, path) or ANY
    if reference.root == "input":
        if not reference.path:
            return record(**{key: from_spec(spec) for key, spec in scope.flow.input.items()})
        first = reference.path[0]
        spec = scope.flow.input.get(first) if isinstance(first, str) else None
        if spec is None:
            hint = did_you_mean(str(first), scope.flow.input)
            ctx.report(path, f"{text}: flow '{scope.name}' has no input '{first}'", hint)
            return ANY
        return _walk(ctx, from_spec(spec), reference.path[1:], text, path) or ANY
    step_id = str(reference.step_id)
    target = _step_target(ctx, scope, step_id, text, path, current=current)
    if target is None:
        return ANY
    return _walk(ctx, step_output(ctx, target), reference.path, text, path) or ANY


def _step_target(
    ctx: CheckContext, scope: FlowScope, step_id: str, shown: str, path: Path, *, current: str | None
) -> Step | None:
    if step_id == current:
        ctx.report(path, f"{shown}: step '{step_id}' cannot use its own output")
        return None
    if step_id in scope.nested:
        group = scope.nested[step_id]
        if group == current:
            ctx.report(
                path,
                f"{shown}: '{step_id}' is a branch of this group",
                "branches of a group run at the same time and cannot use each other's output",
            )
        else:
            ctx.report(
                path, f"{shown}: '{step_id}' is a branch of step '{group}'", f"use $.steps.{group}.output instead"
            )
        return None
    if step_id in scope.broken_ids:
        return None
    located = scope.steps.get(step_id)
    if located is None:
        message, hint = ctx.unknown_name("step", step_id, set(scope.steps))
        ctx.report(path, f"{shown}: {message}", hint)
        return None
    return located[1]


def check_binding(
    ctx: CheckContext,
    scope: FlowScope,
    value: Any,
    path: Path,
    *,
    current: str | None,
    item: Ty | None = None,
    target: tuple[str, TypeSpec] | None = None,
) -> None:
    """Check one bound value: its references resolve, and it can feed input `target` (name, type) if given."""
    if isinstance(value, str) and value.startswith("$."):
        before = len(ctx.problems)
        source = reference_type(ctx, scope, value, path, current=current, item=item)
        if target is not None and len(ctx.problems) == before:
            name, spec = target
            check_feed(ctx, path, value, source, from_spec(spec), f"input '{name}'")
        return
    references = list(iter_references(value))
    for sub, text in references:
        source = reference_type(ctx, scope, text, (*path, *sub), current=current, item=item)
        if source.optional and sub and isinstance(sub[-1], int):
            ctx.report((*path, *sub), f"{text}: it may be absent, and a list cannot hold an absent value")
    if target is None or references:
        return
    name, spec = target
    _check_literal(ctx, value, path, name, spec)


def check_feed(ctx: CheckContext, path: Path, shown: str, source: Ty, wanted: Ty, role: str) -> None:
    """Report a producer of type `source` that may give a value `role` (of type `wanted`) does not accept."""
    fit = feed(source, wanted, ctx.plan.contracts)
    if fit.problem is not None:
        hint = None
        if source.optional and not wanted.optional:
            hint = "make it optional (required: false) where it is bound, or give the field a default"
        if can_feed(source, wanted, ctx.plan.contracts) or source.optional:  # the kinds fit, a constraint does not
            message = f"{shown}: cannot feed {role} ({ty_text(wanted)}): {fit.problem}"
        else:
            message = f"{shown}: {ty_text(source)} cannot feed {role} ({ty_text(wanted)})"
            if "field" in fit.problem:
                message += f": {fit.problem}"
        ctx.report(path, message, hint)
    for check in fit.checks:
        ctx.runtime_check(path, f"{shown} feeds {role}: {check}")


def _check_literal(ctx: CheckContext, value: Any, path: Path, name: str, spec: TypeSpec) -> None:
    try:
        schema = type_schema(spec, ctx.plan.contracts)
    except KeyError:
        return  # an unknown contract, reported where it is named
    error = next(iter(SchemaValidator(schema).iter_errors(value)), None)
    if error is not None:
        wanted = ty_text(from_spec(spec))
        detail = f"{describe(value)} does not fit input '{name}' ({wanted})"
        allowed = schema.get("enum")
        hint = "one of " + ", ".join(describe(option) for option in allowed) if isinstance(allowed, list) else None
        ctx.report(path, detail, hint)


def flow_expression_scope(ctx: CheckContext, scope: FlowScope) -> dict[str, Ty]:
    """What a flow-level expression (`when`, `validate`) sees: `input` and `steps` (steps.ID.output)."""
    steps = tuple((step_id, record(output=step_output(ctx, step))) for step_id, (_, step) in scope.steps.items())
    for broken in scope.broken_ids:
        steps += ((broken, ANY),)
    inputs = tuple((key, from_spec(spec)) for key, spec in scope.flow.input.items())
    return {"input": Ty("object", fields=inputs), "steps": Ty("object", fields=steps)}


def check_expression(
    ctx: CheckContext,
    path: Path,
    text: str,
    names: Mapping[str, Ty],
    *,
    role: str,
    expect: Ty | None = None,
    expect_role: str = "the output",
) -> frozenset[str] | None:
    """Parse the expression at `path` and check the names and fields it reads against `names`.

    Returns the step ids it reads through `steps.ID` (for the dependency graph), or None if it does not parse.
    """
    try:
        expression = compile_expression(text)
    except ExpressionSyntaxError as error:
        ctx.report(path, f"{role}: {error.message}", error.hint, column_offset=error.offset)
        return None
    offsets: dict[str, int] = {}
    for read in expression.reads:
        offsets.setdefault(read.root, read.offset)
    for name in sorted(expression.names):
        if name in names:
            continue
        hint = did_you_mean(name, names)
        if hint is None:
            hint = f"{role} sees {', '.join(sorted(names))}" if names else f"{role} sees no names"
        ctx.report(path, f"{role}: unknown name '{name}'", hint, column_offset=offsets.get(name, text.find(name)))
    steps_read: set[str] = set()
    for read in expression.reads:
        if read.root not in expression.names or read.root not in names:
            continue
        parts: tuple[str | int, ...] = tuple(read.fields)
        shown = ".".join([read.root, *read.fields])
        if read.root == "input" and parts and names["input"].kind == "object" and names["input"].fields is not None:
            inputs = names["input"].field_map
            if parts[0] not in inputs:
                message = f"{role}: {shown}: the flow has no input '{parts[0]}'"
                ctx.report(path, message, did_you_mean(str(parts[0]), inputs), column_offset=read.offset)
                continue
        if read.root == "steps" and "steps" in names and parts:
            steps_read.add(str(parts[0]))
            step_fields = names["steps"].field_map
            if parts[0] not in step_fields:
                message = f"{role}: {shown}: unknown step '{parts[0]}'"
                ctx.report(path, message, did_you_mean(str(parts[0]), step_fields), column_offset=read.offset)
                continue
        _walk(ctx, names[read.root], parts, f"{role}: {shown}", path, read.offset)
    problems_before = len(ctx.problems)
    inferred, findings = infer_type(expression, names, lambda ty: fields_of(ty, ctx.plan.contracts))
    for finding in findings:
        if finding.runtime:
            ctx.runtime_check(path, f"{role}: {finding.message}", column_offset=finding.offset)
        else:
            ctx.report(path, f"{role}: {finding.message}", finding.hint, column_offset=finding.offset)
    if not any(not finding.runtime for finding in findings):
        for finding in fold_constants(expression):
            ctx.report(path, f"{role}: {finding.message}", finding.hint, column_offset=finding.offset)
    if expect is not None and len(ctx.problems) == problems_before:
        check_feed(ctx, path, role, inferred, expect, expect_role)
    return frozenset(steps_read)
