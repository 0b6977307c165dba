"""`parallel`, `race`, `debate` and `await_human`: the plan's group and human steps, called from Python.

Each builds the plan step it stands for (a parallel group, a race, a debate, a human function) and runs it with the
engine's own step code, inside the current flow's run (or a run of its own outside one). Calls handed to `parallel`
and `race` are not awaited one by one: they are the group's branches and run concurrently.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast, overload

from stratum_core.backends._errors import run_error_from_dict
from stratum_core.engine._python_flow import PythonFlowExecution
from stratum_core.errors import RunError
from stratum_core.library._callsites import caller_site
from stratum_core.library._codec import codec, to_json
from stratum_core.library._conditions import callable_text
from stratum_core.library._functions import InferFn, StratumFunction
from stratum_core.library._results import Failure, HumanDecision, Outcome, Success
from stratum_core.library._runtime import current_execution, raise_for, run_alone
from stratum_core.library._step_call import StepCall
from stratum_core.library._types import DefinitionProblem, type_spec
from stratum_core.plan import (
    CallStep,
    Contract,
    Debate,
    DebateStep,
    Function,
    HumanFunction,
    ParallelGroup,
    ParallelStep,
    RaceStep,
    TypeSpec,
)
from stratum_core.store import StepRecord

__all__ = ["await_human", "debate", "human_function", "parallel", "race"]

T = TypeVar("T")
Require = Literal["all", "any"] | int
Work = Callable[[PythonFlowExecution, str], Awaitable[Any]]


async def _in_run(
    kind: str,
    site: str | None,
    work: Work,
    *,
    functions: Mapping[str, Function],
    contracts: Mapping[str, Contract],
) -> tuple[Any, PythonFlowExecution, str]:
    """Run `work` as a step of the current flow's run, or of a run of its own named `kind`."""
    execution = current_execution()
    if execution is not None:
        execution.include(functions, contracts)
        path = execution.path_for(site or kind)
        return await work(execution, path), execution, path
    paths: list[str] = []

    async def alone(run: PythonFlowExecution) -> Any:
        paths.append(run.path_for(site or kind))
        return await work(run, paths[0])

    result, run = await run_alone(
        kind, inputs={}, input_specs={}, functions=functions, contracts=contracts, work=alone, source=f"python:{kind}"
    )
    raise_for(result, run)
    return result.output, run, paths[0]


def _records(execution: PythonFlowExecution, prefix: str) -> dict[str, StepRecord]:
    return {s.step_id: s for s in execution.run.store.get_steps(execution.run.run_id) if s.step_id.startswith(prefix)}


def _branches(calls: Sequence[StepCall[Any]], what: str) -> list[tuple[str, StratumFunction[Any, Any], StepCall[Any]]]:
    """Branch ids and functions of the calls given to a group (ids unique within it)."""
    if not calls:
        raise TypeError(f"{what}() needs at least one call")
    branches: list[tuple[str, StratumFunction[Any, Any], StepCall[Any]]] = []
    used: set[str] = set()
    for call in calls:
        if not isinstance(call, StepCall) or not isinstance(call.target, StratumFunction):
            raise TypeError(
                f"{what}() takes calls of @infer and @compute functions, e.g. {what}(review(code), lint(code)); "
                f"got {call!r}"
            )
        base = call.site or call.target.name
        branch_id, number = base, 2
        while branch_id in used:
            branch_id, number = f"{base}_{number}", number + 1
        used.add(branch_id)
        call.consume()
        branches.append((branch_id, call.target, call))
    return branches


def _group_parts(
    branches: list[tuple[str, StratumFunction[Any, Any], StepCall[Any]]],
) -> tuple[tuple[CallStep, ...], dict[str, Any], dict[str, Function], dict[str, Contract]]:
    steps = tuple(
        CallStep(id=branch_id, function=fn.name, inputs={key: f"$.input.{branch_id}.{key}" for key in call.inputs})
        for branch_id, fn, call in branches
    )
    inputs = {branch_id: call.inputs for branch_id, _, call in branches}
    functions = {fn.name: fn.definition for _, fn, _ in branches}
    contracts: dict[str, Contract] = {}
    for _, fn, _ in branches:
        contracts.update(fn.contracts)
    return steps, inputs, functions, contracts


Validate = str | Callable[[list[Any]], Any] | None


@overload
def parallel(*calls: StepCall[T], require: Literal["any"], validate: Validate = None) -> StepCall[T]: ...


@overload
def parallel(  # require=0 gives outcomes, any other number the results
    *calls: StepCall[T], require: Literal[0], validate: Validate = None
) -> StepCall[list[Outcome[T]]]: ...


@overload
def parallel(
    *calls: StepCall[T], require: Literal["all"] | int = "all", validate: Validate = None
) -> StepCall[list[T]]: ...


def parallel(*calls: StepCall[Any], require: Require = "all", validate: Validate = None) -> StepCall[Any]:
    """Run calls concurrently as one parallel step; await it for their results.

    Args:
        calls: calls of decorated functions (not awaited: `parallel(review(code), lint(code))`).
        require: `all` (default; one failure fails the group), `any` (the first success wins, the others are
            cancelled; the result is that one value), N (at least N must succeed; the successes, in order), or 0
            (all run; a list of outcomes, `Success(value)` / `Failure(exception)`, each also the mapping
            `{"ok": True, "output": ...}` / `{"ok": False, "error": ...}`).
        validate: a condition on the results: an expression string over `outputs`, or a callable given the list.

    A group that does not meet `require` or `validate` raises ParallelValidationFailed.
    """
    site = caller_site()
    branches = _branches(calls, "parallel")
    validate_text = validate if isinstance(validate, str) else None
    validate_fn = validate if callable(validate) else None

    async def runner(_: StepCall[Any]) -> Any:
        steps, inputs, functions, contracts = _group_parts(branches)
        step = ParallelStep(
            id=site or "parallel", parallel=ParallelGroup(require=require, validate_=validate_text, steps=steps)
        )

        async def work(execution: PythonFlowExecution, path: str) -> Any:
            check = None
            if validate_fn is not None:

                def check(output: Any) -> str | None:
                    decoded = _decode_group(output, execution, path, branches, require)
                    return (
                        None
                        if validate_fn(decoded if isinstance(decoded, list) else [decoded])
                        else (f"{callable_text(validate_fn)} is false")
                    )

            return await execution.group(path, step, inputs, validate=check)

        output, execution, path = await _in_run("parallel", site, work, functions=functions, contracts=contracts)
        return _decode_group(output, execution, path, branches, require)

    return StepCall("parallel", {}, site, runner)


def _decode_group(
    output: Any,
    execution: PythonFlowExecution,
    path: str,
    branches: list[tuple[str, StratumFunction[Any, Any], StepCall[Any]]],
    require: Require,
) -> Any:
    """A group's JSON output as Python values, each converted by the function of the branch it came from."""
    records = _records(execution, path + ".")
    if require == "any":
        winner = next(
            (
                fn
                for branch_id, fn, _ in branches
                if getattr(records.get(f"{path}.{branch_id}"), "status", None) == "succeeded"
                and records[f"{path}.{branch_id}"].output == output
            ),
            branches[0][1],
        )
        return winner.decode(output)
    if require == 0:
        ran = [(bid, fn) for bid, fn, _ in branches if f"{path}.{bid}" in records]
        return [
            Success(fn.decode(item["output"])) if item.get("ok") else _failure(item, records.get(f"{path}.{bid}"))
            for (bid, fn), item in zip(ran, output, strict=False)
        ]
    succeeded = [fn for bid, fn, _ in branches if getattr(records.get(f"{path}.{bid}"), "status", None) == "succeeded"]
    return [fn.decode(item) for fn, item in zip(succeeded, output, strict=False)]


def _failure(item: Mapping[str, Any], record: Any) -> Failure:
    """A failed branch's outcome: the error its step recorded, rebuilt, and the group's text for it."""
    text = str(item.get("error", ""))
    recorded = getattr(record, "error", None)
    exception = run_error_from_dict(recorded) if isinstance(recorded, Mapping) else RunError(text)
    return Failure(exception, text)


def race(*calls: StepCall[T]) -> StepCall[T]:
    """Run calls concurrently as one race step: the first to succeed wins, the others are cancelled.

    Await it for the winner's result; ParallelValidationFailed when every branch fails.
    """
    site = caller_site()
    branches = _branches(calls, "race")

    async def runner(_: StepCall[Any]) -> Any:
        steps, inputs, functions, contracts = _group_parts(branches)
        step = RaceStep(id=site or "race", race=steps)

        async def work(execution: PythonFlowExecution, path: str) -> Any:
            return await execution.group(path, step, inputs)

        output, execution, path = await _in_run("race", site, work, functions=functions, contracts=contracts)
        group = _records(execution, path).get(path)
        winner = group.attributes.get("winner") if group is not None else None
        fn = next((fn for branch_id, fn, _ in branches if f"{path}.{branch_id}" == winner), branches[0][1])
        return fn.decode(output)

    return StepCall("race", {}, site, runner)


@overload
def debate(
    agents: Sequence[InferFn[..., Any]],
    topic: Any,
    rounds: int = 2,
    *,
    synthesize: InferFn[..., T],
    converge_on: str | None = None,
) -> StepCall[T]: ...


@overload
def debate(
    agents: Sequence[InferFn[..., Any]],
    topic: Any,
    rounds: int = 2,
    *,
    synthesize: None = None,
    converge_on: str | None = None,
) -> StepCall[dict[str, Any]]: ...


def debate(
    agents: Sequence[InferFn[..., Any]],
    topic: Any,
    rounds: int = 2,
    *,
    synthesize: InferFn[..., Any] | None = None,
    converge_on: str | None = None,
) -> StepCall[Any]:
    """Agents argue a topic concurrently, round after round, each seeing the others' last arguments.

    Each agent is an `@infer` function taking any of `topic`, `round`, `history`, `others` and (optional)
    `previous_arguments`. With `synthesize` (an `@infer` function taking any of `topic`, `history`, `arguments`,
    `converged`) the result is its verdict; without, it is `{"rounds", "converged", "arguments", "history"}`.
    `converge_on` ends the debate early once every agent's argument agrees on that field; without it, an agent's
    `agree_on` names the field `converged` is judged on after every round has run. The reference library's calls
    (`debate(agents, topic, rounds, synthesize=...)`, agents taking `previous_arguments`, a judge taking `arguments`
    and `converged`) mean the same here.
    """
    site = caller_site()
    if not agents:
        raise ValueError("debate: agents list must not be empty")
    allowed_agent = {"topic", "round", "history", "others", "previous_arguments"}
    allowed_judge = {"topic", "history", "arguments", "converged"}
    for agent in agents:
        if not isinstance(agent, InferFn):
            raise TypeError(f"debate() agents are @infer functions, not {agent!r}")
        extra = set(agent.definition.input) - allowed_agent
        if extra:
            raise TypeError(
                f"debate agent '{agent.name}' takes {sorted(extra)}; agents take only {sorted(allowed_agent)}"
            )
    if synthesize is not None:
        if not isinstance(synthesize, InferFn):
            raise TypeError(f"debate() synthesize is an @infer function, not {synthesize!r}")
        extra = set(synthesize.definition.input) - allowed_judge
        if extra:
            raise TypeError(
                f"debate synthesize '{synthesize.name}' takes {sorted(extra)}; it takes only {sorted(allowed_judge)}"
            )
    stop_when_converged = converge_on is not None
    if converge_on is None:  # the reference's debate: agents' agree_on judges `converged`, every round still runs
        converge_on = next((agent.options.agree_on for agent in agents if agent.options.agree_on), None)
    topic_json = to_json(topic)

    async def runner(call: StepCall[Any]) -> Any:
        functions: dict[str, Function] = {agent.name: agent.definition for agent in agents}
        contracts: dict[str, Contract] = {}
        for agent in agents:
            contracts.update(agent.contracts)
        if synthesize is not None:
            functions[synthesize.name] = synthesize.definition
            contracts.update(synthesize.contracts)
        step = DebateStep(
            id=site or "debate",
            debate=Debate(
                agents=tuple(agent.name for agent in agents),
                topic="$.input.topic",
                rounds=rounds,
                synthesize=synthesize.name if synthesize is not None else None,
                converge_on=converge_on,
                stop_when_converged=stop_when_converged,
            ),
        )

        async def work(execution: PythonFlowExecution, path: str) -> Any:
            return await execution.group(path, step, {"topic": topic_json})

        output, _, _ = await _in_run("debate", site, work, functions=functions, contracts=contracts)
        if synthesize is not None:
            return synthesize.decode(output)
        by_name = {agent.name: agent for agent in agents}
        arguments = output.get("arguments", {}) if isinstance(output, dict) else {}
        decoded = {}
        for key, value in arguments.items():  # keys are agent names, `name#2` for a function that argues twice
            taker = by_name.get(key.split("#")[0])
            decoded[key] = taker.decode(value) if taker is not None else value
        return {**output, "arguments": decoded}

    return StepCall("debate", {"topic": topic_json}, site, runner)


def _seconds(timeout: float | datetime.timedelta | None) -> float | None:
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    return None if timeout is None else float(timeout)


def human_function(
    name: str,
    *,
    question: str,
    context: Mapping[str, Any],
    decision_type: Any,
    options: Sequence[Any] | None,
    timeout: float | datetime.timedelta | None,
    on_timeout: Any,
) -> tuple[HumanFunction, dict[str, Contract]]:
    """The human function an `await_human` call stands for (the same at run time and at export)."""
    try:
        resolved = type_spec(decision_type)
    except DefinitionProblem as problem:
        raise TypeError(f"await_human(): decision_type: {problem.message}") from None
    decision = codec(decision_type)
    fallback = on_timeout if isinstance(on_timeout, str) and on_timeout == "raise" else decision.to_json(on_timeout)
    inputs = {key: TypeSpec(type="any") for key in context}
    function = HumanFunction(
        name=name,
        question=question,
        input=inputs,
        output=resolved.spec,
        options=tuple(to_json(list(options))) if options is not None else None,
        timeout=_seconds(timeout),
        on_timeout=fallback,
    )
    return function, dict(resolved.contracts)


@overload
def await_human(
    *,
    question: str | None = None,
    context: str | Mapping[str, Any] | None = None,
    decision_type: type[T],
    options: Sequence[Any] | None = None,
    timeout: float | datetime.timedelta | None = None,
    on_timeout: Any = "raise",
) -> StepCall[HumanDecision[T]]: ...


@overload
def await_human(
    *,
    question: str | None = None,
    context: str | Mapping[str, Any] | None = None,
    options: Sequence[Any] | None = None,
    timeout: float | datetime.timedelta | None = None,
    on_timeout: Any = "raise",
) -> StepCall[HumanDecision[bool]]: ...


@overload
def await_human(
    *,
    question: str | None = None,
    context: str | Mapping[str, Any] | None = None,
    decision_type: Any,
    options: Sequence[Any] | None = None,
    timeout: float | datetime.timedelta | None = None,
    on_timeout: Any = "raise",
) -> StepCall[HumanDecision[Any]]: ...


def await_human(
    *,
    question: str | None = None,
    context: str | Mapping[str, Any] | None = None,
    decision_type: Any = bool,
    options: Sequence[Any] | None = None,
    timeout: float | datetime.timedelta | None = None,
    on_timeout: Any = "raise",
) -> StepCall[HumanDecision[Any]]:
    """Ask a person for a typed decision; await it for a HumanDecision (value, reviewer, rationale, decided_at).

    Args:
        question: what the person is asked (a str `context` is the question when this is left out).
        context: what the person is shown with the question: a mapping of names to values.
        decision_type: the decision's type: bool, str, int, float, a Literal, or a contract of flat fields.
        options: the allowed values of the decision (of its first field, for a contract).
        timeout: seconds (or a timedelta) to wait; then `on_timeout` decides.
        on_timeout: `"raise"` (HITLTimeoutError) or the decision to use when nobody answered in time.

    The person is reached through the configured review sink (`configure(review_sink=...)`). A declined or cancelled
    decision raises HumanRejected.
    """
    site = caller_site()
    shown: Mapping[str, Any] = context if isinstance(context, Mapping) else {}
    text = question or (context if isinstance(context, str) else None) or "Please decide."
    inputs = {key: to_json(value) for key, value in shown.items() if value is not None}
    name = site or "await_human"
    function, contracts = human_function(
        name,
        question=text,
        context=inputs,
        decision_type=decision_type,
        options=options,
        timeout=timeout,
        on_timeout=on_timeout,
    )
    decision = codec(decision_type)

    async def runner(_: StepCall[Any]) -> HumanDecision[Any]:
        async def work(execution: PythonFlowExecution, path: str) -> Any:
            return await execution.call(path, function.name, inputs)

        output, execution, path = await _in_run(
            "await_human", site, work, functions={function.name: function}, contracts=contracts
        )
        record = _records(execution, path).get(path)
        attributes = record.attributes if record is not None else {}
        decided = attributes.get("decided_at")
        return HumanDecision(
            value=decision.to_python(output, where="decision"),
            review_id=str(attributes.get("review_id") or ""),
            reviewer=cast(str | None, attributes.get("reviewer")),
            rationale=cast(str | None, attributes.get("rationale")),
            decided_at=datetime.datetime.fromtimestamp(decided, tz=datetime.UTC)
            if isinstance(decided, int | float)
            else None,
        )

    return StepCall("await_human", inputs, site, runner)
