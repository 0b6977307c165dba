"""The MCP Tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28), on the low-level server.

mcp 2.3 has no runtime for it (only the 2025-11-25 `Task*` types, which differ), so this module implements the
extension's server side from its specification:

- a client declares the extension in a request's `_meta` capabilities; a flow call from it answers with a task
  (`resultType: "task"`) when the run has not finished within `--task-wait` (a short wait: a run that finishes
  first is answered with its result itself), or when it pauses for a person;
- a task is a run: its id is the run id, its state is read from the run store (so it survives a restart, and a
  task's result stays readable for as long as the run is kept);
- `tasks/get` gives the status: `working` (with progress in `statusMessage` and `_meta["stratum/progress"]`: steps
  done of total, the steps running, cost and tokens so far), `input_required` (the decision as an elicitation form
  in `inputRequests`), `completed` (the `CallToolResult` the flow's tool would have returned: its typed output, or
  the failure with `isError`), `cancelled`;
- `tasks/update` carries the person's answer: checked against the decision contract; an invalid one is asked again
  under a new key with what was wrong, at most `MAX_INVALID_ANSWERS` times (then the task completes with the paused
  run's handle: the review stays open for the card, `stratum_resume` or `stratum review`);
- `tasks/cancel` cancels the run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import mcp.types as types
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from server._elicitation import form_for, request_from_record, reviewer_of
from server._runs import INTERRUPTED
from stratum_core.engine import RunResult
from stratum_core.store import ReviewRecord, RunRecord, StoreError

if TYPE_CHECKING:
    from server._app import StratumServer

__all__ = ["TASKS_EXTENSION", "TaskMethods", "UpdateTaskParams", "client_wants_tasks"]

logger = logging.getLogger("stratum.server")

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
MISSING_CAPABILITY = -32021
PROGRESS_META_KEY = "stratum/progress"


class UpdateTaskParams(types.RequestParams):
    """`tasks/update` params: the task, and answers to its outstanding input requests."""

    task_id: str = Field(alias="taskId")
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


class TaskIdParams(types.RequestParams):
    """`tasks/get` and `tasks/cancel` params."""

    task_id: str = Field(alias="taskId")


def client_wants_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client declared the tasks extension (2026-07-28 requests only)."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    return bool(extensions) and TASKS_EXTENSION in (extensions or {})


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _missing_capability() -> MCPError:
    return MCPError(
        code=MISSING_CAPABILITY,
        message="Missing required client capability",
        data={"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
    )


def _dump(result: types.CallToolResult | types.InputRequiredResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class TaskMethods:
    """`tasks/get`, `tasks/update` and `tasks/cancel` for one server, and the task views of its runs."""

    def __init__(self, server: StratumServer) -> None:
        self._server = server

    def install(self) -> None:
        """Register the extension's request methods on the server."""
        self._server.add_request_handler("tasks/get", TaskIdParams, self._get)
        self._server.add_request_handler("tasks/update", UpdateTaskParams, self._update)
        self._server.add_request_handler("tasks/cancel", TaskIdParams, self._cancel)

    # -- views ---------------------------------------------------------------------------------------------------

    def progress(self, run_id: str) -> dict[str, Any]:
        """How far a run is: steps done of total, the steps running now, and what it spent so far."""
        server = self._server
        active = server.runs.get(run_id)
        trace = server.store.get_trace(run_id)
        data: dict[str, Any] = {}
        if active is not None:
            data = active.progress.to_dict()
        elif trace is not None:
            data = {
                "steps_done": sum(
                    1 for s in trace.steps if s.status in ("succeeded", "skipped") and "." not in s.step_id
                ),
                "running": [s.step_id for s in trace.steps if s.status == "running" and "." not in s.step_id],
            }
        if trace is not None:
            tool = server._shape_of(trace.run)
            if tool is not None and not data.get("steps_total"):
                data["steps_total"] = len(tool.flow.steps)
            data["cost_usd"] = round(sum(a.cost_usd or 0.0 for a in trace.attempts), 6)
            data["tokens_in"] = sum(a.tokens_in for a in trace.attempts)
            data["tokens_out"] = sum(a.tokens_out for a in trace.attempts)
        return data

    @staticmethod
    def progress_text(progress: dict[str, Any]) -> str:
        """One line for `statusMessage`: steps done of total, the current steps, cost so far."""
        done, total = progress.get("steps_done", 0), progress.get("steps_total")
        parts = [f"{done}/{total} steps done" if total else f"{done} steps done"]
        if progress.get("running"):
            parts.append("running: " + ", ".join(map(str, progress["running"])))
        if "cost_usd" in progress:
            tokens = progress.get("tokens_in", 0) + progress.get("tokens_out", 0)
            parts.append(f"${progress['cost_usd']:.4f} and {tokens} tokens so far")
        return "; ".join(parts)

    def _base(self, run: RunRecord, status: str, message: str | None) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskId": run.run_id,
            "status": status,
            "createdAt": _iso(run.created_at),
            "lastUpdatedAt": _iso(run.updated_at),
            "ttlMs": None,
            "pollIntervalMs": int(self._server.config.task_poll_interval * 1000),
        }
        if message:
            task["statusMessage"] = message
        return task

    def created(self, run_id: str) -> dict[str, Any]:
        """The `CreateTaskResult` answering a flow call with a task (the run is recorded already)."""
        run = self._server.store.get_run(run_id)
        if run is None:  # pragma: no cover - the run manager returns once the run is recorded
            raise MCPError(code=types.INTERNAL_ERROR, message="the run was not recorded")
        task = self.view(run)
        for key in ("result", "error", "inputRequests"):
            task.pop(key, None)
        if task["status"] in ("completed", "failed", "cancelled", "input_required"):
            task["status"] = "working"  # the seed state; tasks/get tells the rest
        return {"resultType": "task", **task}

    def outstanding_key(self, review: ReviewRecord) -> str:
        """The `inputRequests` key of a review's current question (a new one after each invalid answer)."""
        return f"{review.review_id}-{self._server.invalid_answers.count(review.review_id)}"

    def view(self, run: RunRecord) -> dict[str, Any]:
        """The task (a `DetailedTask`) of a run, as `tasks/get` answers it."""
        server = self._server
        if server.runs.get(run.run_id) is not None or run.status == "running":
            progress = self.progress(run.run_id)
            task = self._base(run, "working", self.progress_text(progress))
            task["_meta"] = {PROGRESS_META_KEY: progress}
            return task
        if run.status == "paused":
            pending = server.store.list_reviews(status="pending", run_id=run.run_id)
            if INTERRUPTED in run.attributes:
                return self._base(run, "working", "put down when a server stopped; it goes on when polled")
            if pending and not server.invalid_answers.exhausted(pending[0].review_id):
                review = pending[0]
                request = request_from_record(review)
                form_request = form_for(request).elicit_request(prefix=server.invalid_answers.prefix(review.review_id))
                task = self._base(run, "input_required", f"waiting for a person: {review.question}")
                task["inputRequests"] = {
                    self.outstanding_key(review): form_request.model_dump(by_alias=True, mode="json", exclude_none=True)
                }
                return task
            paused = RunResult(
                run_id=run.run_id, status="paused", pending=tuple(request_from_record(r) for r in pending[:1])
            )
            result = server._answer_without_asking(paused, run)
            task = self._base(run, "completed", "paused: " + str(result.content[0].text if result.content else ""))  # type: ignore[union-attr]
            task["result"] = _dump(result)
            return task
        if run.status == "cancelled":
            message = str((run.error or {}).get("message") or "the run was cancelled")
            return self._base(run, "cancelled", message)
        result = server.finished_result(run)
        task = self._base(run, "completed", f"the run {run.status}")
        task["result"] = _dump(result)
        return task

    # -- methods -------------------------------------------------------------------------------------------------

    def _run(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> RunRecord:
        if not client_wants_tasks(ctx):
            raise _missing_capability()
        run = self._server.view(ctx).get_run(task_id)
        if run is None:
            raise MCPError(code=types.INVALID_PARAMS, message="Failed to retrieve task: Task not found")
        return run

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        run = self._run(ctx, params.task_id)
        if run.status in ("paused", "running") and self._server.runs.get(run.run_id) is None:
            # put down by a server that stopped, left running by one that died, or its decision answered
            # elsewhere: this server takes it up (go_on leaves a run another process advances alone)
            if await self._server.go_on(run) is not None:
                run = self._server.store.get_run(run.run_id) or run
        return {"resultType": "complete", **self.view(run)}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict[str, Any]:
        server = self._server
        run = self._run(ctx, params.task_id)
        pending = server.store.list_reviews(status="pending", run_id=run.run_id)
        if run.status != "paused" or not pending:
            return {"resultType": "complete"}  # nothing outstanding: responses are ignored
        review = pending[0]
        response = params.input_responses.get(self.outstanding_key(review))
        if response is None:
            return {"resultType": "complete"}  # an unknown or already answered key
        try:
            elicited = types.ElicitResult.model_validate(response)
        except ValueError:
            elicited = None
        form = form_for(request_from_record(review))
        answer = (
            form.answer(elicited, reviewer=reviewer_of(ctx.session))
            if elicited is not None
            else "the response is not an elicitation result"
        )
        if isinstance(answer, str):
            count = server.invalid_answers.add(review.review_id, answer)
            logger.info("task %s: answer %d to review %s not accepted: %s", run.run_id, count, review.review_id, answer)
            await server.hub.resource_updated(f"stratum://runs/{run.run_id}")
            return {"resultType": "complete"}
        server._record_answer(review, answer)
        await server.go_on(server.store.get_run(run.run_id) or run)
        return {"resultType": "complete"}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        run = self._run(ctx, params.task_id)
        try:
            await self._server.cancel_run(run.run_id)
        except StoreError as e:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Cannot cancel the task: {e}") from e
        return {"resultType": "complete"}
