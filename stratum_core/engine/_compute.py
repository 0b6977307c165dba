"""compute steps: a `call:` target (sync in a worker thread, async awaited) or a sandboxed `expr:`."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import traceback
from collections.abc import Mapping
from typing import Any

import anyio.to_thread

from stratum_core._call_targets import CallTargetError, resolve_call_target
from stratum_core.engine._python_objects import python_target
from stratum_core.errors import AgentStepRequired, ComputeError, ExpressionError
from stratum_core.expressions import compile_expression
from stratum_core.expressions._budget import is_small, off_loop
from stratum_core.plan import ComputeFunction, Plan

__all__ = ["run_compute", "to_json_value"]


def to_json_value(value: Any) -> Any:
    """Turn what user code returns (pydantic models, dataclasses, tuples) into plain JSON values."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_value(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return value


async def run_compute(fn: ComputeFunction, inputs: Mapping[str, Any], *, plan: Plan, step_id: str) -> Any:
    """Run a compute function on `inputs` and return its (JSON) result; errors name the step."""
    if fn.expr is not None:
        try:
            return await off_loop(compile_expression(fn.expr).evaluate_json, inputs, inline=is_small(inputs))
        except ExpressionError as error:
            error.step_id = step_id
            raise
    if fn.call is None:
        raise AgentStepRequired(
            f"compute function '{fn.name}' has no `call:` or `expr:`; it is done by the calling agent",
            step_id=step_id,
        )
    try:
        target = python_target(fn.call) or resolve_call_target(fn.call, search_path=plan.module_search_path())
        target = getattr(target, "__stratum_call__", target)  # a library @compute function: call what it wraps
    except CallTargetError as error:
        raise ComputeError(
            f"cannot load call target {fn.call!r}: {error}", traceback=traceback.format_exc(), step_id=step_id
        ) from error
    try:
        if inspect.iscoroutinefunction(target):
            result = await target(**inputs)
        else:
            result = await anyio.to_thread.run_sync(functools.partial(target, **inputs))
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as error:
        raise ComputeError(
            f"{fn.call} raised {type(error).__name__}: {error}", traceback=traceback.format_exc(), step_id=step_id
        ) from error
    return to_json_value(result)
