"""The static checker: every problem of a loaded plan at once, each located in the text.

Names (functions, flows, contracts, steps) must be declared, step ids unique in their flow (nested steps
included), the step graph and the sub-flow graph free of cycles, every reference and expression must read
something that exists with a type that fits. Function-level rules live in `_check_functions`, reference and
expression typing in `_typecheck`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from stratum_core.errors import Problem
from stratum_core.plan._check_context import CheckContext, FlowScope
from stratum_core.plan._check_functions import check_contracts, check_functions, check_type_names
from stratum_core.plan._check_opaque import check_opaque_bindings
from stratum_core.plan._imports import CallChecks
from stratum_core.plan._loader import LoadedPlan
from stratum_core.plan._model import (
    CallStep,
    DebateStep,
    Flow,
    ForEachStep,
    ParallelStep,
    RaceStep,
    Step,
    TypeSpec,
    iter_references,
    parse_reference,
)
from stratum_core.plan._typecheck import (
    check_binding,
    check_expression,
    check_feed,
    flow_expression_scope,
    function_output,
    reference_type,
    step_output,
)
from stratum_core.plan._types import ANY, Ty, can_feed, from_spec, lookup_field, ty_text
from stratum_core.plan._yaml import Path

__all__ = ["check_plan"]

_DEBATE_AGENT_INPUTS = ("topic", "round", "history", "others", "previous_arguments")
_DEBATE_SYNTHESIZE_INPUTS = ("topic", "history", "arguments", "converged")


def check_plan(
    loaded: LoadedPlan,
    *,
    check_imports: CallChecks = True,
    untrusted: bool = False,
    runtime_checks: list[Problem] | None = None,
    allowed_models: Collection[str] | None = None,
) -> list[Problem]:
    """Every static problem of `loaded`, sorted; `untrusted` adds the limits of plans written by an agent.

    `allowed_models` (untrusted plans): the only models infer functions may name.

    `runtime_checks`, when given, is extended with what is left to the engine at run time (sorted).
    """
    ctx = CheckContext(loaded, untrusted=untrusted, allowed_models=allowed_models)
    if untrusted:
        from stratum_core.plan._untrusted import check_untrusted

        check_untrusted(ctx)
    check_contracts(ctx)
    check_functions(ctx, check_imports=check_imports)
    scopes = [_flow_scope(ctx, name, flow) for name, flow in ctx.plan.flows.items()]
    for scope in scopes:
        _check_flow(ctx, scope)
    _check_subflow_cycles(ctx, scopes)
    check_opaque_bindings(ctx)
    if runtime_checks is not None:
        runtime_checks.extend(sorted(ctx.runtime_checks))
    return sorted(ctx.problems)


def _branches(step: Step, path: Path) -> Iterator[tuple[Path, CallStep]]:
    """The call steps nested in a group step, with their paths."""
    if isinstance(step, ParallelStep):
        for index, branch in enumerate(step.parallel.steps):
            yield (*path, "parallel", "steps", index), branch
    elif isinstance(step, RaceStep):
        for index, branch in enumerate(step.race):
            yield (*path, "race", index), branch


def _calls(step: Step, path: Path) -> Iterator[tuple[Path, CallStep]]:
    """Every call step in `step`: itself, its branches, or the step of a for_each."""
    if isinstance(step, CallStep):
        yield path, step
    elif isinstance(step, ForEachStep):
        yield (*path, "step"), step.step
    else:
        yield from _branches(step, path)


def _flow_scope(ctx: CheckContext, name: str, flow: Flow) -> FlowScope:
    """Index the steps of a flow and report duplicate ids (nested branches share the flow's id space)."""
    scope = FlowScope(name=name, flow=flow, path=("flows", name))
    first_line: dict[str, int] = {}

    def claim(step_id: str, path: Path) -> bool:
        if step_id in first_line:
            ctx.report(
                path, f"duplicate step id '{step_id}'", f"first used on line {first_line[step_id]}", at=(*path, "id")
            )
            return False
        first_line[step_id] = ctx.loaded.source_map.value((*path, "id"))[0]
        return True

    built_paths = set()
    for path, step in ctx.loaded.steps.get(name, []):
        built_paths.add(path)
        if claim(step.id, path):
            scope.steps[step.id] = (path, step)
        for branch_path, branch in _branches(step, path):
            if claim(branch.id, branch_path):
                scope.nested[branch.id] = step.id
    raw_steps = ctx.raw((*scope.path, "steps"))
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if (
            (*scope.path, "steps", index) not in built_paths
            and isinstance(raw, dict)
            and isinstance(raw.get("id"), str)
        ):
            scope.broken_ids.add(raw["id"])
    return scope


def _check_flow(ctx: CheckContext, scope: FlowScope) -> None:
    flow = scope.flow
    for input_name, spec in flow.input.items():
        check_type_names(ctx, spec, (*scope.path, "input", input_name))
    check_type_names(ctx, flow.output, (*scope.path, "output"))
    expression_names = flow_expression_scope(ctx, scope)
    graph: dict[str, set[str]] = {}
    for step_id, (path, step) in scope.steps.items():
        graph[step_id] = _check_step(ctx, scope, step, path, expression_names)
    _check_step_cycles(ctx, scope, graph)
    _check_result(ctx, scope)


def _check_step(ctx: CheckContext, scope: FlowScope, step: Step, path: Path, names: dict[str, Ty]) -> set[str]:
    """Check one top-level step; return the ids of the steps it depends on."""
    depends = _dependencies(ctx, scope, step.depends_on, (*path, "depends_on"), owner=step.id)
    depends |= _conditions(ctx, path, names, step.id)
    item: Ty | None = None
    if isinstance(step, ForEachStep) and step.for_each.startswith("$."):
        items = reference_type(ctx, scope, step.for_each, (*path, "for_each"), current=step.id)
        if items.kind not in ("array", "any"):
            ctx.report((*path, "for_each"), f"for_each needs a list, but {step.for_each} is {ty_text(items)}")
        elif items.optional:
            ctx.report((*path, "for_each"), f"for_each needs a list, but {step.for_each} may be absent")
        item = (items.items or ANY) if items.kind == "array" else ANY
    if isinstance(step, ParallelStep):
        _check_parallel(ctx, scope, step, path, names)
    if isinstance(step, DebateStep):
        _check_debate(ctx, scope, step, path)
    for call_path, call in _calls(step, path):
        if call is not step:
            depends |= _conditions(ctx, call_path, names, step.id)
            depends |= _dependencies(ctx, scope, call.depends_on, (*call_path, "depends_on"), owner=step.id)
        _check_call(ctx, scope, call, call_path, owner=step.id, item=item)
    for _, text in _step_references(step):
        reference = parse_reference(text)
        if reference is not None and reference.step_id is not None and reference.step_id in scope.steps:
            depends.add(reference.step_id)
    depends.discard(step.id)
    return depends


def _dependencies(
    ctx: CheckContext, scope: FlowScope, dependencies: tuple[str, ...], path: Path, *, owner: str
) -> set[str]:
    """Check `depends_on` entries of (a step nested in) top-level step `owner`; return the valid ones."""
    found: set[str] = set()
    listed = isinstance(ctx.raw(path), list)
    for index, dependency in enumerate(dependencies):
        where: Path = (*path, index) if listed else path
        if dependency == owner or scope.nested.get(dependency) == owner:
            ctx.report(where, f"step '{owner}' cannot depend on itself")
        elif dependency in scope.nested:
            group = scope.nested[dependency]
            ctx.report(where, f"'{dependency}' is a branch of step '{group}'", f"depend on '{group}' instead")
        elif dependency in scope.steps:
            found.add(dependency)
        elif dependency not in scope.broken_ids:
            message, hint = ctx.unknown_name("step", dependency, set(scope.steps))
            ctx.report(where, message, hint)
    return found


def _step_references(step: Step) -> Iterator[tuple[Path, str]]:
    if isinstance(step, ForEachStep):
        yield (), step.for_each
    if isinstance(step, DebateStep):
        yield from iter_references(step.debate.topic)
    for _, call in _calls(step, ()):
        yield from iter_references(call.inputs)


def _conditions(ctx: CheckContext, path: Path, names: dict[str, Ty], step_id: str) -> set[str]:
    """Check a step's `when` and `skip_if`; return the steps they read."""
    read: set[str] = set()
    for key in ("when", "skip_if"):
        text = ctx.raw((*path, key))
        if isinstance(text, str):
            found = check_expression(ctx, (*path, key), text, names, role=key)
            if found and step_id in found:
                ctx.report((*path, key), f"{key}: step '{step_id}' cannot read its own output")
            read |= set(found or ())
    return read


def _check_call(
    ctx: CheckContext, scope: FlowScope, call: CallStep, path: Path, *, owner: str, item: Ty | None
) -> None:
    """The target of a call step exists, and its inputs are bound, known and of fitting types."""
    inputs: dict[str, TypeSpec] | None = None
    if call.function is not None:
        kind, name, declared = "function", call.function, ctx.declared_functions
        fn = ctx.function(name)
        inputs = dict(fn.input) if fn is not None else None
    else:
        kind, name, declared = "flow", call.flow or "", ctx.declared_flows
        target_flow = ctx.plan.flows.get(name)
        inputs = dict(target_flow.input) if target_flow is not None else None
    if name not in declared:
        message, hint = ctx.unknown_name(kind, name, declared)
        ctx.report((*path, kind), message, hint)
    for input_name, value in call.inputs.items():
        where: Path = (*path, "inputs", input_name)
        target = None
        if inputs is not None:
            if input_name in inputs:
                target = (input_name, inputs[input_name])
            else:
                message, hint = ctx.unknown_name("input", input_name, set(inputs))
                ctx.report(where, f"{kind} '{name}' has no input '{input_name}'", hint, key=True)
        check_binding(ctx, scope, value, where, current=owner, item=item, target=target)
    if inputs is None:
        return
    missing = [key for key, spec in inputs.items() if spec.required and spec.default is None and key not in call.inputs]
    if missing:
        at: Path = (*path, "inputs") if "inputs" in (ctx.raw(path) or {}) else (*path, kind)
        listed = ", ".join(f"'{key}'" for key in missing)
        ctx.report(path, f"missing input{'s' if len(missing) > 1 else ''} {listed} of {kind} '{name}'", at=at, key=True)


def _check_parallel(ctx: CheckContext, scope: FlowScope, step: ParallelStep, path: Path, names: dict[str, Ty]) -> None:
    group = step.parallel
    count = len(group.steps)
    if isinstance(group.require, int) and group.require > count:
        ctx.report((*path, "parallel", "require"), f"require: {group.require} but the group has {count} steps")
    conditional = [branch.id for branch in group.steps if branch.when is not None]
    if isinstance(group.require, int) and group.require > count - len(conditional) and conditional:
        ctx.runtime_check(
            (*path, "parallel", "require"),
            f"require: {group.require} counts branches that may be skipped by their `when` ({', '.join(conditional)})",
        )
    if group.validate_ is not None:
        output = step_output(ctx, step)
        outputs = output if group.require != "any" else Ty("array", items=output, min_items=1, max_items=1)
        found = check_expression(
            ctx, (*path, "parallel", "validate"), group.validate_, {**names, "outputs": outputs}, role="validate"
        )
        if found and step.id in found:
            ctx.report((*path, "parallel", "validate"), "validate: use `outputs` for this group's own outputs")


def _check_debate(ctx: CheckContext, scope: FlowScope, step: DebateStep, path: Path) -> None:
    debate = step.debate
    base: Path = (*path, "debate")
    for index, agent in enumerate(debate.agents):
        where: Path = (*base, "agents", index)
        if agent not in ctx.declared_functions:
            message, hint = ctx.unknown_name("function", agent, ctx.declared_functions)
            ctx.report(where, message, hint)
            continue
        fn = ctx.function(agent)
        if fn is None:
            continue
        if fn.mode != "infer":
            ctx.report(where, f"debate agent '{agent}' is a {fn.mode} function", "agents must be infer functions")
        _offered_inputs(ctx, where, agent, set(fn.input), _DEBATE_AGENT_INPUTS, "a debate agent")
        previous = fn.input.get("previous_arguments")
        if previous is not None and previous.required:
            ctx.report(
                where,
                f"debate agent '{agent}' requires input 'previous_arguments', which round 1 does not give",
                "make it optional (required: false, or a default of None in Python)",
            )
    if debate.synthesize is not None:
        where = (*base, "synthesize")
        judge = ctx.function(debate.synthesize)
        if debate.synthesize not in ctx.declared_functions:
            message, hint = ctx.unknown_name("function", debate.synthesize, ctx.declared_functions)
            ctx.report(where, message, hint)
        elif judge is not None:
            _offered_inputs(ctx, where, debate.synthesize, set(judge.input), _DEBATE_SYNTHESIZE_INPUTS, "synthesize")
    if debate.converge_on is not None:
        for agent in debate.agents:
            output = function_output(ctx, agent)
            if output.kind in ("contract", "object"):
                _, error, _ = lookup_field(output, debate.converge_on, ctx.plan.contracts)
                if error is not None:
                    ctx.report((*base, "converge_on"), f"converge_on: {error}")
                    break
    for sub, text in iter_references(debate.topic):
        reference_type(ctx, scope, text, (*base, "topic", *sub), current=step.id)
    for name in (*debate.agents, debate.synthesize):
        taker = ctx.function(name)
        if taker is not None and "topic" in taker.input:
            target = ("topic", taker.input["topic"])
            check_binding(ctx, scope, debate.topic, (*base, "topic"), current=step.id, target=target)


def _offered_inputs(
    ctx: CheckContext, where: Path, name: str, declared: set[str], offered: tuple[str, ...], role: str
) -> None:
    extra = sorted(declared - set(offered))
    if extra:
        given = ", ".join(offered)
        ctx.report(where, f"'{name}' takes input '{extra[0]}', which {role} is not given", f"{role} gets {given}")


def _may_be_skipped(scope: FlowScope) -> set[str]:
    """The steps that a `when` (theirs, or that of a step they read) may skip."""
    reads: dict[str, set[str]] = {}
    skipped: set[str] = set()
    for step_id, (_, step) in scope.steps.items():
        found = set()
        for _, text in _step_references(step):
            reference = parse_reference(text)
            if reference is not None and reference.step_id is not None:
                found.add(reference.step_id)
        reads[step_id] = found
        branches = [call for _, call in _branches(step, ())]
        if step.when is not None or (branches and all(call.when is not None for call in branches)):
            skipped.add(step_id)
    changed = True
    while changed:
        changed = False
        for step_id, found in reads.items():
            if step_id not in skipped and found & skipped:
                skipped.add(step_id)
                changed = True
    return skipped


def _check_result(ctx: CheckContext, scope: FlowScope) -> None:
    flow = scope.flow
    candidates = [parse_reference(text) for text in flow.results] if flow.result is not None else []
    if not candidates and scope.steps:
        candidates = [parse_reference(f"$.steps.{list(scope.steps)[-1]}.output")]
    skippable = _may_be_skipped(scope)
    ids = [reference.step_id for reference in candidates if reference is not None and reference.root == "steps"]
    if candidates and len(ids) == len(candidates) and all(step_id in skippable for step_id in ids):
        where_result: Path = (*scope.path, "result") if flow.result is not None else (*scope.path, "output")
        listed = ", ".join(f"'{step_id}'" for step_id in ids)
        ctx.runtime_check(
            where_result, f"the flow has no result when {listed} {'is' if len(ids) == 1 else 'are all'} skipped"
        )
    wanted = from_spec(flow.output) if flow.output is not None else ANY
    if flow.result is not None:
        for index, reference in enumerate(flow.results):
            if not reference.startswith("$."):
                continue  # the schema pass reported it
            where_ref: Path = (
                (*scope.path, "result") if isinstance(flow.result, str) else (*scope.path, "result", index)
            )
            produced = reference_type(ctx, scope, reference, where_ref, current=None)
            if not can_feed(produced, wanted, ctx.plan.contracts):
                ctx.report(where_ref, f"{reference} is {ty_text(produced)}, but the flow's output is {ty_text(wanted)}")
            elif flow.output is not None or produced.optional:
                check_feed(ctx, where_ref, reference, produced, wanted, "the flow's output")
        return
    if scope.steps and not scope.broken_ids:
        last_id = list(scope.steps)[-1]
        produced = step_output(ctx, scope.steps[last_id][1])
        shown = f"the last step ('{last_id}')"
    else:
        return
    where: Path = (*scope.path, "result") if flow.result is not None else (*scope.path, "output")
    if not can_feed(produced, wanted, ctx.plan.contracts):
        ctx.report(where, f"{shown} is {ty_text(produced)}, but the flow's output is {ty_text(wanted)}")
    elif flow.output is not None:
        check_feed(ctx, where, shown, produced, wanted, "the flow's output")


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of `graph` (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
    return found


def _report_cycles(graph: dict[str, set[str]], order: list[str]) -> list[list[str]]:
    """One cycle per strongly connected group of nodes, starting at the node declared first: `[a, b, a]`."""
    position = {node: rank for rank, node in enumerate(order)}
    cycles: list[list[str]] = []
    for component in _components(graph):
        start = min(component, key=lambda node: position.get(node, len(position)))
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        parents: dict[str, str] = {}
        queue = [start]
        while queue and start not in parents:
            node = queue.pop(0)
            for successor in sorted(graph.get(node, ())):
                if successor in component and successor not in parents:
                    parents[successor] = node
                    queue.append(successor)
        trail = [start]
        node = parents[start]
        while node != start:
            trail.append(node)
            node = parents[node]
        cycles.append([start, *reversed(trail[1:]), start])
    return sorted(cycles, key=lambda cycle: position.get(cycle[0], 0))


def _check_step_cycles(ctx: CheckContext, scope: FlowScope, graph: dict[str, set[str]]) -> None:
    for cycle in _report_cycles(graph, list(graph)):
        path = scope.steps[cycle[0]][0]
        ctx.report(path, "dependency cycle: " + " -> ".join(cycle), "each step waits for the next", at=(*path, "id"))


def _check_subflow_cycles(ctx: CheckContext, scopes: list[FlowScope]) -> None:
    graph: dict[str, set[str]] = {}
    calls: dict[tuple[str, str], Path] = {}
    for scope in scopes:
        graph[scope.name] = set()
        for path, step in scope.steps.values():
            for call_path, call in _calls(step, path):
                if call.flow is not None and call.flow in ctx.plan.flows:
                    graph[scope.name].add(call.flow)
                    calls.setdefault((scope.name, call.flow), (*call_path, "flow"))
    for cycle in _report_cycles(graph, list(graph)):
        where = calls[(cycle[0], cycle[1])]
        flow_path: Path = ("flows", cycle[0])
        ctx.report(
            flow_path, "sub-flow cycle: " + " -> ".join(cycle), "a flow cannot call itself, directly or not", at=where
        )
