"""A scripted calling agent for the agent-executor tests: it follows PAUSED results like a model would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mcp.types as types
from mcp import Client
from server_helpers import HERE, text_of

AGENT_PLANS = HERE / "agent_plans"
STEP_DONE = "stratum_step_done"


def meta_of(result: types.CallToolResult) -> dict[str, Any]:
    """The result's `_meta` (empty when it has none)."""
    return dict(result.meta or {})


def status_of(result: types.CallToolResult) -> str | None:
    """`paused`, `rejected`, or None (an outcome: the flow's output or its failure)."""
    status = meta_of(result).get("stratum/status")
    return str(status) if status is not None else None


def tasks_of(result: types.CallToolResult) -> list[dict[str, Any]]:
    """The steps a result hands to the agent."""
    return list(meta_of(result).get("stratum/agent_tasks") or [])


class ScriptedAgent:
    """Does each handed-out step with the next scripted output for it, and reports it with stratum_step_done.

    `handed` records the step ids of every hand-out (so a test sees which steps came together); `reports` every
    report and the server's answer; `calls` counts tool calls (the round trips an agent makes).
    """

    def __init__(self, client: Client, script: Mapping[str, Sequence[Any]]) -> None:
        self.client = client
        self.script = {step: list(outputs) for step, outputs in script.items()}
        self.handed: list[list[str]] = []
        self.reports: list[tuple[str, Any, types.CallToolResult]] = []
        self.calls = 0

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call a tool (counted)."""
        self.calls += 1
        return await self.client.call_tool(name, arguments)

    async def report(self, run_id: str, step_id: str) -> types.CallToolResult:
        """Report the next scripted output of a step."""
        output = self.script[step_id].pop(0)
        result = await self.call(STEP_DONE, {"run_id": run_id, "step_id": step_id, "output": output})
        self.reports.append((step_id, output, result))
        return result

    async def follow(self, result: types.CallToolResult, *, limit: int = 30) -> types.CallToolResult:
        """Do what the results ask until the run ends or waits for a person; returns the last result."""
        for _ in range(limit):
            status = status_of(result)
            if status == "rejected":
                meta = meta_of(result)
                result = await self.report(str(meta["stratum/run_id"]), str(meta["stratum/step_id"]))
                continue
            tasks = tasks_of(result)
            if status != "paused" or not tasks:
                return result
            self.handed.append([task["step_id"] for task in tasks])
            text = text_of(result)
            for task in tasks:  # the text alone says how to report each step
                assert f'{STEP_DONE} with run_id="{task["run_id"]}", step_id="{task["step_id"]}"' in text, text
            first = tasks[0]
            result = await self.report(first["run_id"], first["step_id"])
        raise AssertionError(f"the run did not end within {limit} results")
