"""compute steps: a `call:` target (sync in a worker thread, async awaited) or a sandboxed `expr:`."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread

from stratum_core._expressions import compile_expression
from stratum_core.engine._python_objects import python_target
from stratum_core.errors import AgentStepRequired, ComputeError, ExpressionError
from stratum_core.plan import ComputeFunction, Plan

__all__ = ["import_call_target", "run_compute", "to_json_value"]

_import_lock = threading.Lock()


def import_call_target(target: str, *, plan_dir: Path | None) -> Callable[..., Any]:
    """Import `package.module:function`, looking beside the plan file first, then on sys.path.

    Raises ImportError or AttributeError/TypeError with a message that names what is missing.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ImportError(f"call target {target!r} is not of the form 'package.module:function'")
    return _import_cached(module_name, attribute, str(plan_dir) if plan_dir else "")


@functools.lru_cache(maxsize=256)
def _import_cached(module_name: str, attribute: str, plan_dir: str) -> Callable[..., Any]:
    with _import_lock:
        added = bool(plan_dir) and plan_dir not in sys.path
        if added:
            sys.path.insert(0, plan_dir)
        try:
            module = importlib.import_module(module_name)
        finally:
            if added:
                sys.path.remove(plan_dir)
    target: Any = module
    for part in attribute.split("."):
        if part.startswith("_"):
            raise AttributeError(f"{module_name}:{attribute}: private names cannot be called")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{module_name}:{attribute} is not callable")
    return target  # type: ignore[no-any-return]


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


def plan_directory(plan: Plan) -> Path | None:
    """The folder of the plan's file, where its `call:` modules are looked up first."""
    if plan.source.startswith("<"):
        return None
    return Path(plan.source).resolve().parent


async def run_compute(fn: ComputeFunction, inputs: Mapping[str, Any], *, plan: Plan, step_id: str) -> Any:
    """Run a compute function on `inputs` and return its (JSON) result; errors name the step."""
    if fn.expr is not None:
        try:
            return compile_expression(fn.expr).evaluate(inputs)
        except ExpressionError as error:
            error.step_id = step_id
            raise
    if fn.call is None:
        raise AgentStepRequired(
            f"compute function '{fn.name}' has no `call:` or `expr:`; it is done by the calling agent",
            step_id=step_id,
        )
    try:
        target = python_target(fn.call) or import_call_target(fn.call, plan_dir=plan_directory(plan))
        target = getattr(target, "__stratum_call__", target)  # a library @compute function: call what it wraps
    except (ImportError, AttributeError, TypeError) as error:
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
