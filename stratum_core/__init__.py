"""Stratum's engine: typed, checked, budgeted, auditable LLM flows.

`stratum_core` never imports `mcp` or the server; `server/` adapts it to MCP.
"""

from stratum_core.engine import (
    Engine,
    EngineConfig,
    ReviewAnswer,
    ReviewRequest,
    ReviewSink,
    RunObserver,
    RunResult,
)
from stratum_core.errors import PlanError, RunError, StratumError
from stratum_core.plan import Plan, load_plan, load_plan_text

__all__ = [
    "Engine",
    "EngineConfig",
    "Plan",
    "PlanError",
    "ReviewAnswer",
    "ReviewRequest",
    "ReviewSink",
    "RunError",
    "RunObserver",
    "RunResult",
    "StratumError",
    "load_plan",
    "load_plan_text",
]
