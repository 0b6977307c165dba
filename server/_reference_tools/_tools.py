"""The reference's controller tools on our engine and store (`stratum serve --reference-tools`).

A flow started with `stratum_plan` is an ordinary Stratum run: recorded in the store (its `flow_id` is the run id,
so its trace is `stratum://runs/{flow_id}`), its inputs, contracts, `ensure`, guardrails, retries, budgets and
routing enforced by the engine. What the reference leaves to the agent stays the agent's: every step that is not a
gate or a code step is handed to the calling agent (these runs use an engine whose infer steps go to the agent,
whatever the server's model), and gates wait for `stratum_gate_resolve`. Replies have the reference's shapes
(`_replies`); errors are ordinary results with `status: "error"`, as there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp.types as types
import yaml

from server._adhoc import load_agent_plan
from server._elicitation import PauseSink
from server._limits import json_size, too_large
from server._reference_tools._definitions import (
    AUDIT,
    CHECK_TIMEOUTS,
    GATE_RESOLVE,
    ITERATION_ABORT,
    ITERATION_REPORT,
    ITERATION_START,
    LIST_WORKFLOWS,
    PARALLEL_DONE,
    PLAN,
    REFERENCE_ONLY,
    REFERENCE_TOOL_DEFS,
    REPORTS,
    RESUME,
    SHARED,
    SKIP_STEP,
    STEP_DONE,
    merged_schema,
    reference_input,
)
from server._reference_tools._replies import (
    audit,
    current_of,
    dispatch,
    error_reply,
    reference_id,
    rejected,
)
from server._reference_tools._spec import spec_of
from server._results import run_uri
from stratum_core.engine import Engine
from stratum_core.errors import PlanError, StratumError
from stratum_core.plan import Plan, load_plan_text
from stratum_core.plan._reference_schema import REFERENCE_VERSIONS
from stratum_core.store import RunRecord, RunStore, StepRecord
from stratum_core.store._records import new_id

if TYPE_CHECKING:
    from server._app import StratumServer

__all__ = ["ReferenceTools"]

logger = logging.getLogger("stratum.server")

_OUTCOMES = ("approve", "revise", "kill")
_RESOLVERS = ("human", "agent", "system")
_DEFAULT_MAX_ROUNDS = 10
_ITERATION = re.compile(r"#(\d+)$")

Reply = dict[str, Any]


def _reply(data: Reply) -> types.CallToolResult:
    """A reference reply: the JSON as text and as structured content; never `isError` (as the reference)."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(data, ensure_ascii=False, default=str))],
        structured_content=data,
        is_error=False,
        _meta={"stratum/run_id": data["flow_id"]} if isinstance(data.get("flow_id"), str) else None,
    )


def _plan_error(error: PlanError) -> Reply:
    """A plan that does not load: the reference's `ir_validation_error`, with every problem we found."""
    first = error.problems[0] if error.problems else None
    return {
        "status": "error",
        "success": False,
        "error_type": "ir_validation_error",
        "message": first.message if first is not None else str(error),
        "path": first.path if first is not None else "root",
        "suggestion": (first.hint if first is not None else None) or "See docs/plan-language.md",
        "errors": [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in error.problems],
    }


class ReferenceTools:
    """The reference's tools, served by a StratumServer started with `--reference-tools`."""

    def __init__(self, server: StratumServer) -> None:
        self.server = server
        base = server.engine
        self.engine = Engine(
            store=server.store,
            config=dataclasses.replace(base.config, infer_via="agent"),
            observers=base.observers,
        )

    # -- what the server lists and routes ---------------------------------------------------------------------

    @staticmethod
    def tools(builtin: list[types.Tool]) -> list[types.Tool]:
        """The server's own tools (the shared ones taking both argument shapes), then the reference's."""
        return [merged_schema(tool) if tool.name in SHARED else tool for tool in builtin] + REFERENCE_TOOL_DEFS

    @staticmethod
    def input_schema(name: str) -> Mapping[str, Any] | None:
        """The input schema of a reference-only tool (None for any other)."""
        return reference_input(name)

    @staticmethod
    def handles(params: types.CallToolRequestParams) -> bool:
        """Whether this call is a reference tool call (a shared tool is the reference's when it has `flow_id`)."""
        if params.name in REFERENCE_ONLY:
            return True
        return params.name in SHARED and "flow_id" in (params.arguments or {})

    async def call(self, params: types.CallToolRequestParams, *, owner: str, view: RunStore) -> types.CallToolResult:
        """Answer a reference tool call; a failure inside is an error reply, never a crash.

        `owner` is who calls (the runs `stratum_plan` starts are theirs); `view` is the store as they see it: another
        identity's flow reads as one that does not exist (`flow_not_found`).
        """
        arguments = dict(params.arguments or {})
        config = self.server.config
        limit = config.max_report_bytes if params.name in REPORTS else config.max_argument_bytes
        if json_size(arguments, limit) > limit:
            setting = "max_report_bytes" if params.name in REPORTS else "max_argument_bytes"
            return _reply(error_reply("too_large", too_large(f"The arguments of '{params.name}'", limit, setting)))
        problem = self._argument_problem(params.name, arguments)
        if problem is not None:
            return _reply(error_reply("invalid_arguments", problem))
        try:
            data = await self._handle(params.name, arguments, owner=owner, view=view)
        except StratumError as e:
            logger.warning("tool %s: %s", params.name, e)
            data = error_reply("execution_error", f"{type(e).__name__}: {e}")
        except Exception:  # one call is isolated from the server: logged, answered as the reference's internal_error
            logger.exception("tool %s failed", params.name)
            data = error_reply("internal_error", "An unexpected error occurred (see the server log).")
        flow_id = data.get("flow_id") or arguments.get("flow_id")
        if isinstance(flow_id, str) and params.name not in (AUDIT, LIST_WORKFLOWS):
            with anyio.CancelScope(shield=True):
                await self.server.hub.resource_updated(run_uri(flow_id))
        return _reply(data)

    @staticmethod
    def _argument_problem(name: str, arguments: Mapping[str, Any]) -> str | None:
        schema = reference_input(name) or {
            STEP_DONE: {"required": ["flow_id", "step_id", "result"]},
            RESUME: {"required": ["flow_id"]},
        }.get(name, {})
        missing = [key for key in schema.get("required", []) if key not in arguments]
        if missing:
            return f"'{name}' needs {', '.join(missing)}"
        for key in ("flow_id", "step_id", "spec", "flow"):
            if key in arguments and not isinstance(arguments[key], str):
                return f"{key} must be a string"
        for key in ("inputs", "result"):
            if key in arguments and not isinstance(arguments[key], Mapping):
                return f"{key} must be an object"
        if name == PARALLEL_DONE and not isinstance(arguments.get("task_results"), list):
            return "task_results must be an array"
        return None

    async def _handle(self, name: str, arguments: dict[str, Any], *, owner: str, view: RunStore) -> Reply:
        if name == PLAN:
            return await self.plan(
                str(arguments["spec"]), str(arguments["flow"]), arguments.get("inputs") or {}, owner=owner
            )
        if name == LIST_WORKFLOWS:
            return await self.list_workflows(arguments.get("workflows_dir"))
        flow_id = str(arguments["flow_id"])
        run = view.get_run(flow_id)
        if run is None:
            return error_reply("flow_not_found", f"No flow with id '{flow_id}'.", flow_id=flow_id)
        if name == RESUME:
            return dispatch(self.server.store, run)
        if name == AUDIT:
            return audit(self.server.store, run)
        if name == CHECK_TIMEOUTS:
            return await self.check_timeouts(run)
        step_id = str(arguments["step_id"])
        if run.status != "paused":
            return error_reply("flow_complete", f"flow {flow_id} is {run.status}; nothing to report", flow_id=flow_id)
        if spec_of(run.plan_text, run.flow).find(step_id) is None:
            return error_reply("step_not_found", f"flow '{run.flow}' has no step '{step_id}'", flow_id=flow_id)
        if name == STEP_DONE:
            return await self.step_done(run, step_id, arguments["result"])
        if name == GATE_RESOLVE:
            return await self.gate_resolve(run, step_id, arguments)
        if name == SKIP_STEP:
            return await self.skip_step(run, step_id, str(arguments.get("reason") or "skipped by the agent"))
        if name == PARALLEL_DONE:
            return await self.parallel_done(
                run, step_id, arguments["task_results"], str(arguments.get("merge_status") or "clean")
            )
        if name == ITERATION_START:
            return self.iteration_start(run, step_id)
        if name == ITERATION_REPORT:
            return await self.iteration_report(run, step_id, arguments.get("result") or {})
        assert name == ITERATION_ABORT
        return await self.iteration_abort(run, step_id, str(arguments.get("reason") or "aborted by the agent"))

    # -- helpers ------------------------------------------------------------------------------------------------

    def _run(self, run_id: str) -> RunRecord:
        run = self.server.store.get_run(run_id)
        assert run is not None
        return run

    def _now(self, run: RunRecord) -> Reply:
        return dispatch(self.server.store, self._run(run.run_id))

    def _waiting(self, run: RunRecord, step_id: str) -> list[StepRecord]:
        """The waiting agent records of the plan's step `step_id` (several for a parallel_dispatch)."""
        return [s for s in current_of(self.server.store, run.run_id).waiting if reference_id(s.step_id) == step_id]

    def _step_record(self, run: RunRecord, path: str) -> StepRecord | None:
        return next((s for s in self.server.store.get_steps(run.run_id) if s.step_id == path), None)

    def _mismatch(self, run: RunRecord, step_id: str) -> Reply:
        at = current_of(self.server.store, run.run_id).step_id
        return error_reply(
            "step_mismatch",
            f"the flow waits at step '{at}', not '{step_id}'",
            flow_id=run.run_id,
            expected_step_id=at,
        )

    async def _submit(self, run: RunRecord, path: str, result: Any) -> Reply | None:
        """Report the agent's result for the waiting step at `path`: None when accepted, else the reply to give."""
        submission = await self.engine.submit_agent_output(run.run_id, path, result, review_sink=PauseSink())
        if submission.result is None and submission.routed_to is None:
            return rejected(
                self.server.store, self._run(run.run_id), path, submission.violations, submission.retries_left
            )
        return None

    # -- the tools ------------------------------------------------------------------------------------------------

    async def plan(self, spec: str, flow: str, inputs: Mapping[str, Any], *, owner: str) -> Reply:
        """stratum_plan: load the plan (as a client's untrusted text), start the flow, answer its first dispatch."""
        try:
            plan = await anyio.to_thread.run_sync(load_agent_plan, spec)
        except PlanError as e:
            return _plan_error(e)
        refused = self._unconfigured_models(plan)
        if refused is not None:
            return refused
        if flow not in plan.flows:
            return error_reply("execution_error", f"Flow '{flow}' not found in spec (flows: {', '.join(plan.flows)})")
        problems = self.engine.input_errors(plan, flow, inputs)
        if problems:
            return error_reply("execution_error", f"invalid inputs for flow '{flow}': " + "; ".join(problems))
        run_id = new_id()
        await self.engine.run(plan, flow, inputs, agent=True, review_sink=PauseSink(), run_id=run_id, owner=owner)
        await self.server.hub.runs_changed()
        return dispatch(self.server.store, self._run(run_id))

    def _unconfigured_models(self, plan: Plan) -> Reply | None:
        """A refusal when a version "1" plan names a model the server is not configured with, else None.

        A client's plan cannot have the server call any model it likes. In a 0.x plan a function's `model` is inert
        here: every step goes to the agent, as in the reference.
        """
        allowed = self.server.allowed_models()
        if plan.version in REFERENCE_VERSIONS or allowed is None:
            return None
        for name, fn in plan.functions.items():
            model = getattr(fn, "model", None)
            if isinstance(model, str) and model not in allowed:
                message = f"model '{model}' is not one the server is configured with"
                return {
                    **error_reply("ir_validation_error", message, path=f"functions.{name}.model"),
                    "success": False,
                    "suggestion": "leave the model out, or use one of the server's",
                }
        return None

    async def step_done(self, run: RunRecord, step_id: str, result: Any) -> Reply:
        """stratum_step_done: check the result against the step's contract; the next dispatch or the violations."""
        spec = spec_of(run.plan_text, run.flow)
        step = spec.find(step_id)
        if step is not None and step.is_gate:
            return error_reply(
                "gate_step_requires_gate_resolve",
                f"step '{step_id}' is a gate: resolve it with stratum_gate_resolve",
                flow_id=run.run_id,
            )
        if step is not None and step.mode == "parallel_dispatch":
            return error_reply("wrong_step_type", f"step '{step_id}' is a parallel_dispatch: use stratum_parallel_done")
        waiting = self._waiting(run, step_id)
        if not waiting:
            if step is not None and step.raw.get("max_iterations"):  # its iterations ended: the report closes it
                done = [s for s in self.server.store.get_steps(run.run_id) if s.step_id.split("@")[0] == step_id]
                if done and done[-1].status == "succeeded":
                    return self._now(run)
            return self._mismatch(run, step_id)
        path = waiting[0].step_id
        submission = await self.engine.submit_agent_output(run.run_id, path, result, review_sink=PauseSink())
        if submission.result is None and submission.routed_to is None:
            return rejected(
                self.server.store, self._run(run.run_id), path, submission.violations, submission.retries_left
            )
        reply = self._now(run)
        if submission.routed_to is not None:
            return {**reply, "routed_from": step_id, "violations": list(submission.violations)}
        return reply

    async def gate_resolve(self, run: RunRecord, step_id: str, arguments: Mapping[str, Any]) -> Reply:
        """stratum_gate_resolve: record the decision on the gate's review, then go on with the flow."""
        outcome, resolved_by = arguments.get("outcome"), arguments.get("resolved_by", "human")
        if outcome not in _OUTCOMES:
            return error_reply("invalid_outcome", f"outcome must be one of {', '.join(_OUTCOMES)}, got {outcome!r}")
        if resolved_by not in _RESOLVERS:
            return error_reply(
                "invalid_resolved_by", f"resolved_by must be one of {', '.join(_RESOLVERS)}, got {resolved_by!r}"
            )
        spec = spec_of(run.plan_text, run.flow)
        step = spec.find(step_id)
        if step is None or not step.is_gate:
            review = current_of(self.server.store, run.run_id).review
            if review is not None and reference_id(review.step_id) == step_id:  # a version "1" human step
                hint = (
                    f"; it asks a person a decision of its own: answer stratum_resume(review_id='{review.review_id}')"
                )
                return error_reply("not_a_gate_step", f"step '{step_id}' is not a gate{hint}", flow_id=run.run_id)
            return error_reply("not_a_gate_step", f"step '{step_id}' is not a gate", flow_id=run.run_id)
        review = current_of(self.server.store, run.run_id).review
        if review is None or reference_id(review.step_id) != step_id:
            return error_reply("wrong_step", self._mismatch(run, step_id)["message"], flow_id=run.run_id)
        if outcome == "revise":
            round_number = 1 + self._revisions(run)
            limit = spec.max_rounds or _DEFAULT_MAX_ROUNDS
            if round_number >= limit:
                return error_reply(
                    "max_rounds_exceeded",
                    f"round {round_number} of at most {limit} (max_rounds): approve or kill",
                    flow_id=run.run_id,
                )
        rationale = arguments.get("rationale")
        value: dict[str, Any] = {"outcome": outcome}
        if isinstance(rationale, str):
            value["rationale"] = rationale
        self.server.store.answer_review(
            review.review_id,
            action="accept",
            value=value,
            reviewer=str(resolved_by),
            rationale=rationale if isinstance(rationale, str) else None,
            answered_by="person" if resolved_by == "human" else "agent",
            channel=GATE_RESOLVE,
        )
        await self.engine.resume(run.run_id, agent=True, review_sink=PauseSink())
        return self._now(run)

    def _revisions(self, run: RunRecord) -> int:
        return sum(
            1
            for s in self.server.store.get_steps(run.run_id)
            if "." not in s.step_id
            and s.status == "succeeded"
            and isinstance(s.output, Mapping)
            and s.output.get("outcome") == "revise"
        )

    async def check_timeouts(self, run: RunRecord) -> Reply:
        """stratum_check_timeouts: a gate past its timeout is killed now (or routed to on_kill)."""
        review = current_of(self.server.store, run.run_id).review if run.status == "paused" else None
        if review is None or review.deadline is None:
            return {"status": "no_timeout", "flow_id": run.run_id, "remaining_seconds": None}
        remaining = review.deadline - time.time()
        step_id = reference_id(review.step_id)
        if remaining > 0:
            return {"status": "no_timeout", "flow_id": run.run_id, "step_id": step_id, "remaining_seconds": remaining}
        await self.engine.resume(run.run_id, agent=True, review_sink=PauseSink())
        reply = self._now(run)
        if reply.get("status") == "killed":
            return {**reply, "step_id": step_id, "reason": "timeout"}
        return reply

    async def skip_step(self, run: RunRecord, step_id: str, reason: str) -> Reply:
        """stratum_skip_step: the current step is skipped (recorded with the reason); gates cannot be."""
        step = spec_of(run.plan_text, run.flow).find(step_id)
        if step is not None and step.is_gate:
            return error_reply(
                "gate_step_cannot_be_skipped", f"step '{step_id}' is a gate: resolve it", flow_id=run.run_id
            )
        waiting = self._waiting(run, step_id)
        if not waiting:
            return self._mismatch(run, step_id)
        path = re.split(r"[#\[]", waiting[0].step_id, maxsplit=1)[0]
        await self.engine.close_agent_steps(
            run.run_id, [path], status="skipped", reason=reason, attribute="skip_reason", review_sink=PauseSink()
        )
        return self._now(run)

    async def parallel_done(self, run: RunRecord, step_id: str, results: list[Any], merge_status: str) -> Reply:
        """stratum_parallel_done: each task's result is checked as its own agent step; failed tasks count as such."""
        step = spec_of(run.plan_text, run.flow).find(step_id)
        if step is None or step.mode != "parallel_dispatch":
            return error_reply("wrong_step_type", f"step '{step_id}' is not a parallel_dispatch step")
        waiting = {s.step_id: s for s in self._waiting(run, step_id)}
        if not waiting:
            return self._mismatch(run, step_id)
        if merge_status not in ("clean", "conflict"):
            return error_reply("invalid_merge_status", f"merge_status must be clean or conflict, got {merge_status!r}")
        prefix = next(iter(waiting)).split("[", 1)[0]
        if merge_status == "conflict":
            reply = self._now(run)
            conflict = "merge_status: conflict (resolve it, then report again)"
            return {**reply, "status": "ensure_failed", "violations": [conflict]}
        by_path: dict[str, Mapping[str, Any]] = {}
        for item in results:
            if not isinstance(item, Mapping):
                return error_reply("invalid_arguments", "each task result must be an object with task_id")
            path = f"{prefix}[{item.get('task_id')}]"
            if path not in waiting:
                known = ", ".join(p[len(prefix) + 1 : -1] for p in waiting)
                return error_reply("unknown_task", f"task {item.get('task_id')!r} is not waiting (waiting: {known})")
            by_path[path] = item
        failed = [p for p, item in by_path.items() if item.get("status", "complete") != "complete"]
        if failed:
            await self.engine.close_agent_steps(
                run.run_id,
                failed,
                status="failed",
                reason="the task failed",
                attribute="task_failed",
                resume=False,
            )
        violations: list[str] = []
        submitted = False
        for path, item in by_path.items():
            if path in failed:
                continue
            refused = await self._submit(run, path, item.get("result"))
            submitted = True
            if refused is not None:
                violations.extend(f"task {item.get('task_id')}: {v}" for v in refused.get("violations", []))
        if failed and not submitted:
            await self.engine.resume(run.run_id, agent=True, review_sink=PauseSink())
        reply = self._now(run)
        if violations:
            return {**reply, "status": "ensure_failed", "violations": violations}
        return reply

    def _iteration(self, run: RunRecord, step_id: str) -> StepRecord | Reply:
        step = spec_of(run.plan_text, run.flow).find(step_id)
        if step is None or not step.raw.get("max_iterations"):
            return error_reply("not_an_iteration_step", f"step '{step_id}' has no max_iterations", flow_id=run.run_id)
        waiting = [s for s in self._waiting(run, step_id) if _ITERATION.search(s.step_id)]
        return waiting[0] if waiting else self._mismatch(run, step_id)

    def iteration_start(self, run: RunRecord, step_id: str) -> Reply:
        """stratum_iteration_start: the loop of the current step; which iteration the agent is on."""
        found = self._iteration(run, step_id)
        if isinstance(found, dict):
            return found
        match = _ITERATION.search(found.step_id)
        assert match is not None
        return self._loop_reply("iteration_started", run, step_id, int(match.group(1)))

    @staticmethod
    def _loop_reply(status: str, run: RunRecord, step_id: str, iteration: int) -> Reply:
        step = spec_of(run.plan_text, run.flow).find(step_id)
        assert step is not None
        return {
            "status": status,
            "flow_id": run.run_id,
            "step_id": step_id,
            "iteration": iteration,
            "max_iterations": step.raw.get("max_iterations"),
            "exit_criterion": step.raw.get("exit_criterion"),
        }

    async def iteration_report(self, run: RunRecord, step_id: str, result: Any) -> Reply:
        """stratum_iteration_report: check the iteration's result; exit (criterion, stagnation, max) or go on."""
        found = self._iteration(run, step_id)
        if isinstance(found, dict):
            return found
        refused = await self._submit(run, found.step_id, result)
        if refused is not None:
            return refused
        return self._after_iterations(run, step_id, found.step_id)

    def _after_iterations(self, run: RunRecord, step_id: str, path: str) -> Reply:
        top = path.split("#", 1)[0]
        record = self._step_record(run, top)
        number = int(path.rsplit("#", 1)[1])
        if record is not None and record.status in ("succeeded", "skipped"):
            return {
                "status": "iteration_exit",
                "flow_id": run.run_id,
                "step_id": step_id,
                "iteration": number,
                "outcome": record.attributes.get("iteration_outcome"),
                "final_result": record.output,
            }
        if record is not None and record.status == "failed":
            return dispatch(self.server.store, self._run(run.run_id))
        return self._loop_reply("iteration_continue", run, step_id, number + 1)

    async def iteration_abort(self, run: RunRecord, step_id: str, reason: str) -> Reply:
        """stratum_iteration_abort: stop the loop (outcome exit_abort); the step keeps its last iteration's result."""
        found = self._iteration(run, step_id)
        if isinstance(found, dict):
            return found
        await self.engine.close_agent_steps(
            run.run_id,
            [found.step_id],
            status="skipped",
            reason=reason,
            attribute="iteration_aborted",
            review_sink=PauseSink(),
        )
        record = self._step_record(run, found.step_id.split("#", 1)[0])
        return {
            "status": "iteration_aborted",
            "flow_id": run.run_id,
            "step_id": step_id,
            "reason": reason,
            "final_result": record.output if record is not None else None,
        }

    async def list_workflows(self, workflows_dir: Any) -> Reply:
        """stratum_list_workflows: the plans with a `workflow` block, in the plans folder (or a folder inside it)."""
        root = self.server.config.plans_dir.resolve()
        folder = root if workflows_dir in (None, "") else Path(str(workflows_dir)).expanduser()
        if not folder.is_absolute():
            folder = root / folder
        folder = folder.resolve()
        if folder != root and root not in folder.parents:
            return error_reply("invalid_workflows_dir", f"{workflows_dir} is outside the plans folder ({root})")
        return await anyio.to_thread.run_sync(_workflows_in, folder)


def _workflows_in(folder: Path) -> Reply:
    workflows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    files = sorted(p for p in folder.glob("*.stratum.y*ml") if p.is_file()) if folder.is_dir() else []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            plan = load_plan_text(text, source=str(path), base_dir=path.parent)
        except (OSError, StratumError, ValueError) as e:
            errors.append({"path": str(path), "error": str(e).splitlines()[0] if str(e) else type(e).__name__})
            continue
        if plan.workflow is None:
            continue
        raw = yaml.safe_load(text)
        block = raw.get("workflow") if isinstance(raw, Mapping) else None
        written = block.get("input") if isinstance(block, Mapping) else None
        name = plan.workflow.name
        if name in seen:
            errors.append({"path": str(path), "error": f"workflow name '{name}' is also used by {seen[name]}"})
            continue
        seen[name] = str(path)
        workflows.append(
            {
                "name": name,
                "description": plan.workflow.description,
                "input": written if isinstance(written, Mapping) else {},
                "path": str(path),
            }
        )
    return {"workflows": workflows, "errors": errors}
