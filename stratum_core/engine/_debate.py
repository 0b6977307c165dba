"""Debate steps: agents argue a topic concurrently, round after round, each seeing the others' arguments.

Each agent is an infer function called with whichever of these inputs it declares: `topic`, `round` (1-based),
`history` (every earlier argument as {agent, round, argument}), `others` (the other agents' last arguments, by
agent) and `previous_arguments` (the same as a list in agent order, from round 2 on: the reference library's name).
The debate stops after `rounds`, or earlier when every agent's argument agrees on the field `converge_on` (unless
`stop_when_converged` is false: then `converged` says whether the last round agreed); without `converge_on` it runs
every round and has converged when the last round's arguments are all equal.
`synthesize` (a function taking `topic`, `history`, `arguments` and/or `converged`) merges the result; without it
the step's output is {rounds, converged, arguments, history}. A synthesize function that declares `converged` is
called the reference library's way: its `arguments` are every round's arguments, a list of lists in agent order.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio

from stratum_core.engine._pending import Pending
from stratum_core.engine._values import MISSING, Scope, resolve_binding
from stratum_core.errors import RunError
from stratum_core.plan import DebateStep
from stratum_core.plan._schema import canonical_json

if TYPE_CHECKING:
    from stratum_core.engine._scheduler import FlowExecution

__all__ = ["run_debate"]


def _agent_keys(agents: tuple[str, ...]) -> list[str]:
    """Each agent's key in arguments, history and step ids: its name, or `name#2`, ... when a function argues twice."""
    seen: Counter[str] = Counter()
    keys: list[str] = []
    for agent in agents:
        seen[agent] += 1
        keys.append(agent if seen[agent] == 1 else f"{agent}#{seen[agent]}")
    return keys


def _accepted(declared: dict[str, Any], offered: dict[str, Any]) -> dict[str, Any]:
    """The offered inputs the function declares; a topic bound to an absent optional input is left out."""
    return {key: value for key, value in offered.items() if key in declared and value is not MISSING}


async def run_debate(
    execution: FlowExecution, step: DebateStep, path: str, scope: Scope, attributes: dict[str, Any]
) -> Any:
    """Run the debate of `step` and return its output (see the module docstring)."""
    debate = step.debate
    plan = execution.run.plan
    topic = resolve_binding(debate.topic, scope, step_id=path)
    keys = _agent_keys(debate.agents)
    history: list[dict[str, Any]] = []
    latest: dict[str, Any] = {}
    converged = False
    rounds = 0
    for round_number in range(1, debate.rounds + 1):
        rounds = round_number
        arguments: dict[str, Any] = {}
        failures: list[RunError] = []
        waiting: list[Pending] = []

        async def argue(
            agent: str,
            key: str,
            number: int,
            arguments: dict[str, Any],
            failures: list[RunError],
            waiting: list[Pending],
            last: dict[str, Any],
        ) -> None:
            fn = plan.functions[agent]
            offered = {
                "topic": topic,
                "round": number,
                "history": list(history),
                "others": {name: value for name, value in last.items() if name != key},
                "previous_arguments": [value for name, value in last.items() if name != key] if last else MISSING,
            }
            try:
                arguments[key] = await execution.call_function_at(
                    f"{path}.{key}[{number}]", agent, _accepted(fn.input, offered)
                )
            except RunError as error:
                failures.append(error)
            except Pending as pause:  # an agent done by the calling agent (or a person): the round waits for all
                waiting.append(pause)

        async with anyio.create_task_group() as group:
            for agent, key in zip(debate.agents, keys, strict=True):
                group.start_soon(argue, agent, key, round_number, arguments, failures, waiting, latest)
        if failures:
            raise failures[0]
        if waiting:
            raise Pending.merge(waiting)
        latest = {key: arguments[key] for key in keys}
        history.extend({"agent": key, "round": round_number, "argument": latest[key]} for key in keys)
        if debate.converge_on is not None:
            positions = {
                canonical_json(argument.get(debate.converge_on) if isinstance(argument, dict) else argument)
                for argument in latest.values()
            }
            converged = len(positions) == 1
            if converged and debate.stop_when_converged:
                break
    if debate.converge_on is None:
        converged = len({canonical_json(argument) for argument in latest.values()}) == 1
    attributes.update({"rounds": rounds, "converged": converged})
    if debate.synthesize is None:
        return {"rounds": rounds, "converged": converged, "arguments": latest, "history": history}
    judge = plan.functions[debate.synthesize]
    offered: dict[str, Any] = {"topic": topic, "history": history, "arguments": latest, "converged": converged}
    if "converged" in judge.input:  # the reference's synthesize(topic, arguments, converged): arguments by round
        offered["arguments"] = [
            [entry["argument"] for entry in history if entry["round"] == number] for number in range(1, rounds + 1)
        ]
    return await execution.call_function_at(
        f"{path}.{debate.synthesize}", debate.synthesize, _accepted(judge.input, offered)
    )
