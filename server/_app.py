"""The Stratum MCP server: every flow of every plan a typed tool, people asked through elicitation, runs as resources.

Built on the SDK's low-level `Server` because tool schemas come from plan files at run time. The low-level server
neither validates arguments nor catches handler exceptions, so this module does both: a tool call always ends as a
result the model can read (bad arguments, a failed run, a pause, an internal error), other requests as a protocol
error without internal details. See `_results.py` for the shapes of tool results and `_elicitation.py` for how human
steps reach a person in both protocol eras.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from jsonschema import Draft202012Validator
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.subscriptions import ListenHandler
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from server._adhoc import (
    RUN_TOOL,
    RUN_TOOL_DEF,
    VALIDATE_TOOL,
    VALIDATE_TOOL_DEF,
    choose_flow,
    load_agent_plan,
    problems_text,
    validation_report,
)
from server._agent_steps import STEP_DONE_INPUT, STEP_DONE_TOOL, STEP_DONE_TOOL_DEF
from server._approval_card import (
    APPROVAL_CARD_CHANNEL,
    CARD_ANSWER_INPUT,
    CARD_ANSWER_TOOL,
    CARD_ANSWER_TOOL_DEF,
    CARD_URI,
    card_meta,
    card_resource,
    read_card,
)
from server._batches import BATCH_INPUT, BATCH_TOOL, BATCH_TOOL_DEF, BatchManager
from server._catalog import FlowTool, PlanFolder, PlanLoader, argument_errors, asks_people
from server._completions import Completions
from server._config import INFER_VIA_DESCRIPTIONS, ServerConfig
from server._elicitation import (
    REVIEW_INPUT_KEY,
    InvalidAnswers,
    PauseSink,
    PushSink,
    client_can_elicit,
    decision_schema,
    decision_value,
    decode_state,
    encode_state,
    form_for,
    request_from_record,
    reviewer_of,
)
from server._handles import AWAIT_TOOL, CANCEL_TOOL, HANDLE_TOOL_INPUTS, HANDLE_TOOLS, STATUS_TOOL, with_handle
from server._hub import LOG_LEVELS, Hub
from server._identity import Identity, identity_of
from server._limits import json_size, too_large
from server._ownership import OwnedEvents, OwnedStore, owned_view
from server._prompts import Prompts
from server._reference_tools import ReferenceTools
from server._resources import Resources
from server._results import (
    error_result,
    failure_result,
    paused_result,
    rejected_result,
    review_view,
    run_uri,
    running_result,
    success_result,
)
from server._runs import ActiveRun, Follower, Job, RunManager
from server._sampling import SAMPLING_MODEL, CallerModel, Executors, sampling_through
from server._tasks import TASKS_EXTENSION, TaskMethods, client_wants_tasks
from stratum_core.backends import engine_for
from stratum_core.engine import Engine, EngineConfig, ReviewAnswer, ReviewSink, RunObserver, RunResult
from stratum_core.errors import PlanError, RunCancelled, RunError, StratumError
from stratum_core.llm import LLMClient
from stratum_core.llm._models_file import load_models_file
from stratum_core.plan import Budget, Plan
from stratum_core.plan._patterns import SchemaValidator
from stratum_core.store import (
    MemoryRunStore,
    ReviewAction,
    ReviewRecord,
    RunBusy,
    RunRecord,
    RunStore,
    SQLiteRunStore,
    StoreError,
    lease_is_live,
)
from stratum_core.store._records import new_id

__all__ = ["RESUME_TOOL", "StratumServer", "build_server"]

logger = logging.getLogger("stratum.server")

RESUME_TOOL = "stratum_resume"
MAX_AWAIT = 3600.0
"""The longest a `stratum_await` call waits, whatever timeout it asks for (without one: `--wait`)."""
_ACTIONS: dict[str, ReviewAction] = {"accept": "accept", "decline": "decline", "cancel": "cancel"}
_INVALID_STATE = "Invalid or expired requestState"

INSTRUCTIONS = """\
Stratum runs typed flows defined in plan files. Each tool is one flow: call it with arguments that match its input \
schema; the answer is the flow's output (structured content, the same JSON as text) and a link to the run's trace \
(stratum://runs/{run_id}). A failed run names the error type, the step and the violated condition.
A PAUSED result is not a failure. When it hands you steps, do each yourself and report its output with \
stratum_step_done(run_id, step_id, output); the server checks it and answers what to fix, the next steps, or the \
flow's output.
Some flows ask a person to decide: your client shows a form. A client that cannot gets a PAUSED result with a \
review_id: ask the person, then call stratum_resume with the review_id and their answer.
A long flow answers RUNNING with a run_id when it is not done in time: it goes on in the server; call \
stratum_await(run_id) for its result, stratum_status to look, stratum_cancel to stop it. A run a stopped server left \
behind goes on with stratum_resume(run_id).
stratum_validate and stratum_run check and run a plan you write (YAML; expressions only, no Python calls).
Resources: stratum://runs (recent runs), stratum://runs/{run_id} (a run's trace), stratum://plans/{name} (plan text), \
stratum://contracts/{plan}/{contract} (JSON Schema)."""

_RESUME_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "review_id": {"type": "string", "minLength": 1, "description": "The review_id of the paused run."},
        "run_id": {
            "type": "string",
            "minLength": 1,
            "description": "Instead of a review_id: a run to resume by id: one a stopped or killed server left "
            "behind, or (with `budget`) one that stopped on its budget or is paused; finished steps are not run "
            "again.",
        },
        "budget": {
            "type": "object",
            "properties": {
                "ms": {"type": "integer", "exclusiveMinimum": 0},
                "usd": {"type": "number", "exclusiveMinimum": 0},
                "tokens": {"type": "integer", "exclusiveMinimum": 0},
            },
            "additionalProperties": False,
            "minProperties": 1,
            "description": 'With run_id: the flow\'s new budget, by dimension (e.g. {"usd": 0.10}); what the run '
            "already spent still counts.",
        },
        "answer": {
            "anyOf": [{"type": "object"}, {"type": "string"}, {"type": "number"}, {"type": "boolean"}],
            "description": "The person's decision, matching the review's decision schema (required to accept); "
            "a bare value for a one-value decision.",
        },
        "action": {
            "type": "string",
            "enum": ["accept", "decline", "cancel"],
            "default": "accept",
            "description": "accept (with answer), decline (the person said no) or cancel (they did not decide).",
        },
        "reviewer": {"type": "string", "description": "Who decided."},
        "rationale": {"type": "string", "description": "Why, in their words."},
    },
    "additionalProperties": False,
}
_RESUME_TOOL_DEF = types.Tool(
    name=RESUME_TOOL,
    title="Resume a paused Stratum run",
    description=(
        "Answer the human decision a paused Stratum run waits for (its review_id comes with the PAUSED result, or "
        "from stratum://runs), then continue the run from its checkpoint. Or resume a run by run_id: one a stopped "
        "server left behind, or (with budget) one that stopped on its budget. Returns the run's outcome: "
        '{"run_id", "flow", "status", "output"}.'
    ),
    input_schema=_RESUME_INPUT,
    annotations=types.ToolAnnotations(
        title="Resume a paused Stratum run",
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=False,
        open_world_hint=True,
    ),
)

ToolAnswer = types.CallToolResult | types.InputRequiredResult | dict[str, Any]
"""What a tool call answers: a result, a request for a person's input (2026-07-28), or a task (tasks extension)."""

Shape = FlowTool | None
"""How a successful run is shaped: by its flow tool, or (None) as stratum_resume's `{run_id, flow, status, output}`."""
ShapeOf = Callable[[RunRecord], Shape]

_TOOL_INPUTS: dict[str, Mapping[str, Any]] = {
    **HANDLE_TOOL_INPUTS,
    RESUME_TOOL: _RESUME_INPUT,
    CARD_ANSWER_TOOL: CARD_ANSWER_INPUT,
    STEP_DONE_TOOL: STEP_DONE_INPUT,
    VALIDATE_TOOL: VALIDATE_TOOL_DEF.input_schema,
    RUN_TOOL: RUN_TOOL_DEF.input_schema,
    BATCH_TOOL: BATCH_INPUT,
}
_BUILTIN_TOOLS = [
    _RESUME_TOOL_DEF.model_copy(update={"meta": card_meta()}),
    CARD_ANSWER_TOOL_DEF,
    STEP_DONE_TOOL_DEF,
    VALIDATE_TOOL_DEF,
    RUN_TOOL_DEF,
    BATCH_TOOL_DEF,
    *(tool.model_copy(update={"meta": card_meta()}) if tool.name == AWAIT_TOOL else tool for tool in HANDLE_TOOLS),
]
_BUILTIN_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in _TOOL_INPUTS.items()}


def _version() -> str:
    try:
        return importlib.metadata.version("stratum")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _is_modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _error_dict(error: RunError | None, status: str) -> dict[str, Any]:
    if error is None:
        return {"type": "RunCancelled" if status == "cancelled" else "RunError", "message": f"the run is {status}"}
    data = error.to_dict()
    cause = error.__cause__
    if type(error) is RunError and isinstance(cause, StratumError) and not isinstance(cause, RunError):
        data["type"] = type(cause).__name__  # e.g. ConfigurationError: no model configured
    return data


def _busy_result(run_id: str, holder: str | None) -> types.CallToolResult:
    """The answer to a call on a run another process (or call) is advancing now."""
    return error_result(
        f"The run {run_id} is being advanced elsewhere (by {holder or 'another server process'}): your call did not "
        "change it. Wait for it to pause or end (stratum_status shows where it is), then call again.",
        run_id=run_id,
    )


def _needs_person(review: ReviewRecord) -> str:
    """Why the agent cannot answer a review whose function says `answered_by: person`, and how a person can."""
    return (
        f"Review '{review.review_id}' (step '{review.step_id}') must be answered by a person: its function says "
        f"`answered_by: person`, so the agent cannot answer it with {RESUME_TOOL}. A person answers it in the "
        f"client's form (call stratum_await with run_id '{review.run_id}' from a client that shows forms), in the "
        f"approval card, or on the server's machine with `stratum review answer {review.review_id} --value JSON`."
    )


def _level(level: str) -> types.LoggingLevel:
    level = level.lower()
    level = {"warn": "warning", "fatal": "critical", "exception": "error"}.get(level, level)
    for known in LOG_LEVELS:
        if known == level:
            return known
    return "info"


class _CallObserver(RunObserver):
    """Progress per finished step, resource updates for subscribers, and log messages, for one tool call."""

    def __init__(self, server: StratumServer, ctx: ServerRequestContext[Any, Any], *, publish: bool = True) -> None:
        self._server = server
        self._session = ctx.session
        self._request_id = ctx.request_id
        self._done = -1.0
        self._publish = publish  # False when the run manager announces the run's changes itself

    async def step_started(self, run_id: str, step_id: str, kind: str) -> None:
        if self._publish:
            await self._server.hub.resource_updated(run_uri(run_id))
        await self._log(run_id, "debug", f"step '{step_id}' ({kind}) started")

    async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
        if done > self._done:
            self._done = done
            try:
                await self._session.report_progress(done, total, f"step '{step_id}' {status} ({done}/{total})")
            except Exception:
                logger.debug("progress notification dropped", exc_info=True)
        if self._publish:
            await self._server.hub.resource_updated(run_uri(run_id))
        await self._log(run_id, "debug", f"step '{step_id}' {status} ({done}/{total})")

    async def log(self, run_id: str, level: str, message: str) -> None:
        await self._log(run_id, _level(level), message)

    async def _log(self, run_id: str, level: types.LoggingLevel, message: str) -> None:
        if not self._server.hub.wants_log(self._session, level):
            return
        try:
            await self._session.send_log_message(
                level, {"run_id": run_id, "message": message}, logger="stratum", related_request_id=self._request_id
            )
        except Exception:
            logger.debug("log notification dropped", exc_info=True)


@asynccontextmanager
async def _lifespan(server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
    """While the server serves (a stdio connection, the HTTP app, an in-process client): hold the background runs."""
    assert isinstance(server, StratumServer)
    async with server.runs.serving(resume=server.picked_up_job), server.batches.serving():
        yield {}


def _state_key(config: ServerConfig) -> bytes:
    """The key that seals `request_state`: STRATUM_STATE_KEY, else a key file beside the store, else a fresh one.

    Kept beside the store so a 2026-07-28 client can answer an elicitation after the server restarted.
    """
    env = os.environ.get("STRATUM_STATE_KEY", "")
    if len(env) >= 32:
        return env.encode()
    if config.store_path is None:
        return os.urandom(32)
    path = config.store_path.parent / "request-state.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        logger.warning("%s is too short to be a key: using a key for this process only", path)
        return os.urandom(32)
    key = os.urandom(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class StratumServer(Server[Any]):
    """The low-level MCP server serving a plans folder. Build it with `build_server`.

    Attributes:
        config: how it was configured.
        folder: the plans folder and its current catalog of tools.
        engine: the engine that runs the flows.
        store: where runs and reviews are recorded.
        hub: change notifications to connected clients.
    """

    def __init__(
        self, config: ServerConfig, *, engine: Engine, store: RunStore, folder: PlanFolder, state_key: bytes
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self.folder = folder
        self.hub = Hub()
        self.resources = Resources(store)
        self.prompts = Prompts(store)
        self.completions = Completions(store, self.prompts)
        self.executors = Executors(config.resolved_infer_via)
        self.invalid_answers = InvalidAnswers()
        self.runs = RunManager(engine, store, on_change=self._run_changed)
        self.batches = BatchManager(engine, lambda: self.folder.catalog.tools, wait=config.wait)
        self._reload_lock = anyio.Lock()
        self._listed: tuple[object, list[types.Tool]] | None = None
        self._listener = ListenHandler(self.hub.bus)
        self.reference = ReferenceTools(self) if config.reference_tools else None
        self._builtin = ReferenceTools.tools(_BUILTIN_TOOLS) if self.reference is not None else _BUILTIN_TOOLS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # logging/setLevel: deprecated, still answered
            super().__init__(
                config.name,
                version=_version(),
                title="Stratum",
                instructions=INSTRUCTIONS,
                get_tool_input_schema=self._input_schema,
                on_list_tools=self._list_tools,
                on_list_resources=self._list_resources,
                on_list_resource_templates=self._list_templates,
                on_read_resource=self._read_resource,
                on_subscribe_resource=self._subscribe,
                on_unsubscribe_resource=self._unsubscribe,
                on_subscriptions_listen=self._listen,
                on_set_logging_level=self._set_level,
                on_list_prompts=self._list_prompts,
                on_get_prompt=self._get_prompt,
                on_completion=self._complete,
                lifespan=_lifespan,
            )
        self.add_request_handler("tools/call", types.CallToolRequestParams, self._call_tool)
        self.tasks = TaskMethods(self)
        self.tasks.install()
        self.extensions[TASKS_EXTENSION] = {}
        security = RequestStateSecurity(keys=[state_key], ttl=config.review_ttl)
        self.middleware.append(RequestStateBoundary(security, default_audience=config.name))
        self.middleware.append(self._guard)

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        """Advertise `listChanged` for tools, resources and prompts on every transport (HTTP calls this with none)."""
        options = notification_options or NotificationOptions(
            tools_changed=True, resources_changed=True, prompts_changed=True
        )
        return super().create_initialization_options(options, experimental_capabilities, extensions)

    async def reload(self) -> bool:
        """Re-read the plans folder now; announce and return True when tools or plans changed."""
        async with self._reload_lock:
            changed = await anyio.to_thread.run_sync(self.folder.scan)
        if changed:
            logger.info("plans changed: serving %d tool(s)", len(self.folder.catalog.tools))
            await self.hub.tools_changed()
            await self.hub.resources_changed()
            await self.hub.prompts_changed()
        return changed

    async def watch_plans(self) -> None:
        """Poll the plans folder every `config.poll_interval` seconds, forever."""
        while True:
            await anyio.sleep(self.config.poll_interval)
            try:
                await self.reload()
            except Exception:
                logger.exception("reloading plans failed")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StratumServer]:
        """Run the background work (hot reload) while the context is open; log the runs dead servers left running."""
        self.runs.report_interrupted()
        async with anyio.create_task_group() as tg:
            if self.config.poll_interval > 0:
                tg.start_soon(self.watch_plans)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    def close(self) -> None:
        """Release the run store."""
        self.store.close()

    # -- hardening -----------------------------------------------------------------------------------------------------

    async def _guard(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Innermost middleware: remember handshake-era connections; no exception text ever reaches a client."""
        if ctx.request_id is not None:
            self.hub.track(ctx.session, ctx.protocol_version)
        try:
            return await call_next(ctx)
        except (MCPError, ValidationError):
            raise
        except Exception:
            logger.exception("%s failed", ctx.method)
            raise MCPError(code=types.INTERNAL_ERROR, message="Internal error (see the server log)") from None

    # -- prompts and completions (server/_prompts.py, server/_completions.py) ------------------------------------------

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return self.prompts.list(self.folder.catalog)

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        prompts = Prompts(self.view(ctx))
        return await anyio.to_thread.run_sync(prompts.get, self.folder.catalog, params.name, params.arguments)

    async def _complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        view = self.view(ctx)
        completions = Completions(view, Prompts(view))
        return await anyio.to_thread.run_sync(completions.complete, self.folder.catalog, params)

    # -- who calls, and what they see (server/_identity.py, server/_ownership.py) -----------------------------------

    @staticmethod
    def identity(ctx: ServerRequestContext[Any, Any]) -> Identity:
        """Who makes this request: its bearer token's identity over HTTP, the one local user on stdio."""
        return identity_of(ctx.request)

    def view(self, ctx: ServerRequestContext[Any, Any]) -> RunStore:
        """The run store as this request's caller sees it: its own runs only, unless it is an operator."""
        return owned_view(self.store, self.identity(ctx))

    # -- tools ---------------------------------------------------------------------------------------------------------

    def _input_schema(self, name: str) -> Mapping[str, Any] | None:
        if name in _TOOL_INPUTS:
            return _TOOL_INPUTS[name]
        if self.reference is not None and self.reference.input_schema(name) is not None:
            return self.reference.input_schema(name)
        tool = self.folder.catalog.tools.get(name)
        return tool.input_schema if tool is not None else None

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        catalog = self.folder.catalog
        if self._listed is None or self._listed[0] is not catalog:
            self._listed = (catalog, [self._advertised(tool) for _, tool in sorted(catalog.tools.items())])
        return types.ListToolsResult(tools=[*self._listed[1], *self._builtin])

    @staticmethod
    def _advertised(tool: FlowTool) -> types.Tool:
        """A flow tool as listed: its output may also be a run handle; a flow that asks people shows the card."""
        update: dict[str, Any] = {"output_schema": with_handle(tool.output_schema)}
        if asks_people(tool.plan, tool.flow):
            update["meta"] = {**(tool.tool.meta or {}), **card_meta()}
        return tool.tool.model_copy(update=update)

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> ToolAnswer:
        if self.reference is not None and self.reference.handles(params):  # --reference-tools (server/_reference_tools)
            return await self.reference.call(params, owner=self.identity(ctx).name, view=self.view(ctx))
        tool = self.folder.catalog.tools.get(params.name)
        if tool is None and params.name not in _TOOL_INPUTS:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        too_large = self._too_large(params)
        if too_large is not None:
            return error_result(too_large)
        try:
            if tool is not None:
                return await self._flow_tool(ctx, params, tool)
            errors = argument_errors(_BUILTIN_VALIDATORS[params.name], params.arguments or {})
            if errors:  # the server's own tools check their arguments here, before any of them runs
                return error_result(f"Invalid arguments for '{params.name}':\n" + "\n".join(errors))
            if params.name == STEP_DONE_TOOL:
                return await self._step_done_tool(ctx, params)
            if params.name == RUN_TOOL:
                return await self._run_tool(ctx, params)
            if params.name == VALIDATE_TOOL:
                return await self._validate_tool(params)
            if params.name == STATUS_TOOL:
                return self._status_tool(ctx, str((params.arguments or {})["run_id"]))
            if params.name == AWAIT_TOOL:
                return await self._await_tool(ctx, params)
            if params.name == CANCEL_TOOL:
                return await self._cancel_tool(ctx, str((params.arguments or {})["run_id"]))
            if params.name == CARD_ANSWER_TOOL:
                return await self._resume_tool(ctx, params, from_card=True)
            if params.name == BATCH_TOOL:
                return await self.batches.call(params.arguments or {}, self.identity(ctx))
            return await self._resume_tool(ctx, params)
        except MCPError:
            raise
        except RunBusy as e:
            return _busy_result(e.run_id, e.holder)
        except StratumError as e:
            logger.warning("tool %s: %s", params.name, e)
            return error_result(f"{type(e).__name__}: {e}")
        except Exception:
            logger.exception("tool %s failed", params.name)
            return error_result(f"Internal error while running '{params.name}' (see the server log).")

    def _too_large(self, params: types.CallToolRequestParams) -> str | None:
        """Why a call's arguments are refused for their size (an agent's report has its own limit), or None."""
        if params.name == STEP_DONE_TOOL:
            limit, what, setting = self.config.max_report_bytes, "The reported output", "max_report_bytes"
        else:
            limit, what, setting = (
                self.config.max_argument_bytes,
                f"The arguments of '{params.name}'",
                "max_argument_bytes",
            )
        size = json_size(params.arguments or {}, limit)
        return too_large(what, limit, setting) if size > limit else None

    async def _flow_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams, tool: FlowTool
    ) -> ToolAnswer:
        arguments = params.arguments or {}
        errors = tool.argument_errors(arguments)
        if errors:
            return error_result(f"Invalid arguments for '{tool.name}':\n" + "\n".join(errors))
        shape: Shape = tool
        if _is_modern(ctx) and params.request_state is not None:
            return await self._continue(ctx, params, tool.flow.name, lambda run: shape)
        return await self._launch(ctx, tool.plan, tool.flow.name, arguments, shape)

    # -- runs: started in the background, followed for a bounded time ---------------------------------------------

    async def _launch(
        self,
        ctx: ServerRequestContext[Any, Any],
        plan: Plan,
        flow: str,
        arguments: Mapping[str, Any],
        shape: Shape,
    ) -> ToolAnswer:
        """Start a run for this call (the caller is an agent: it can do agent steps) and follow it."""
        run_id = new_id()
        engine, sampler = self._executor(ctx)
        owner = self.identity(ctx).name

        async def job(observer: RunObserver, sink: ReviewSink) -> RunResult:
            with sampling_through(sampler):
                return await engine.run(
                    plan, flow, arguments, observer=observer, review_sink=sink, run_id=run_id, agent=True, owner=owner
                )

        await self.hub.runs_changed()
        active = await self.runs.start(run_id, job)
        return await self._follow(ctx, active, flow, shape, owner=True)

    def picked_up_job(self, run: RunRecord) -> Job | None:
        """How a run put down by an earlier server goes on when this one starts (no call follows it yet)."""

        async def job(observer: RunObserver, sink: ReviewSink) -> RunResult:
            return await self.engine.resume(run.run_id, observer=observer, review_sink=sink, agent=True)

        return job

    async def _run_changed(self, run_id: str) -> None:
        await self.hub.resource_updated(run_uri(run_id))

    def _follower(self, ctx: ServerRequestContext[Any, Any]) -> Follower:
        """This call as a follower of a run: its progress token, and push elicitation when its client has it."""
        ask = None
        if not _is_modern(ctx) and client_can_elicit(ctx.session):
            ask = PushSink(ctx.session, ctx.request_id, self.invalid_answers).ask
        return Follower(observer=_CallObserver(self, ctx, publish=False), ask=ask)

    async def _follow(
        self,
        ctx: ServerRequestContext[Any, Any],
        active: ActiveRun,
        flow: str,
        shape: Shape,
        *,
        owner: bool = False,
        wait: float | None = None,
        prefix: str | None = None,
        task_ok: bool = True,
    ) -> ToolAnswer:
        """Follow a run for this call's time; answer its outcome, a task (tasks clients) or a handle.

        `task_ok` is False for `stratum_await`: a call made to wait answers the handle again, never a task.
        """
        tasks = task_ok and client_wants_tasks(ctx)
        limit = self.config.wait if wait is None else wait
        if tasks:
            limit = min(limit, self.config.task_wait)
        settled = await self.runs.follow(active, self._follower(ctx), wait=limit, owner=owner)
        if not settled:
            if tasks:
                return self.tasks.created(active.run_id)
            return running_result(active.run_id, flow, self.tasks.progress(active.run_id), waited=limit)
        if active.error is not None:
            raise active.error
        result = active.result
        if result is None:  # cancelled or put down: read what was recorded
            run = self.store.get_run(active.run_id)
            if run is None:
                return error_result(f"The run {active.run_id} was not recorded.")
            return self._stored_answer(ctx, run, shape)
        if tasks and result.status == "paused" and result.review is not None and not result.agent_tasks:
            return self.tasks.created(active.run_id)
        return self._answer(ctx, result, flow, shape, prefix=prefix)

    def _executor(self, ctx: ServerRequestContext[Any, Any]) -> tuple[Engine, LLMClient | None]:
        """The engine for this call, and the sampling client its infer steps ask (None: not sampling)."""
        return self.executors.for_call(self.engine, ctx.session, ctx.request_id, modern=_is_modern(ctx))

    def _shape_of(self, run: RunRecord) -> Shape:
        """The served flow tool a run belongs to (its outputs are shaped by it), or None (an agent's plan)."""
        for tool in self.folder.catalog.tools.values():
            if tool.flow.name == run.flow and str(tool.path) == run.plan_source:
                return tool
        return None

    def _sink(self, ctx: ServerRequestContext[Any, Any]) -> ReviewSink:
        if not _is_modern(ctx) and client_can_elicit(ctx.session):
            return PushSink(ctx.session, ctx.request_id, self.invalid_answers)
        return PauseSink()

    def _can_ask(self, ctx: ServerRequestContext[Any, Any], review_id: str) -> bool:
        """Whether a 2026-07-28 call may ask this decision through the client's form."""
        return _is_modern(ctx) and client_can_elicit(ctx.session) and not self.invalid_answers.exhausted(review_id)

    def _answer(
        self,
        ctx: ServerRequestContext[Any, Any],
        result: RunResult,
        flow: str,
        shape: Shape,
        *,
        prefix: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        if result.status == "paused":
            review = result.review
            if review is not None and self._can_ask(ctx, review.review_id):
                form = form_for(review)
                return types.InputRequiredResult(
                    input_requests={
                        REVIEW_INPUT_KEY: form.elicit_request(prefix=self.invalid_answers.prefix(review.review_id))
                    },
                    request_state=encode_state(result.run_id, review.review_id),
                )
            if review is not None and self.invalid_answers.exhausted(review.review_id):
                reason = self.invalid_answers.gave_up(review.review_id)
            elif client_can_elicit(ctx.session):
                reason = "the client did not take the question"
            else:
                reason = "this client cannot show elicitation forms"
            return paused_result(
                result.run_id,
                flow,
                review,
                reason=reason,
                agent_tasks=result.agent_tasks,
                prefix=prefix,
                progress=self.tasks.progress(result.run_id),
            )
        if result.status == "succeeded":
            return self._success(result.run_id, flow, result.output, shape)
        return failure_result(result.run_id, flow, _error_dict(result.error, result.status))

    def _success(self, run_id: str, flow: str, output: Any, tool: Shape) -> types.CallToolResult:
        limit = self.config.max_result_bytes
        size = json_size(output, limit)
        if size > limit:
            message = too_large(f"The output of the run of '{flow}'", limit, "max_result_bytes")
            return error_result(
                f"{message}. The run succeeded; its output is in the trace, {run_uri(run_id)}.",
                run_id=run_id,
                flow=flow,
            )
        if tool is None:
            structured = {"run_id": run_id, "flow": flow, "status": "succeeded", "output": output}
            return success_result(run_id, flow, structured, output)
        structured = tool.structured(output)
        if tool.output_validator is not None:
            problems = argument_errors(tool.output_validator, structured)
            if problems:
                logger.error("run %s: output does not match the output schema: %s", run_id, problems)
                return error_result(
                    f"The run of '{flow}' succeeded but its output does not match the tool's output schema "
                    f"(the plan changed while it ran?): {'; '.join(problems)}",
                    run_id=run_id,
                    flow=flow,
                )
        return success_result(run_id, flow, structured, output)

    def finished_result(self, run: RunRecord) -> types.CallToolResult:
        """The result of a finished run, exactly as its flow's tool answered (or would have) when it ended."""
        shape = self._shape_of(run)
        if run.status == "succeeded":
            return self._success(run.run_id, run.flow, run.output, shape)
        return failure_result(run.run_id, run.flow, dict(run.error or {"type": "RunError"}))

    def _stored_answer(
        self, ctx: ServerRequestContext[Any, Any], run: RunRecord, shape: Shape
    ) -> types.CallToolResult | types.InputRequiredResult:
        """The answer for a run from its record: its outcome, the decision it waits for, or where it is."""
        if run.status == "succeeded":
            return self._success(run.run_id, run.flow, run.output, shape)
        if run.status in ("failed", "cancelled"):
            return failure_result(run.run_id, run.flow, dict(run.error or {"type": "RunError"}))
        if run.status == "paused":
            return self._answer(ctx, self._paused(run), run.flow, shape)
        return running_result(run.run_id, run.flow, self.tasks.progress(run.run_id), waited=0)

    def _paused(self, run: RunRecord) -> RunResult:
        """A paused run's result as the engine would give it: the decision it waits for, if any."""
        pending = self.store.list_reviews(status="pending", run_id=run.run_id)
        return RunResult(
            run_id=run.run_id,
            status="paused",
            pending=tuple(request_from_record(review) for review in pending[:1]),
        )

    async def _resume_run(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: RunRecord,
        shape: Shape,
        *,
        wait: float | None = None,
        task_ok: bool = True,
        budget: Budget | None = None,
    ) -> ToolAnswer:
        """Go on with a run and follow it: an answer was recorded, it was put down, or a dead server left it running.

        A finished run is answered; one another process advances is refused ("being advanced elsewhere").
        """
        active = self.runs.get(run.run_id)
        if active is None:
            if run.status == "running":
                if lease_is_live(run.lease_holder, run.lease_expires, now=time.time()):
                    return _busy_result(run.run_id, run.lease_holder)
                logger.info("run %s was left running by a server that stopped: resuming it", run.run_id)
            else:
                waiting = run.status != "paused" or self._paused(run).review is not None or self._awaits_agent(run)
                if waiting and budget is None:
                    return self._stored_answer(ctx, run, shape)
            engine, sampler = self._executor(ctx)

            async def job(observer: RunObserver, sink: ReviewSink) -> RunResult:
                with sampling_through(sampler):
                    return await engine.resume(
                        run.run_id, observer=observer, review_sink=sink, agent=True, budget=budget
                    )

            try:
                active = await self.runs.start(run.run_id, job)
            except StoreError:  # another call of this process started it a moment ago
                active = self.runs.get(run.run_id)
                if active is None:
                    return self._stored_answer(ctx, self.store.get_run(run.run_id) or run, shape)
        return await self._follow(ctx, active, run.flow, shape, wait=wait, task_ok=task_ok)

    def _awaits_agent(self, run: RunRecord) -> bool:
        return any(
            step.status == "waiting" and "agent" in (step.attributes.get("awaiting") or [])  # type: ignore[operator]
            for step in self.store.get_steps(run.run_id)
        )

    def _record_answer(self, review: ReviewRecord, answer: ReviewAnswer) -> None:
        """Record an answer with who gave it and how; one that lost a race to another answer is logged."""
        try:
            self.store.answer_review(
                review.review_id,
                action=answer.action,
                value=dict(answer.value) if answer.value is not None else None,
                reviewer=answer.reviewer,
                rationale=answer.rationale,
                answered_by=answer.answered_by,
                channel=answer.channel,
            )
        except StoreError:
            logger.info("review %s was answered elsewhere first", review.review_id)

    def _answer_without_asking(self, result: RunResult, run: RunRecord) -> types.CallToolResult:
        """A paused run's handle result, for a path that does not ask the person itself (tasks after the bound)."""
        review = result.review
        reason = (
            self.invalid_answers.gave_up(review.review_id)
            if review is not None and self.invalid_answers.exhausted(review.review_id)
            else "answer it with stratum_resume"
        )
        return paused_result(
            run.run_id,
            run.flow,
            review,
            reason=reason,
            agent_tasks=result.agent_tasks,
            progress=self.tasks.progress(run.run_id),
        )

    async def go_on(self, run: RunRecord) -> ActiveRun | None:
        """Resume a run in the background, no call following it; None when there is nothing to resume.

        That is a paused run whose decision was answered or that was put down, or a run a dead server left running.
        """
        active = self.runs.get(run.run_id)
        if active is not None:
            return active
        if run.status == "running":
            if lease_is_live(run.lease_holder, run.lease_expires, now=time.time()):
                return None  # another process advances it
        elif run.status != "paused" or self._paused(run).review is not None or self._awaits_agent(run):
            return None
        if "interrupted" in run.attributes:
            attributes = {key: value for key, value in run.attributes.items() if key != "interrupted"}
            self.store.update_run(run.run_id, attributes=attributes)
        job = self.picked_up_job(run)
        assert job is not None
        try:
            return await self.runs.start(run.run_id, job)
        except StoreError:
            return self.runs.get(run.run_id)

    async def cancel_run(self, run_id: str) -> RunRecord | None:
        """Cancel a run: stop it if this process advances it, else close a paused one; None if there is no such run.

        A run recorded as running that another process advances is left as it is (RunBusy); one a dead server left
        running is closed as cancelled.
        """
        run = self.store.get_run(run_id)
        if run is None:
            return None
        if await self.runs.cancel(run_id):
            return self.store.get_run(run_id)
        if run.status == "running" and lease_is_live(run.lease_holder, run.lease_expires, now=time.time()):
            raise RunBusy(run_id, holder=run.lease_holder, expires_at=run.lease_expires)
        if run.status in ("paused", "running"):
            for review in self.store.list_reviews(status="pending", run_id=run_id):
                try:
                    self.store.close_review(review.review_id, status="cancelled")
                except StoreError:
                    logger.info("review %s was answered while the run was cancelled", review.review_id)
            error = RunCancelled("the run was cancelled", run_id=run_id)
            now = time.time()
            run = self.store.update_run(run_id, status="cancelled", error=error.to_dict(), finished_at=now)
            await self.hub.resource_updated(run_uri(run_id))
        return run

    # -- the handle tools ----------------------------------------------------------------------------------------

    def _status_tool(self, ctx: ServerRequestContext[Any, Any], run_id: str) -> types.CallToolResult:
        run = self.view(ctx).get_run(run_id)
        if run is None:
            return error_result(f"No run with id '{run_id}' (stratum://runs lists the recent ones).")
        status: str = "running" if self.runs.get(run_id) is not None else run.status
        data: dict[str, Any] = {"run_id": run_id, "flow": run.flow, "status": status}
        data["progress"] = self.tasks.progress(run_id)
        if status == "paused":
            pending = self.store.list_reviews(status="pending", run_id=run_id)
            if pending:
                data["waiting_for"] = "person"
                data["review"] = review_view(request_from_record(pending[0]))
            elif self._awaits_agent(run):
                data["waiting_for"] = "agent"
            elif "interrupted" in run.attributes:
                data["interrupted"] = run.attributes["interrupted"]
        elif status == "running" and not lease_is_live(run.lease_holder, run.lease_expires, now=time.time()):
            data["interrupted"] = "left running by a server that stopped: resume it with stratum_resume(run_id)"
        elif run.status == "succeeded":
            data["output"] = run.output
        elif run.status in ("failed", "cancelled") and run.error:
            data["error"] = {key: run.error.get(key) for key in ("type", "step_id", "message")}
        data["trace"] = run_uri(run_id)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(data, ensure_ascii=False, default=str))],
            structured_content=data,
            is_error=False,
            _meta={"stratum/run_id": run_id, "stratum/status": status},
        )

    async def _await_tool(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> ToolAnswer:
        arguments = params.arguments or {}
        if _is_modern(ctx) and params.request_state is not None:  # the person answered the form this call showed
            return await self._continue(ctx, params, None, self._shape_of)
        run_id = str(arguments["run_id"])
        run = self.view(ctx).get_run(run_id)
        if run is None:
            return error_result(f"No run with id '{run_id}' (stratum://runs lists the recent ones).")
        wait = min(float(arguments.get("timeout", self.config.wait)), MAX_AWAIT)
        shape = self._shape_of(run)
        active = self.runs.get(run_id)
        if active is not None:
            return await self._follow(ctx, active, run.flow, shape, wait=wait, task_ok=False)
        review = self._paused(run).review if run.status == "paused" else None
        if review is not None and wait > 0 and not _is_modern(ctx) and client_can_elicit(ctx.session):
            answer = None
            with anyio.move_on_after(wait):
                answer = await PushSink(ctx.session, ctx.request_id, self.invalid_answers).ask(review)
            record = self.store.get_review(review.review_id)
            if answer is not None and record is not None:
                self._record_answer(record, answer)
                run = self.store.get_run(run_id) or run
        return await self._resume_run(ctx, run, shape, wait=wait, task_ok=False)

    async def _cancel_tool(self, ctx: ServerRequestContext[Any, Any], run_id: str) -> types.CallToolResult:
        if self.view(ctx).get_run(run_id) is None:
            return error_result(f"No run with id '{run_id}' (stratum://runs lists the recent ones).")
        try:
            run = await self.cancel_run(run_id)
        except StoreError as e:
            return error_result(f"Cannot cancel: {e}.", run_id=run_id)
        if run is None:
            return error_result(f"No run with id '{run_id}' (stratum://runs lists the recent ones).")
        data = {"run_id": run_id, "flow": run.flow, "status": run.status}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"The run {run_id} of '{run.flow}' is {run.status}.")],
            structured_content=data,
            is_error=False,
            _meta={"stratum/run_id": run_id, "stratum/status": run.status},
        )

    async def _resume_by_id(self, ctx: ServerRequestContext[Any, Any], run_id: str) -> ToolAnswer:
        """Resume a run by its id: one a dead server left running, or one put down when a server stopped.

        A run waiting for a decision answers with that decision (answer it by review_id); a finished run with its
        outcome; a run another process advances with "being advanced elsewhere".
        """
        run = self.view(ctx).get_run(run_id)
        if run is None:
            return error_result(f"No run with id '{run_id}' (stratum://runs lists the recent ones).")
        if run.status == "paused" and "interrupted" in run.attributes and self.runs.get(run_id) is None:
            attributes = {key: value for key, value in run.attributes.items() if key != "interrupted"}
            run = self.store.update_run(run_id, attributes=attributes)
        return await self._resume_run(ctx, run, None)

    async def _resume_with_budget(
        self, ctx: ServerRequestContext[Any, Any], run_id: str, budget: Mapping[str, Any]
    ) -> ToolAnswer:
        """Resume a run (paused, or stopped on its budget) with its flow's budget raised."""
        run = self.view(ctx).get_run(run_id)
        if run is None:
            return error_result(f"No run with id '{run_id}'.")
        stopped = run.status == "failed" and (run.error or {}).get("type") == "BudgetExceeded"
        if run.status != "paused" and not stopped:
            return error_result(
                f"Run '{run_id}' is {run.status}; only a paused run or one that stopped on its budget can be resumed "
                "with a new budget.",
                run_id=run_id,
            )
        return await self._resume_run(ctx, run, None, budget=Budget.model_validate(dict(budget)))

    async def _continue(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: types.CallToolRequestParams,
        flow: str | None,
        shape_of: ShapeOf,
    ) -> ToolAnswer:
        """Round 2+ of a 2026-07-28 call: record the person's answer, then resume the run from its checkpoint."""
        assert params.request_state is not None
        decoded = decode_state(params.request_state)
        if decoded is None:
            raise MCPError(code=types.INVALID_PARAMS, message=_INVALID_STATE)
        run_id, review_id = decoded
        view = self.view(ctx)
        review = view.get_review(review_id)
        run = view.get_run(run_id)
        if review is None or run is None or review.run_id != run_id or (flow is not None and run.flow != flow):
            raise MCPError(code=types.INVALID_PARAMS, message=_INVALID_STATE)
        if review.status == "pending":
            request = request_from_record(review)
            form = form_for(request)
            response = (params.input_responses or {}).get(REVIEW_INPUT_KEY)
            elicited = self._elicit_result(response)
            if elicited is None:
                return types.InputRequiredResult(
                    input_requests={
                        REVIEW_INPUT_KEY: form.elicit_request(prefix=self.invalid_answers.prefix(review_id))
                    },
                    request_state=params.request_state,
                )
            answer = form.answer(elicited, reviewer=reviewer_of(ctx.session))
            if isinstance(answer, str):
                self.invalid_answers.add(review_id, answer)
                if self.invalid_answers.exhausted(review_id):
                    logger.info("review %s: %s", review_id, self.invalid_answers.gave_up(review_id))
                    paused = RunResult(run_id=run_id, status="paused", pending=(request,))
                    return self._answer(ctx, paused, run.flow, shape_of(run))
                return types.InputRequiredResult(
                    input_requests={
                        REVIEW_INPUT_KEY: form.elicit_request(prefix=self.invalid_answers.prefix(review_id))
                    },
                    request_state=params.request_state,
                )
            self._record_answer(review, answer)
            run = self.store.get_run(run_id) or run
        return await self._resume_run(ctx, run, shape_of(run))

    @staticmethod
    def _elicit_result(response: Any) -> types.ElicitResult | None:
        if isinstance(response, types.ElicitResult):
            return response
        if response is None:
            return None
        try:
            return types.ElicitResult.model_validate(
                response.model_dump(by_alias=True) if hasattr(response, "model_dump") else response
            )
        except ValidationError:
            return None

    async def _resume_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams, *, from_card: bool = False
    ) -> ToolAnswer:
        """`stratum_resume` (the agent answers, recorded as the agent) or the card's tool (a person answers)."""
        arguments = params.arguments or {}
        if _is_modern(ctx) and params.request_state is not None:
            return await self._continue(ctx, params, None, lambda run: None)
        if "review_id" not in arguments:
            if "run_id" not in arguments:
                return error_result(
                    f"Invalid arguments for '{RESUME_TOOL}':\nreview_id: required field is missing (or pass run_id: "
                    "a run a stopped server left behind, or with budget, a run to resume with a larger budget)"
                )
            if "budget" not in arguments:
                return await self._resume_by_id(ctx, str(arguments["run_id"]))
            return await self._resume_with_budget(ctx, str(arguments["run_id"]), arguments["budget"])
        review_id = str(arguments["review_id"])
        review = self.view(ctx).get_review(review_id)
        if review is None:
            return error_result(f"No review with id '{review_id}' (`stratum review list` shows the pending ones).")
        run = self.store.get_run(review.run_id)
        if run is None:
            return error_result(f"The run of review '{review_id}' is not in the store.")
        if review.status == "pending":
            if review.needs_person and not from_card:
                return error_result(_needs_person(review), run_id=run.run_id)
            action = str(arguments.get("action", "accept"))
            value: Any = None
            if action == "accept":
                schema = decision_schema(review)
                if "answer" not in arguments:
                    return error_result(f"To accept, pass `answer`: a decision matching {json.dumps(schema)}.")
                value = decision_value(arguments["answer"], schema)
                problems = argument_errors(SchemaValidator(schema), value)
                if problems:
                    return error_result("The answer does not match the decision schema:\n" + "\n".join(problems))
            self._record_answer(
                review,
                ReviewAnswer(
                    action=_ACTIONS[action],
                    value=value,
                    reviewer=arguments.get("reviewer") or reviewer_of(ctx.session),
                    rationale=arguments.get("rationale"),
                    answered_by="person" if from_card else "agent",
                    channel=APPROVAL_CARD_CHANNEL if from_card else RESUME_TOOL,
                ),
            )
            run = self.store.get_run(review.run_id) or run
        elif review.status != "answered":
            return error_result(f"Review '{review_id}' is {review.status}; the run is {run.status}.", run_id=run.run_id)
        return await self._resume_run(ctx, run, None)

    async def _step_done_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> ToolAnswer:
        """An agent reports a step: check it; answer the violations, or the run's next pause, output or failure."""
        arguments = params.arguments or {}
        if _is_modern(ctx) and params.request_state is not None:  # a person answered a step met after this one
            return await self._continue(ctx, params, None, self._shape_of)
        run_id, step_id = str(arguments["run_id"]), str(arguments["step_id"])
        run = self.view(ctx).get_run(run_id)
        if run is None:
            return error_result(f"No run with id '{run_id}' (the run_id comes with the PAUSED result).")
        engine, sampler = self._executor(ctx)
        try:
            with sampling_through(sampler):
                submission = await engine.submit_agent_output(
                    run_id,
                    step_id,
                    arguments["output"],
                    observer=_CallObserver(self, ctx),
                    review_sink=self._sink(ctx),
                )
        except StoreError as e:
            current = self.store.get_run(run_id) or run
            return error_result(
                f"Not accepted: {e}. The run is {current.status}; its trace is {run_uri(run_id)}.",
                run_id=run_id,
                flow=run.flow,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await self.hub.resource_updated(run_uri(run_id))
        if submission.result is None:
            return rejected_result(run_id, run.flow, step_id, submission.violations, submission.retries_left)
        prefix = f"Accepted: your output for step '{step_id}'." if submission.accepted else None
        return self._answer(ctx, submission.result, run.flow, self._shape_of(run), prefix=prefix)

    def allowed_models(self) -> frozenset[str] | None:
        """The models a client's plan may name: the configured ones (None: any, when one model is forced on all)."""
        config = self.engine.config
        return None if config.force_model and config.model else config.configured_models

    async def _validate_tool(self, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        report = await anyio.to_thread.run_sync(
            lambda: validation_report(str(arguments["plan"]), allowed_models=self.allowed_models())
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(report, ensure_ascii=False))],
            structured_content=report,
            is_error=False,
        )

    async def _run_tool(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> ToolAnswer:
        """Run a flow of a plan the agent wrote, loaded as untrusted text."""
        arguments = params.arguments or {}
        if _is_modern(ctx) and params.request_state is not None:
            return await self._continue(ctx, params, None, lambda run: None)
        try:
            plan = await anyio.to_thread.run_sync(
                lambda: load_agent_plan(str(arguments["plan"]), allowed_models=self.allowed_models())
            )
        except PlanError as e:
            return error_result(problems_text(e) + "\n(stratum_validate checks a plan without running it.)")
        chosen = choose_flow(plan, arguments, self.engine.input_errors)
        if isinstance(chosen, str):
            return error_result(chosen)
        flow, inputs = chosen
        return await self._launch(ctx, plan, flow, inputs, None)

    # -- resources -----------------------------------------------------------------------------------------------------

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        listed = Resources(self.view(ctx)).list(self.folder.catalog, params.cursor if params is not None else None)
        if params is None or not params.cursor:
            listed.resources.insert(1, card_resource())
        return listed

    async def _list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return self.resources.templates()

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        if str(params.uri) == CARD_URI:
            return read_card()
        return Resources(self.view(ctx)).read(self.folder.catalog, str(params.uri))

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        run_id = uri.removeprefix("stratum://runs/").split("/", 1)[0] if uri.startswith("stratum://runs/") else None
        if run_id is None or self.view(ctx).get_run(run_id) is not None:  # another's run: accepted, never told
            self.hub.subscribe(ctx.session, uri)
        return types.EmptyResult()

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """`subscriptions/listen`: a caller that is not an operator hears only about its own runs."""
        view = self.view(ctx)
        if not isinstance(view, OwnedStore):
            return await self._listener(ctx, params)
        return await ListenHandler(OwnedEvents(self.hub.bus, view))(ctx, params)

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self.hub.unsubscribe(ctx.session, str(params.uri))
        return types.EmptyResult()

    async def _set_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        self.hub.set_log_level(ctx.session, params.level)
        return types.EmptyResult()


def open_store(path: Path | None, *, url: str | None = None) -> RunStore:
    """The store at the database `url` if given, else the SQLite store at `path` (its folder created), else memory."""
    if url is not None:
        from stratum_core.backends import open_run_store

        return open_run_store(url)
    if path is None:
        return MemoryRunStore()
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteRunStore(path)


def build_server(
    config: ServerConfig | None = None,
    *,
    store: RunStore | None = None,
    engine: Engine | None = None,
    loader: PlanLoader | None = None,
    observers: Sequence[RunObserver] = (),
) -> StratumServer:
    """Load the plans folder and build the server (plans that fail to load are logged and skipped).

    Args:
        config: paths, model and transport settings (default: `ServerConfig()`).
        store: the run store (default: SQLite at `config.store_path`, or memory when it is None).
        engine: the engine (default: one on `store`, configured with `config.model`, `api_base`, `api_key` and
            who does infer steps; a given engine keeps its own configuration and model client).
        loader: reads one plan file (default: `stratum_core.plan.load_plan`).
        observers: told about every run of the default engine (e.g. an OpenTelemetry exporter).
    """
    config = config or ServerConfig()
    if store is None:
        store = engine.store if engine is not None else open_store(config.store_path, url=config.store_url)
    infer_via = config.resolved_infer_via
    if engine is None:
        engine = engine_for(
            config.backend,
            temporal=config.temporal,
            store=store,
            llm=CallerModel() if infer_via == "sampling" else None,
            config=EngineConfig(
                model=config.model or (SAMPLING_MODEL if infer_via == "sampling" else None),
                api_base=config.api_base,
                api_key=config.api_key,
                infer_via="agent" if infer_via == "agent" else "server",
                output_profiles=load_models_file(config.models_file) if config.models_file else {},
                prices=config.prices,
                allow_unpriced=config.allow_unpriced,
                call_timeout=config.call_timeout,
                max_retry_wait=config.max_retry_wait,
                force_model=config.force_model,
            ),
            observers=observers,
        )
    forced = f" ({config.model} for every step, whatever the plan names)" if config.force_model and config.model else ""
    logger.info("infer steps: %s%s", INFER_VIA_DESCRIPTIONS[infer_via], forced)
    folder = PlanFolder(config.plans_dir, loader=loader)
    folder.scan()
    if not config.plans_dir.is_dir():
        logger.warning("plans folder %s does not exist: no flow is served until it does", config.plans_dir)
    logger.info("serving %d tool(s) from %s", len(folder.catalog.tools), config.plans_dir)
    return StratumServer(config, engine=engine, store=store, folder=folder, state_key=_state_key(config))
