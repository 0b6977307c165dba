"""Where library calls run: the configured engine, the flow run the current task is in, and `run()`.

Inside a running `@flow`, a context variable holds its execution, so each decorated call made by the flow's code
(in the same task or in tasks it starts) becomes a step of that run. Outside a flow, a call is a run of its own: a
one-step flow named after the function. Both go through the engine's step machinery and the configured run store.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from stratum_core.backends import BackendName, TemporalSettings, engine_for, open_run_store
from stratum_core.engine import Engine, EngineConfig, ReviewSink, RunObserver, RunResult
from stratum_core.engine._python_flow import Body, PythonFlowExecution, run_python_flow
from stratum_core.errors import ConfigurationError
from stratum_core.plan import Contract, Flow, Function, Plan, TypeSpec
from stratum_core.store import MemoryRunStore, RunStore

if TYPE_CHECKING:
    from stratum_core.llm import LLMClient

__all__ = [
    "configure",
    "current_execution",
    "engine",
    "raise_for",
    "run",
    "run_alone",
    "test_mode",
    "use_execution",
]

T = TypeVar("T")

_current: ContextVar[PythonFlowExecution | None] = ContextVar("stratum_flow_execution", default=None)
_engine: Engine | None = None
_owned_store: RunStore | None = None  # a store configure() opened from a path: closed when replaced
_settings: dict[str, Any] = {"test_mode": False, "sample_n": 5}


def configure(
    *,
    model: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    store: RunStore | str | os.PathLike[str] | None = None,
    review_sink: ReviewSink | None = None,
    llm: LLMClient | None = None,
    observers: Sequence[RunObserver] = (),
    max_concurrency: int | None = None,
    force_model: bool = False,
    default_model: str | None = None,
    test_mode: bool | None = None,
    sample_n: int | None = None,
    tracer: Any = None,
    client: Any = None,
    backend: BackendName | None = None,
    temporal: TemporalSettings | None = None,
) -> Engine:
    """Set how library calls run, and return the engine they now use.

    Anything left out comes from the environment (STRATUM_MODEL, STRATUM_API_BASE, STRATUM_API_KEY,
    STRATUM_STORE) or the engine's defaults. `store` is a RunStore, the path of a SQLite file, or a database URL
    (`postgresql://...`, see `stratum_core.backends.open_run_store`); without one (and
    without STRATUM_STORE) runs are kept in memory. `llm` replaces the LiteLLM client (tests).

    The reference library's options work too: `default_model` is `model`; `test_mode=True` samples every `@infer`
    call `sample_n` times (default 5): a stable function must agree in 90% of the samples (StabilityAssertionError)
    and returns the modal value, an unstable one returns all the samples; `tracer` is a callable that gets the span
    attributes of each successful model call, or `stratum.exporters.otel(...)`; `review_sink` may have the
    reference's `emit(review)` instead of `ask(request)`. `client` is accepted and unused, as in the reference.

    `backend="temporal"` (or STRATUM_BACKEND) runs plan flows (`stratum.run(plan, flow, ...)`) as Temporal
    workflows on `temporal` (a TemporalSettings; default: STRATUM_TEMPORAL_ADDRESS / STRATUM_TASK_QUEUE or
    127.0.0.1:7233, queue `stratum`), executed by `stratum worker` processes sharing `store`; `@flow` functions
    still run where they are called. It needs the `temporal` extra.
    """
    global _engine, _owned_store
    del client
    from stratum_core.library._hitl import adapt_review_sink
    from stratum_core.library._trace import collector

    _settings["test_mode"] = bool(test_mode)
    _settings["sample_n"] = sample_n or 5
    config = EngineConfig.from_env(
        model=model or default_model,
        api_base=api_base,
        api_key=api_key,
        max_concurrency=max_concurrency,
        force_model=force_model,
    )
    if store is None and os.environ.get("STRATUM_STORE"):
        store = os.environ["STRATUM_STORE"]
    run_store: RunStore
    opened = None
    if store is None:
        run_store = MemoryRunStore()
    elif isinstance(store, str | os.PathLike):
        run_store = opened = open_run_store(store)
    else:
        run_store = store
    if _owned_store is not None:
        _owned_store.close()
    _owned_store = opened
    extra: list[RunObserver] = [collector]
    collector.store = run_store
    collector.tracer = None
    if tracer is not None:
        build = getattr(tracer, "build_observer", None)
        if callable(build):
            extra.append(build(run_store))
        elif callable(tracer):
            collector.tracer = tracer
        else:
            raise TypeError(f"tracer {tracer!r} is neither a callable nor stratum.exporters.otel(...)")
    chosen: BackendName = backend or ("temporal" if os.environ.get("STRATUM_BACKEND") == "temporal" else "local")
    if chosen == "temporal" and temporal is None:
        temporal = TemporalSettings(
            address=os.environ.get("STRATUM_TEMPORAL_ADDRESS") or TemporalSettings().address,
            task_queue=os.environ.get("STRATUM_TASK_QUEUE") or TemporalSettings().task_queue,
        )
    _engine = engine_for(
        chosen,
        store=run_store,
        llm=llm,
        config=config,
        review_sink=adapt_review_sink(review_sink),
        observers=[*observers, *extra],
        temporal=temporal,
    )
    return _engine


def test_mode() -> tuple[bool, int]:
    """Whether `configure(test_mode=True)` is on, and how many samples each call then takes."""
    return bool(_settings["test_mode"]), int(_settings["sample_n"])


def engine() -> Engine:
    """The engine library calls use (configured from the environment on first use)."""
    return _engine if _engine is not None else configure()


def current_execution() -> PythonFlowExecution | None:
    """The flow run the current task is in, if any."""
    return _current.get()


async def use_execution(execution: PythonFlowExecution, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with `execution` as the current flow run."""
    token = _current.set(execution)
    try:
        return await work()
    finally:
        _current.reset(token)


def raise_for(result: RunResult, execution: PythonFlowExecution | None = None) -> None:
    """Raise what a run that did not succeed ended with: the flow code's own exception, or the engine's error."""
    if result.status == "succeeded":
        return
    if execution is not None and execution.body_error is not None:
        raise execution.body_error
    if result.error is not None:
        raise result.error
    if result.status == "paused":
        what = ", ".join(f"'{item.step_id}'" for item in result.pending) or "a step"
        raise ConfigurationError(
            f"run {result.run_id} is paused: {what} waits for an answer from outside (a person, or an agent), and "
            "the library has no way to ask: pass configure(review_sink=...) to ask people from Python",
            run_id=result.run_id,
        )
    raise ConfigurationError(f"run {result.run_id} ended {result.status}", run_id=result.run_id)


async def run_alone(
    name: str,
    *,
    inputs: Mapping[str, Any],
    input_specs: Mapping[str, TypeSpec],
    functions: Mapping[str, Function],
    contracts: Mapping[str, Contract],
    work: Body,
    source: str,
) -> tuple[RunResult, PythonFlowExecution]:
    """A run of its own for one step made outside any flow: a flow called `name` whose only step is `work`."""
    flow = Flow(name=name, input=dict(input_specs), steps=())
    plan = Plan(version="1", contracts=dict(contracts), functions=dict(functions), flows={name: flow}, source=source)
    return await run_python_flow(engine(), plan, name, inputs, work)


def _running_loop() -> str | None:
    """The async library whose event loop runs in this thread, if any."""
    try:
        asyncio.get_running_loop()
        return "asyncio"
    except RuntimeError:
        pass
    trio: Any = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
            return "trio"
        except RuntimeError:
            pass
    return None


def run(target: Awaitable[T] | Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
    """Run a library call (or any awaitable) from synchronous code and return its result.

    `run(classify("..."))` or `run(classify, "...")`. Refuses to run inside a running event loop: there, `await`
    the call instead.
    """
    library = _running_loop()
    if library is not None:
        if isinstance(target, Coroutine):
            target.close()  # never awaited; closing it keeps Python from warning about it
        raise RuntimeError(
            f"stratum run() cannot be called from a running event loop ({library}): use `await` on the call instead"
        )

    async def main() -> T:
        awaitable = target(*args, **kwargs) if callable(target) else target
        return await awaitable

    return anyio.run(main)
