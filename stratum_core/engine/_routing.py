"""Sequential flows with routing: how reference plans (0.1/0.2/0.3) run, gates and their revise loops included.

A sequential flow runs its steps one at a time in dependency order (YAML order breaks ties), as the reference
server does. On top of that order, a step may send the run elsewhere:

- a gate (a human step made from a `mode: gate` function) decides approve / revise / kill: approve goes on (to
  `on_approve`, or the next step), revise goes back to `on_revise` (an earlier step: the steps from there run again
  as a new round), kill ends the run (after running from `on_kill`, when it names a step);
- `on_fail` catches a step whose output still breaks its contract after its retries and goes there;
- `next` jumps after a success;
- `max_iterations` repeats a step until `exit_criterion` holds, it stagnates (the same output three times in a
  row) or the iterations run out;
- `parallel_dispatch` runs its function once per task of a list, at most `max_concurrent` at once.

Nothing loops without bound: a gate may send the flow back at most `max_rounds - 1` times, and routing may enter any
step at most `max_rounds` times (`Flow.max_rounds`, default 10). Each run of a step is recorded under its own path
(`draft`, then `draft@2`, ...), so earlier rounds stay in the trace; when a paused run resumes, the same decisions
are read back from the store and the same paths come out.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import anyio

from stratum_core.engine._pending import Pending
from stratum_core.engine._python_objects import describe
from stratum_core.engine._scheduler import FlowExecution, _step_dependencies
from stratum_core.engine._values import SkippedInput, resolve_binding
from stratum_core.errors import (
    ExpressionError,
    GateKilled,
    PostconditionFailed,
    RoutingLimitExceeded,
    RunError,
)
from stratum_core.expressions import compile_expression
from stratum_core.plan import CallStep, Step, StepRoute
from stratum_core.store import StepRecord

__all__ = ["DEFAULT_MAX_ROUNDS", "STAGNATION_WINDOW", "SequentialFlowExecution", "base_step_id"]

DEFAULT_MAX_ROUNDS = 10
STAGNATION_WINDOW = 3
_TEMPLATE = re.compile(r"\{task(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")


def base_step_id(path: str) -> str:
    """The step id of a recorded path: `draft@2` -> `draft`, `work#3` -> `work`, `fan[t1]` -> `fan`."""
    return re.split(r"[@#\[.]", path, maxsplit=1)[0]


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _render(template: str, task: Any) -> str:
    def field(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return json.dumps(task, default=str) if not isinstance(task, str) else task
        value = task.get(name) if isinstance(task, Mapping) else None
        return "" if value is None else str(value)

    return _TEMPLATE.sub(field, template)


class SequentialFlowExecution(FlowExecution):
    """Runs a sequential flow (see the module docstring); a sub-flow of it runs the same way."""

    async def execute(self) -> Any:
        """Run the steps in order, following routes; return the output of the last step that produced one."""
        steps = list(self.flow.steps)
        order = self._order(steps)
        index_of = {step.id: n for n, step in enumerate(order)}
        limit = self.flow.max_rounds or DEFAULT_MAX_ROUNDS
        previous = {record.step_id: record for record in self.run.store.get_steps(self.run.run_id)}
        generation: dict[str, int] = {}
        entered: set[str] = set()
        entries: dict[str, int] = {}
        round_number = 1
        last_output: Any = None
        killed: GateKilled | None = None
        position = 0

        def jump(target: str) -> int:
            start = index_of[target]
            for step in order[start:]:
                if step.id in entered:
                    generation[step.id] = generation.get(step.id, 0) + 1
                    entered.discard(step.id)
                self.scope.outputs.pop(step.id, None)
                self.scope.skipped.discard(step.id)
            return start

        with anyio.CancelScope(deadline=self.envelope.deadline) as deadline_scope:
            while position < len(order):
                step = order[position]
                entries[step.id] = entries.get(step.id, 0) + 1
                if entries[step.id] > limit:
                    raise RoutingLimitExceeded(
                        f"step '{step.id}' would run a {entries[step.id]}th time (max_rounds: {limit})",
                        limit=limit,
                        step_id=self.prefix + step.id,
                    )
                path = self.prefix + self._path(step.id, generation.get(step.id, 0))
                entered.add(step.id)
                route = step.route if isinstance(step, CallStep) else None
                earlier = previous.get(path)
                if route is not None and route.on_fail and _routed(earlier):
                    position = jump(route.on_fail)
                    continue
                try:
                    if route is not None and route.gate:
                        outcome, rationale = await self._gate(step, path, route)
                    else:
                        output = await self._run(step, path, route)
                except SkippedInput:
                    self.scope.skipped.add(step.id)
                    if route is not None and route.skip_reason:
                        self._note(path, skip_reason=route.skip_reason)
                    position += 1
                    continue
                except PostconditionFailed as error:
                    if route is None or not route.on_fail:
                        raise
                    self._note(path, routed_to=route.on_fail)
                    await self._log(f"step '{path}' failed its contract; routing to '{route.on_fail}': {error.message}")
                    position = jump(route.on_fail)
                    continue
                if route is not None and route.gate:  # a gate has no output of its own
                    if outcome == "approve":
                        position = jump(route.on_approve) if route.on_approve else position + 1
                    elif outcome == "revise":
                        assert route.on_revise is not None
                        if round_number >= limit:
                            raise RoutingLimitExceeded(
                                f"gate '{step.id}' asked for round {round_number + 1} (max_rounds: {limit})",
                                limit=limit,
                                step_id=path,
                            )
                        round_number += 1
                        position = jump(route.on_revise)
                    else:
                        kill = GateKilled(
                            f"gate '{step.id}' was killed" + (f": {rationale}" if rationale else ""),
                            gate=step.id,
                            rationale=rationale,
                            step_id=path,
                        )
                        if route.on_kill and killed is None:
                            killed = kill
                            position = jump(route.on_kill)
                        else:
                            raise kill
                    continue
                self.scope.outputs[step.id] = output
                if output is not None:
                    last_output = output
                if route is not None and route.next:
                    position = jump(route.next)
                    continue
                position += 1
        if deadline_scope.cancelled_caught:
            raise self.envelope.timeout_error(step_id=self.prefix.rstrip(".") or self.flow.name)
        if killed is not None:
            raise killed
        return last_output

    # -- helpers --------------------------------------------------------------------------------------------------

    @staticmethod
    def _order(steps: list[Step]) -> list[Step]:
        ids = {step.id for step in steps}
        waits = {step.id: (_step_dependencies(step) | _dispatch_source(step)) & ids - {step.id} for step in steps}
        order: list[Step] = []
        done: set[str] = set()
        while len(order) < len(steps):
            ready = [s for s in steps if s.id not in done and waits[s.id] <= done]
            chosen = ready[0] if ready else next(s for s in steps if s.id not in done)
            order.append(chosen)
            done.add(chosen.id)
        return order

    @staticmethod
    def _path(step_id: str, generation: int) -> str:
        return step_id if generation == 0 else f"{step_id}@{generation + 1}"

    def _note(self, path: str, **attributes: Any) -> None:
        """Add attributes to the record of the step at `path` (why it was skipped, where it routed)."""
        record = next((r for r in self.run.store.get_steps(self.run.run_id) if r.step_id == path), None)
        if record is not None:
            self._record(record.model_copy(update={"attributes": {**record.attributes, **attributes}}))

    async def _log(self, message: str) -> None:
        await self.run.observer.log(self.run.run_id, "info", message)

    async def _when_allows(self, step: Step, path: str) -> None:
        """Raise SkippedInput when the step's `when` is false or reads a skipped step (as `run_step` does)."""
        if not step.when:
            return
        expression = compile_expression(step.when)
        for read in expression.reads:
            if read.root == "steps" and read.fields and read.fields[0] in self.scope.skipped:
                await self._skip(path, step, when=step.when, reads_skipped=read.fields[0])
                raise SkippedInput(step.id)
        try:
            allowed = bool(expression.evaluate(self.scope.expression_env()))
        except ExpressionError as error:
            error.step_id = path
            raise
        if not allowed:
            await self._skip(path, step, when=step.when)
            raise SkippedInput(step.id)

    async def _begin(self, step: Step, path: str, binding: Any) -> tuple[bool, Any]:
        """Where a routed step starts: (True, its output) if finished before, else (False, the value of `binding`).

        Raises SkippedInput when the step was skipped, its `when` is false, or it reads a skipped step.
        """
        completed = self.run.completed.get(path)
        if completed is not None:
            if completed.status == "skipped":
                raise SkippedInput(step.id)
            return True, completed.output
        await self._when_allows(step, path)
        try:
            return False, resolve_binding(binding, self.scope, step_id=path)
        except SkippedInput as skipped:
            await self._skip(path, step, reads_skipped=skipped.step_id)
            raise

    async def _run(self, step: Step, path: str, route: StepRoute | None) -> Any:
        if route is not None and route.max_iterations and isinstance(step, CallStep):
            return await self._iterate(step, path, route)
        if route is not None and route.dispatch is not None and isinstance(step, CallStep):
            return await self._dispatch(step, path, route)
        return await self.run_step(step, path)

    async def _gate(self, step: Step, path: str, route: StepRoute) -> tuple[str, str | None]:
        """The gate's decision (outcome, rationale): asked of a person, or approved by policy or `skip_if`."""
        assert isinstance(step, CallStep)
        completed = self.run.completed.get(path)
        if completed is not None and isinstance(completed.output, Mapping):
            return _decision(completed.output)
        automatic: str | None = None
        if route.skip_if is not None:
            try:
                if compile_expression(route.skip_if).evaluate(self.scope.expression_env()):
                    automatic = "skip_if"
            except ExpressionError as error:
                error.step_id = path
                raise
        if automatic is None and route.policy in ("flag", "skip"):
            automatic = route.policy
        if automatic is None:
            decision = await self.run_step(step, path)
            if not isinstance(decision, Mapping):
                raise RunError(f"gate '{step.id}' got no decision", step_id=path)
            return _decision(decision)
        rationale = f"approved automatically ({automatic})"
        decision = {"outcome": "approve", "rationale": rationale}
        now = time.time()
        self._record(
            StepRecord(
                run_id=self.run.run_id,
                step_id=path,
                function=step.function,
                kind="gate",
                status="succeeded",
                started_at=now,
                finished_at=now,
                duration_ms=0.0,
                output=decision,
                attributes={"effective_policy": automatic, "resolved_by": "system", "decision": "approve"},
            )
        )
        return "approve", rationale

    async def _iterate(self, step: CallStep, path: str, route: StepRoute) -> Any:
        """Repeat the step's function until `exit_criterion` holds, it stagnates, or `max_iterations` run out."""
        max_iterations = route.max_iterations
        assert max_iterations is not None
        done, inputs = await self._begin(step, path, step.inputs)
        if done:
            return inputs
        name = step.target
        criterion = compile_expression(route.exit_criterion) if route.exit_criterion else None
        attributes: dict[str, Any] = {"max_iterations": route.max_iterations}
        envelope = self.step_envelope(step.budget, path=path, label=f"step '{path}'")

        async def work() -> Any:
            prints: list[str] = []
            output: Any = None
            outcome = "exit_max"
            for number in range(1, max_iterations + 1):
                aborted = self.run.completed.get(f"{path}#{number}")
                if aborted is not None and "iteration_aborted" in aborted.attributes:  # the agent stopped the loop
                    outcome = "exit_abort"
                    attributes["iteration_aborted"] = aborted.attributes["iteration_aborted"]
                    break
                output = await self.call_function_at(f"{path}#{number}", name, inputs, budget=step.budget)
                attributes["iterations"] = number
                env = {**inputs, "result": output}
                if criterion is not None:
                    try:
                        met = bool(criterion.evaluate(env))
                    except ExpressionError as error:
                        error.step_id = path
                        raise
                    if met:
                        outcome = "exit_success"
                        break
                    self.run.previous_violations.setdefault(
                        f"{path}#{number + 1}", (f"exit_criterion: {describe(criterion, env)}",)
                    )
                prints.append(_fingerprint(output))
                if len(prints) >= STAGNATION_WINDOW and len(set(prints[-STAGNATION_WINDOW:])) == 1:
                    outcome = "exit_stagnation"
                    break
            attributes["iteration_outcome"] = outcome
            return output

        return await self._tracked(path, "iteration", name, dict(inputs), envelope, work, attributes)

    async def _dispatch(self, step: CallStep, path: str, route: StepRoute) -> Any:
        """Run the step's function once per task of `source`; the aggregate is the step's output."""
        dispatch = route.dispatch
        assert dispatch is not None
        done, tasks = await self._begin(step, path, dispatch.source)
        if done:
            return tasks
        if isinstance(tasks, Mapping) and isinstance(tasks.get("tasks"), list):
            tasks = tasks["tasks"]  # a decompose step's TaskGraph
        if not isinstance(tasks, list):
            raise RunError(f"parallel_dispatch: {dispatch.source} is not a list of tasks", step_id=path)
        envelope = self.step_envelope(step.budget, path=path, label=f"step '{path}'")
        attributes: dict[str, Any] = {"tasks": len(tasks), "max_concurrent": dispatch.max_concurrent}

        async def work() -> Any:
            results: dict[int, dict[str, Any]] = {}
            waiting: list[Pending] = []
            limiter = anyio.CapacityLimiter(dispatch.max_concurrent)

            reported = {  # tasks the agent said it could not do (`Engine.close_agent_steps`)
                record.step_id: record.attributes["task_failed"]
                for record in self.run.store.get_steps(self.run.run_id)
                if record.status == "failed" and "task_failed" in record.attributes
            }

            async def one(index: int, task: Any) -> None:
                task_id = str(task.get("id", index)) if isinstance(task, Mapping) else str(index)
                inputs = {"task": task, "instruction": _render(dispatch.intent_template, task)}
                if f"{path}[{task_id}]" in reported:
                    error = str(reported[f"{path}[{task_id}]"])
                    results[index] = {"task_id": task_id, "result": None, "status": "failed", "error": error}
                    return
                async with limiter:
                    try:
                        result = await self.call_function_at(f"{path}[{task_id}]", step.target, inputs)
                        results[index] = {"task_id": task_id, "result": result, "status": "complete"}
                    except Pending as pause:
                        waiting.append(pause)
                    except RunError as error:
                        results[index] = {"task_id": task_id, "result": None, "status": "failed", "error": str(error)}

            async with anyio.create_task_group() as group:
                for index, task in enumerate(tasks):
                    group.start_soon(one, index, task)
            if waiting:
                raise Pending.merge(waiting)
            ordered = [results[index] for index in sorted(results)]
            completed_count = sum(1 for r in ordered if r["status"] == "complete")
            needed = len(tasks) if dispatch.require == "all" else 1 if dispatch.require == "any" else dispatch.require
            outcome = "complete" if completed_count >= min(needed, max(len(tasks), 1)) or not tasks else "failed"
            aggregate = {
                "tasks": ordered,
                "merge_status": "clean",
                "completed": completed_count,
                "failed": len(ordered) - completed_count,
                "outcome": outcome,
            }
            if outcome == "failed":
                raise PostconditionFailed(
                    f"parallel_dispatch '{path}' needs {needed} completed task(s) (require: {dispatch.require}), "
                    f"got {completed_count}",
                    history=[[f"require: {dispatch.require}"]],
                    step_id=path,
                )
            return aggregate

        return await self._tracked(path, "parallel_dispatch", step.target, {"tasks": tasks}, envelope, work, attributes)


def _decision(record: Mapping[str, Any]) -> tuple[str, str | None]:
    """A gate decision's (outcome, rationale)."""
    reason = record.get("rationale")
    return str(record.get("outcome")), reason if isinstance(reason, str) else None


def _dispatch_source(step: Step) -> set[str]:
    route = step.route if isinstance(step, CallStep) else None
    if route is None or route.dispatch is None:
        return set()
    match = re.match(r"\$\.steps\.([A-Za-z0-9_\-]+)", route.dispatch.source)
    return {match.group(1)} if match else set()


def _routed(record: StepRecord | None) -> bool:
    return record is not None and record.status == "failed" and bool(record.attributes.get("routed_to"))
