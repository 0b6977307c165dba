"""Debate steps: agents argue a topic concurrently, round after round, each seeing the others' arguments.

Each agent is an infer function called with whichever of these inputs it declares: `topic`, `round` (1-based),
`history` (every earlier argument as {agent, round, argument}) and `others` (the other agents' last arguments).
The debate stops after `rounds`, or earlier when every agent's argument agrees on the field `converge_on`.
`synthesize` (a function taking `topic`, `history` and/or `arguments`) merges the result; without it the step's
output is {rounds, converged, arguments, history}.
"""

from __future__ import annotations

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
                "others": {name: value for name, value in last.items() if name != agent},
            }
            try:
                arguments[agent] = await execution.call_function_at(
                    f"{path}.{agent}[{number}]", agent, _accepted(fn.input, offered)
                )
            except RunError as error:
                failures.append(error)
            except Pending as pause:  # an agent done by the calling agent (or a person): the round waits for all
                waiting.append(pause)

        async with anyio.create_task_group() as group:
            for agent in debate.agents:
                group.start_soon(argue, agent, round_number, arguments, failures, waiting, latest)
        if failures:
            raise failures[0]
        if waiting:
            raise Pending.merge(waiting)
        latest = {agent: arguments[agent] for agent in debate.agents}
        history.extend({"agent": agent, "round": round_number, "argument": latest[agent]} for agent in debate.agents)
        if debate.converge_on is not None:
            positions = {
                canonical_json(argument.get(debate.converge_on) if isinstance(argument, dict) else argument)
                for argument in latest.values()
            }
            if len(positions) == 1:
                converged = True
                break
    attributes.update({"rounds": rounds, "converged": converged})
    if debate.synthesize is None:
        return {"rounds": rounds, "converged": converged, "arguments": latest, "history": history}
    judge = plan.functions[debate.synthesize]
    offered = {"topic": topic, "history": history, "arguments": latest}
    return await execution.call_function_at(
        f"{path}.{debate.synthesize}", debate.synthesize, _accepted(judge.input, offered)
    )
