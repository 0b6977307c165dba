"""Opaque data stays opaque: a value holding opaque fields may not feed an infer input that would show them.

A contract field marked `opaque` reaches a model only as a structured attachment, never in instruction text. An
infer function's inputs are shown as text unless their own type says otherwise, so a record with opaque fields
passed to an input typed `object` (or `any`, or another contract without those fields opaque) would be inlined in
full. The checker refuses that binding and names the opaque fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from stratum_core.plan._check_context import CheckContext
from stratum_core.plan._model import (
    AdaptiveFunction,
    CallStep,
    Contract,
    Flow,
    ForEachStep,
    InferFunction,
    ParallelStep,
    RaceStep,
    Step,
    TypeSpec,
    parse_reference,
)
from stratum_core.plan._yaml import Path

__all__ = ["check_opaque_bindings", "opaque_paths"]


def opaque_paths(specs: Mapping[str, TypeSpec], contracts: Mapping[str, Contract]) -> frozenset[tuple[str, ...]]:
    """The field paths of `specs` that are opaque, e.g. `("ticket", "note")`; `"*"` stands for any list item.

    Explanations of violations name these without showing them (see `Expression.violation`).
    """
    found: set[tuple[str, ...]] = set()
    stack: list[tuple[TypeSpec, tuple[str, ...], frozenset[str]]] = [
        (spec, (name,), frozenset()) for name, spec in specs.items()
    ]
    while stack:
        spec, path, expanding = stack.pop()
        if spec.opaque:
            found.add(path)
            continue
        fields = spec.properties or {}
        if spec.type is not None and spec.type in contracts and spec.type not in expanding:  # a tree: once
            fields = contracts[spec.type].fields
            expanding = expanding | {spec.type}
        stack.extend((child, (*path, key), expanding) for key, child in fields.items())
        if spec.items is not None:
            stack.append((spec.items, (*path, "*"), expanding))
    return frozenset(found)


def _covers(kept: tuple[str, ...], secret: tuple[str, ...]) -> bool:
    """True when the opaque path `kept` holds `secret` (it is a prefix of it; "*" for any list item)."""
    return len(kept) <= len(secret) and all(a == b or "*" in (a, b) for a, b in zip(kept, secret, strict=False))


def _field(spec: TypeSpec, part: str | int, contracts: Mapping[str, Contract]) -> TypeSpec | None:
    if isinstance(part, int):
        return spec.items
    fields = contracts[spec.type].fields if spec.type is not None and spec.type in contracts else spec.properties or {}
    return fields.get(part)


def _calls(steps: list[Step], path: Path) -> Iterator[tuple[Path, CallStep]]:
    for index, step in enumerate(steps):
        here: Path = (*path, index)
        if isinstance(step, CallStep):
            yield here, step
        elif isinstance(step, ParallelStep):
            for inner, branch in enumerate(step.parallel.steps):
                yield (*here, "parallel", "steps", inner), branch
        elif isinstance(step, RaceStep):
            for inner, branch in enumerate(step.race):
                yield (*here, "race", inner), branch
        elif isinstance(step, ForEachStep):
            yield (*here, "step"), step.step


def _source(
    flow: Flow, outputs: Mapping[str, TypeSpec], text: str, contracts: Mapping[str, Contract]
) -> TypeSpec | None:
    """The declared type of what reference `text` reads, when it can be told without the checker's inference."""
    reference = parse_reference(text)
    if reference is None or reference.root == "item":
        return None
    if reference.root == "input":
        if not reference.path or not isinstance(reference.path[0], str):
            return None
        spec: TypeSpec | None = flow.input.get(reference.path[0])
        rest = reference.path[1:]
    else:
        spec = outputs.get(str(reference.step_id))
        rest = reference.path
    for part in rest:
        if spec is None:
            return None
        spec = _field(spec, part, contracts)
    return spec


def check_opaque_bindings(ctx: CheckContext) -> None:
    """Report each infer input bound to a value with opaque fields that the input's own type would show."""
    plan = ctx.plan
    contracts = plan.contracts
    for flow_name, flow in plan.flows.items():
        calls = list(_calls(list(flow.steps), ("flows", flow_name, "steps")))
        outputs = {
            step.id: plan.functions[step.function].output
            for _, step in calls
            if step.function is not None and step.function in plan.functions
        }
        for path, step in calls:
            fn = plan.functions.get(step.function or "")
            if not isinstance(fn, InferFunction | AdaptiveFunction):
                continue
            for name, value in step.inputs.items():
                target = fn.input.get(name)
                if not isinstance(value, str) or target is None:
                    continue
                source = _source(flow, outputs, value, contracts)
                if source is None:
                    continue
                secrets = opaque_paths({name: source}, contracts)
                kept = opaque_paths({name: target}, contracts)
                shown = [secret for secret in secrets if not any(_covers(path, secret) for path in kept)]
                if not shown:
                    continue
                fields = ", ".join(".".join(secret) for secret in sorted(shown))
                ctx.report(
                    (*path, "inputs", name),
                    f"{value} holds opaque data ({fields}) that input '{name}' of '{fn.name}' would show in the prompt",
                    f"give input '{name}' the type that marks those fields opaque, or mark the input `opaque: true`",
                )
