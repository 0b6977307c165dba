"""The client side of the MCP Tasks extension (2026-07-28), on the SDK's client extension interface, for the tests.

mcp 2.3's client has the extension hooks (`ClientExtension`, `ResultClaim`) but no tasks extension: this declares
`io.modelcontextprotocol/tasks` on every request, accepts `resultType: "task"` from `tools/call`, and sends
`tasks/get`, `tasks/update` and `tasks/cancel` as the specification words them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import mcp.types as types
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from pydantic import Field, TypeAdapter

TASKS = "io.modelcontextprotocol/tasks"
TERMINAL = ("completed", "failed", "cancelled")


class CreateTaskResult(types.Result):
    """A `tools/call` answered with a task."""

    result_type: Literal["task"] = "task"
    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    created_at: str = Field(alias="createdAt")
    last_updated_at: str = Field(alias="lastUpdatedAt")
    ttl_ms: int | None = Field(default=None, alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


class TaskIdParams(types.RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateParams(TaskIdParams):
    input_responses: dict[str, Any] = Field(alias="inputResponses")


class GetTask(types.Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"


class UpdateTask(types.Request[UpdateParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateParams
    name_param: ClassVar[str | None] = "taskId"


class CancelTask(types.Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"


_ANY = TypeAdapter(dict[str, Any])


async def _unresolved(result: CreateTaskResult, ctx: ClaimContext) -> types.CallToolResult:
    raise AssertionError("the tests drive tasks themselves: call with allow_claimed=True")


class TasksExtension(ClientExtension):
    """Declares the tasks extension and claims `resultType: "task"`."""

    identifier = TASKS

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=_unresolved)]


async def call_for_task(
    client: Client, name: str, arguments: dict[str, Any]
) -> CreateTaskResult | types.CallToolResult:
    """Call a tool, accepting a task in answer."""
    result = await client.session.call_tool(name, arguments, allow_claimed=True)
    assert isinstance(result, CreateTaskResult | types.CallToolResult), result
    return result


async def get_task(client: Client, task_id: str) -> dict[str, Any]:
    """`tasks/get`, as the raw JSON object."""
    return await client.session.send_request(GetTask(params=TaskIdParams(taskId=task_id)), _ANY)


async def update_task(client: Client, task_id: str, responses: dict[str, Any]) -> dict[str, Any]:
    """`tasks/update` with input responses."""
    return await client.session.send_request(
        UpdateTask(params=UpdateParams(taskId=task_id, inputResponses=responses)), _ANY
    )


async def cancel_task(client: Client, task_id: str) -> dict[str, Any]:
    """`tasks/cancel`."""
    return await client.session.send_request(CancelTask(params=TaskIdParams(taskId=task_id)), _ANY)
