"""`stratum_batch`: an agent starts a batch (a flow tool run once per item) and follows it by its handle.

One tool, three uses: with `tool` and `items` it starts a batch in the server's background and answers, after a
bounded wait, with a handle (`stratum_batch: {batch_id, status, progress, next}`); with `batch_id` it reports where
the batch is (waiting up to `wait` seconds for it to end) and, once it has ended, its summary and results; with
`batch_id` and `cancel: true` it stops it (the items in flight are cancelled and recorded). Like a run handle, a
handle is not an error: the batch goes on in the server, and every item is an ordinary run in the store (so the
items' traces are readable as `stratum://runs/{run_id}`). A batch runs as long as the server process; after a
restart (or from another server on the same store) its handle reads what the store knows (`read_batch`): each
item's outcome and the summary, and starting the same batch again runs the items not done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp.types as types
from anyio.abc import TaskGroup

from server._catalog import FlowTool
from server._identity import Identity
from server._results import error_result
from stratum_core.batch import (
    Batch,
    BatchSummary,
    Expectation,
    ItemResult,
    StoredBatch,
    items_from_lines,
    read_batch,
)
from stratum_core.engine import Engine
from stratum_core.plan import Budget

__all__ = ["BATCH_INPUT", "BATCH_TOOL", "BATCH_TOOL_DEF", "BatchManager"]

logger = logging.getLogger("stratum.server")

BATCH_TOOL = "stratum_batch"
BATCH_KEY = "stratum_batch"
MAX_ITEMS = 10_000
_MAX_WAIT_S = 3600.0
_START_WAIT_S = 1.0
_STORE_POLL_S = 1.0

_BUDGET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "usd": {"type": "number", "minimum": 0},
        "tokens": {"type": "integer", "minimum": 1},
        "ms": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": False,
}

BATCH_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "minLength": 1, "description": "The flow tool to run once per item."},
        "items": {
            "type": "array",
            "items": {"type": "object"},
            "minItems": 1,
            "maxItems": MAX_ITEMS,
            "description": "The flow inputs, one per item (fields the flow does not take are kept for `expect`).",
        },
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 256, "description": "Items at a time (4)."},
        "item_budget": {**_BUDGET, "description": "Each item's budget."},
        "budget": {**_BUDGET, "description": "The whole batch's budget; items reserve from it together."},
        "expect": {
            "type": "string",
            "maxLength": 2000,
            "description": "For an accuracy figure: a field of each item holding the expected output, or an "
            "expression reading `input` and `output`.",
        },
        "batch_id": {"type": "string", "minLength": 1, "maxLength": 64, "description": "A batch to follow."},
        "wait": {"type": "number", "minimum": 0, "description": "With batch_id: seconds to wait for it to end."},
        "cancel": {"type": "boolean", "description": "With batch_id: stop the batch."},
    },
    "additionalProperties": False,
}

BATCH_TOOL_DEF = types.Tool(
    name=BATCH_TOOL,
    title="Run a Stratum flow over many inputs",
    description="Start a batch: the flow tool `tool` run once per item of `items`, a few at a time, within an "
    "optional per-item and whole-batch budget; answers with a handle. Then call again with `batch_id` (and `wait` "
    "seconds) to follow it: progress while it runs, then its summary (succeeded, failed by error type, p50/p95 "
    "duration, tokens, cost, accuracy with `expect`) and each item's result; `cancel: true` stops it.",
    input_schema=BATCH_INPUT,
    annotations=types.ToolAnnotations(
        title="Run a Stratum flow over many inputs",
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=False,
        open_world_hint=True,
    ),
)


@dataclass
class _Active:
    batch: Batch
    flow_tool: str
    owner: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: anyio.Event = field(default_factory=anyio.Event)
    summary: BatchSummary | None = None
    error: str | None = None
    cancelled: bool = False


class BatchManager:
    """The server's batches: started in a task group of their own, followed by id."""

    def __init__(self, engine: Engine, tools: Callable[[], Mapping[str, FlowTool]], *, wait: float) -> None:
        self.engine = engine
        self.tools = tools
        self.wait = wait
        self._batches: dict[str, _Active] = {}
        self._group: TaskGroup | None = None

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Hold the task group batches run in (re-entrant); batches still going when the last holder leaves stop."""
        if self._group is not None:
            yield
            return
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                try:
                    yield
                finally:
                    group.cancel_scope.cancel()
        finally:
            self._group = None

    async def call(self, arguments: Mapping[str, Any], caller: Identity) -> types.CallToolResult:
        """Answer a `stratum_batch` call (arguments already checked against BATCH_INPUT) from `caller`.

        A batch belongs to whoever started it: another identity (not an operator) finds no such batch.
        """
        if "batch_id" in arguments:
            if "tool" in arguments or "items" in arguments:
                return error_result("Give either `tool` and `items` (to start a batch) or `batch_id` (to follow one).")
            return await self._follow(str(arguments["batch_id"]), arguments, caller)
        if "tool" not in arguments or "items" not in arguments:
            return error_result("To start a batch give `tool` (a flow tool's name) and `items` (its inputs).")
        return await self._start(arguments, caller)

    async def _start(self, arguments: Mapping[str, Any], caller: Identity) -> types.CallToolResult:
        name = str(arguments["tool"])
        tool = self.tools().get(name)
        if tool is None:
            return error_result(f"Unknown flow tool {name!r} (tools: {', '.join(sorted(self.tools())) or 'none'}).")
        if self._group is None:
            return error_result("The server is not serving batches (it is shutting down).")
        try:
            expect = Expectation.parse(str(arguments["expect"])) if "expect" in arguments else None
        except ValueError as e:
            return error_result(str(e))
        items = list(items_from_lines(arguments["items"], tool.plan, tool.flow.name))
        batch = Batch(
            self.engine,
            tool.plan,
            tool.flow.name,
            items,
            concurrency=int(arguments.get("concurrency", 4)),
            item_budget=Budget(**arguments["item_budget"]) if "item_budget" in arguments else None,
            batch_budget=Budget(**arguments["budget"]) if "budget" in arguments else None,
            expect=expect,
            owner=caller.name,
        )
        current = self._batches.get(batch.id)
        if current is not None and not current.ended.is_set():
            return self._answer(current, note="this batch is running already")
        active = _Active(batch, name, caller.name)
        self._batches[batch.id] = active
        self._group.start_soon(self._drive, active)
        with anyio.move_on_after(min(_START_WAIT_S, self.wait)):
            await active.ended.wait()
        return self._answer(active)

    async def _drive(self, active: _Active) -> None:
        try:
            with active.scope:
                active.summary = await active.batch.run()
        except Exception as e:  # a batch is isolated from the server: its failure is its answer
            logger.exception("batch %s failed", active.batch.id)
            active.error = f"{type(e).__name__}: {e}"
        finally:
            if active.summary is None:
                active.summary = active.batch.summary()
                if active.cancelled:
                    active.summary.stopped = "cancelled"
            active.ended.set()

    async def _follow(self, batch_id: str, arguments: Mapping[str, Any], caller: Identity) -> types.CallToolResult:
        active = self._batches.get(batch_id)
        if active is not None and not caller.operator and active.owner != caller.name:
            active = None  # another identity's batch reads as missing
        if active is None:
            return await self._follow_stored(batch_id, arguments, caller)
        if arguments.get("cancel"):
            active.cancelled = True
            active.scope.cancel()
            with anyio.move_on_after(self.wait):
                await active.ended.wait()
            return self._answer(active)
        wait = min(float(arguments.get("wait", 0)), self.wait, _MAX_WAIT_S)
        with anyio.move_on_after(wait):
            await active.ended.wait()
        return self._answer(active)

    async def _follow_stored(
        self, batch_id: str, arguments: Mapping[str, Any], caller: Identity
    ) -> types.CallToolResult:
        """A batch this server is not running: what the store knows of it (its items are runs tagged with its id)."""
        owner = None if caller.operator else caller.name
        stored = read_batch(self.engine.store, batch_id, owner=owner)
        if stored is None:
            return error_result(f"No batch {batch_id!r}: this server is not running it and the store has no run of it.")
        if arguments.get("cancel"):
            where = "another process is running it: cancel it there" if stored.running else "it is not running"
            return error_result(f"Batch {batch_id!r} is not running in this server ({where}).")
        wait = min(float(arguments.get("wait", 0)), self.wait, _MAX_WAIT_S)
        with anyio.move_on_after(wait):
            while stored.running:  # another process advances it: read the store again now and then
                await anyio.sleep(_STORE_POLL_S)
                stored = read_batch(self.engine.store, batch_id, owner=owner) or stored
        return self._stored_answer(stored)

    def _stored_answer(self, stored: StoredBatch) -> types.CallToolResult:
        tool = next(
            (
                name
                for name, tool in self.tools().items()
                if tool.flow.name == stored.flow and tool.plan.text_hash == stored.plan_hash
            ),
            stored.flow,
        )
        summary = stored.summary()
        status = "running" if stored.running else summary.stopped or "finished"
        handle: dict[str, Any] = {"batch_id": stored.batch_id, "tool": tool, "status": status, "from": "store"}
        handle["summary"] = summary.to_json()
        handle["results"] = [_result_json(stored.results[i]) for i in sorted(stored.results)]
        left = summary.total - summary.succeeded - summary.failed
        if stored.running:
            handle["next"] = (
                f'another process runs it ({stored.running} items in flight): call stratum_batch with {{"batch_id": '
                f'"{stored.batch_id}", "wait": 60}} to follow it'
            )
        elif left:
            handle["next"] = (
                f"call stratum_batch with the same tool and items to run the {left} items not done (the done ones "
                "are not run again)"
            )
        text = (
            f"batch {stored.batch_id} of {tool} {status} (read from the run store: this server did not start it): "
            f"{summary.succeeded} succeeded, {summary.failed} failed of {summary.total}."
            + (f" Next: {handle['next']}." if "next" in handle else "")
            + "\n"
            + json.dumps(handle["summary"])
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content={BATCH_KEY: handle}
        )

    def _answer(self, active: _Active, *, note: str | None = None) -> types.CallToolResult:
        batch = active.batch
        handle: dict[str, Any] = {"batch_id": batch.id, "tool": active.flow_tool}
        if not active.ended.is_set():
            handle["status"] = "running"
            handle["progress"] = batch.progress.to_json()
            handle["next"] = f'call stratum_batch with {{"batch_id": "{batch.id}", "wait": 60}} to follow it'
            done = batch.progress
            text = (
                f"RUNNING (not failed): batch {batch.id} of {active.flow_tool}: {done.done}/{done.total} done, "
                f"{done.failed} failed, ${done.cost_usd:.4f} so far. {handle['next']}."
            )
        else:
            summary = active.summary or batch.summary()
            handle["status"] = "failed" if active.error else (summary.stopped or "finished")
            handle["summary"] = summary.to_json()
            handle["results"] = [_result_json(batch.results[i]) for i in sorted(batch.results)]
            if active.error:
                handle["error"] = active.error
            text = (
                f"batch {batch.id} of {active.flow_tool} {handle['status']}: {summary.succeeded} succeeded, "
                f"{summary.failed} failed of {summary.total}.\n" + json.dumps(handle["summary"])
            )
        if note:
            handle["note"] = note
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content={BATCH_KEY: handle},
            is_error=bool(active.error),
        )


def _result_json(result: ItemResult) -> dict[str, Any]:
    line = result.to_json()
    line.pop("key", None)
    return line
