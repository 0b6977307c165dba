"""The execution engine: runs flows as DAGs, durably, within budget."""

from stratum_core.engine._engine import Engine
from stratum_core.engine._types import (
    AgentSubmission,
    AgentTask,
    EngineConfig,
    ReviewAnswer,
    ReviewRequest,
    ReviewSink,
    RunObserver,
    RunResult,
    RunStatus,
)

__all__ = [
    "AgentSubmission",
    "AgentTask",
    "Engine",
    "EngineConfig",
    "ReviewAnswer",
    "ReviewRequest",
    "ReviewSink",
    "RunObserver",
    "RunResult",
    "RunStatus",
]
