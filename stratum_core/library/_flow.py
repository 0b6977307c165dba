"""`@flow`: an async function whose calls of decorated functions are the steps of one run.

Awaited outside any flow, a flow is a run of its own (recorded, within its budget); awaited inside another flow, it
is a sub-flow step whose steps are recorded under the step's id. The body is ordinary Python: it may branch, loop
and catch errors. A body that only binds the results of awaited calls can also be exported as a plan.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from stratum_core.engine import RunResult
from stratum_core.engine._python_flow import Body, PythonFlowExecution, run_python_flow
from stratum_core.errors import PostconditionFailed
from stratum_core.library._callsites import SiteMap, caller_site, register_sites
from stratum_core.library._check import Location, definition_error, location_of
from stratum_core.library._codec import Codec, codec
from stratum_core.library._declared import Declared
from stratum_core.library._runtime import current_execution, engine, raise_for, use_execution
from stratum_core.library._signature import bind_inputs, read_signature
from stratum_core.library._step_call import StepCall
from stratum_core.library._types import DefinitionProblem, defining_namespace, merge_contracts, type_spec
from stratum_core.plan import Budget, Contract, Flow, Plan

__all__ = ["FlowFn", "flow"]

P = ParamSpec("P")
R = TypeVar("R")


class FlowFn(Declared[P, R, Flow]):
    """A decorated flow.

    Attributes:
        fn: the undecorated async function.
        definition: the plan flow it runs as (input, output, budget; its steps are the calls its code makes).
        contracts: the contracts its input and output use.
        sites: the call sites of its body (step ids), when its source could be read.
        location: where it is defined.
    """

    def __init__(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        *,
        definition: Flow,
        contracts: Mapping[str, Contract],
        signature: inspect.Signature,
        input_codecs: Mapping[str, Codec],
        output: Codec,
        sites: SiteMap | None,
        location: Location,
    ) -> None:
        super().__init__(
            fn,
            definition=definition,
            contracts=contracts,
            signature=signature,
            input_codecs=input_codecs,
            output=output,
            location=location,
        )
        self.sites = sites

    def __repr__(self) -> str:
        return f"<flow {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> StepCall[R]:
        return StepCall(self, self.bind(args, kwargs), caller_site(), _run_flow_call)

    def bind(self, args: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of a call as JSON inputs (defaults filled in, None left out); ValueError when invalid."""
        return bind_inputs(self.name, self.signature, self.input_codecs, args, kwargs, kind="flow ")

    def body(self, inputs: Mapping[str, Any], holder: dict[str, Any]) -> Body:
        """The flow's code as the engine runs it: Python arguments in, JSON output out; `holder` gets the value."""

        async def run_body(execution: PythonFlowExecution) -> Any:
            kwargs: dict[str, Any] = {}
            for name, parameter in self.signature.parameters.items():
                if name in inputs:
                    kwargs[name] = self.input_codecs[name].to_python(inputs[name], where=name)
                elif parameter.default is not parameter.empty:
                    kwargs[name] = parameter.default
            try:
                value = await use_execution(execution, lambda: self.fn(**kwargs))
            except Exception as error:
                holder["error"] = error
                raise
            holder["value"] = value
            try:
                return self.output.to_json(value, where="output")
            except ValueError as error:
                raise PostconditionFailed(
                    f"the output of flow '{self.name}' does not match its type: {error}",
                    history=[[str(error)]],
                    step_id=execution.prefix.rstrip(".") or None,
                ) from None

        return run_body

    async def run(self, *args: P.args, **kwargs: P.kwargs) -> RunResult:
        """Run the flow as a run of its own and return the engine's RunResult (failures are returned)."""
        result, _ = await self._run_alone(self.bind(args, kwargs), {})
        return result

    async def _run_alone(
        self, inputs: Mapping[str, Any], holder: dict[str, Any]
    ) -> tuple[RunResult, PythonFlowExecution]:
        plan = Plan(
            version="1",
            contracts=self.contracts,
            flows={self.name: self.definition},
            source=f"python:{self.__module__}:{self.__qualname__}",
        )
        return await run_python_flow(engine(), plan, self.name, inputs, self.body(inputs, holder))


async def _run_flow_call(call: StepCall[Any]) -> Any:
    flow: FlowFn[Any, Any] = call.target
    holder: dict[str, Any] = {}
    execution = current_execution()
    if execution is None:
        result, alone = await flow._run_alone(call.inputs, holder)
        raise_for(result, alone)
        return holder.get("value")
    execution.include({}, flow.contracts)
    path = execution.path_for(call.site or flow.name)
    try:
        await execution.subflow(path, flow.definition, call.inputs, flow.body(call.inputs, holder))
    except Exception:
        if "error" in holder:
            raise holder["error"] from None
        raise
    return holder.get("value")


class _FlowDecorator(Protocol):
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> FlowFn[P, R]: ...


def _build_flow(fn: Callable[..., Any], *, budget: Budget | None, name: str | None) -> FlowFn[Any, Any]:
    location = location_of(fn)
    flow_name = name or getattr(fn, "__name__", "flow")
    problems: list[DefinitionProblem] = []
    if not inspect.iscoroutinefunction(fn):
        problems.append(DefinitionProblem("a flow is an async function", hint="write `async def`"))
        raise definition_error(location, problems, prefix=f"flows.{flow_name}")
    shape = read_signature(fn, problems)
    problems = [p for p in problems if p.path != "output"]  # a flow may leave its output unannotated
    contracts: dict[str, Contract] = dict(shape.contracts)
    output = None
    if shape.output_annotation is not None:
        try:
            resolved = type_spec(shape.output_annotation)
            merge_contracts(contracts, resolved.contracts)
            output = resolved.spec
        except DefinitionProblem as problem:
            problems.append(problem.under("output"))
    if problems:
        raise definition_error(location, problems, prefix=f"flows.{flow_name}")
    doc = inspect.getdoc(fn)
    definition = Flow(
        name=flow_name,
        description=doc.strip() if doc else None,
        input=shape.inputs,
        output=output,
        budget=budget,
        steps=(),
    )
    return FlowFn(
        fn,
        definition=definition,
        contracts=contracts,
        signature=shape.signature,
        input_codecs=shape.codecs,
        output=codec(shape.output_annotation if shape.output_annotation is not None else Any),
        sites=register_sites(fn),
        location=location,
    )


@overload
def flow(fn: Callable[P, Coroutine[Any, Any, R]], /) -> FlowFn[P, R]: ...


@overload
def flow(*, budget: Budget | None = None, name: str | None = None) -> _FlowDecorator: ...


def flow(
    fn: Callable[..., Coroutine[Any, Any, Any]] | None = None,
    /,
    *,
    budget: Budget | None = None,
    name: str | None = None,
) -> Any:
    """Make an async function a flow: `@flow` or `@flow(budget=Budget(ms=60_000, usd=0.05))`.

    Each decorated call its code awaits is a step of the flow's run, named after the variable its result is bound
    to (`reply = await draft(...)` is the step `reply`). The budget is shared by every step.
    """
    if fn is not None:
        defining_namespace(fn, 1)
        return _build_flow(fn, budget=budget, name=name)

    def decorate(target: Callable[..., Coroutine[Any, Any, Any]]) -> FlowFn[Any, Any]:
        defining_namespace(target, 1)
        return _build_flow(target, budget=budget, name=name)

    return decorate
