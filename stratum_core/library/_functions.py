"""`@infer`, `@compute` and `@refine`: Python functions as the plan's infer and compute functions.

A decorated function keeps its signature; calling it gives a `StepCall`, which runs when awaited: inside a running
`@flow` as a step of that flow's run, elsewhere as a run of its own. Either way the call goes through the engine's
function machinery (contract, given/ensure, retries, budget, cache, quorum, samples, refine), and its arguments and
result cross as JSON, converted from and to the annotated Python types.
"""

from __future__ import annotations

import ast
import inspect
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, ParamSpec, Protocol, TypeVar, get_args, get_origin, overload

from stratum_core.engine import RunResult
from stratum_core.engine._python_flow import PythonFlowExecution
from stratum_core.engine._python_objects import register_target
from stratum_core.library._callsites import awaited_by_caller, caller_site
from stratum_core.library._check import check_function, definition_error, location_of
from stratum_core.library._codec import Codec, codec
from stratum_core.library._conditions import ConditionArg, condition_tokens
from stratum_core.library._declared import Declared
from stratum_core.library._results import Probabilistic
from stratum_core.library._runtime import current_execution, raise_for, run_alone, test_mode
from stratum_core.library._signature import (
    bind_inputs,
    build_model,
    description_of,
    output_spec,
    read_signature,
)
from stratum_core.library._step_call import StepCall
from stratum_core.library._types import DefinitionProblem, defining_namespace
from stratum_core.plan import Budget, ComputeFunction, Function, InferFunction, Quorum, Refine

__all__ = ["ComputeFn", "InferFn", "Learned", "StratumFunction", "compute", "infer", "learned", "refine"]

P = ParamSpec("P")
R = TypeVar("R")


class StratumFunction(Declared[P, R, Function]):
    """A decorated function: its plan definition, the contracts it uses, and how its values convert.

    Attributes:
        fn: the undecorated function.
        name: the function's name in plans and traces.
        definition: the plan function (InferFunction or ComputeFunction).
        contracts: every contract its inputs and output use, by name.
        location: where it is defined.
    """

    kind: ClassVar[str] = "function"

    def __repr__(self) -> str:
        return f"<{self.kind} function {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> StepCall[R]:
        return StepCall(self, self.bind(args, kwargs), caller_site(), _run_function_call)

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of a call as JSON inputs (defaults filled in, None left out); ValueError when invalid."""
        return bind_inputs(self.name, self.signature, self.input_codecs, args, kwargs)

    def decode(self, output: Any) -> R:
        """The step's JSON output as the annotated return type."""
        result: R = self.output.to_python(output, where="result")
        return result

    async def run(self, *args: P.args, **kwargs: P.kwargs) -> RunResult:
        """Call the function as a run of its own and return the engine's RunResult (failures are returned)."""
        inputs = self.bind(args, kwargs)
        result, _ = await _alone(self, inputs)
        return result


def _definition(function: StratumFunction[Any, Any]) -> Function:
    """The function as it runs now: under `configure(test_mode=True)` an infer function is sampled `sample_n` times."""
    definition = function.definition
    on, samples = test_mode()
    if not on or not isinstance(definition, InferFunction) or definition.quorum is not None:
        return definition
    if definition.stable:  # the reference's test mode: the samples must agree (90%), the modal value is returned
        return definition.model_copy(update={"stable": False, "samples": max(samples, 2), "min_agreement": 0.9})
    return definition.model_copy(update={"samples": max(samples, 2)})


def _decode(function: StratumFunction[Any, Any], output: Any) -> Any:
    definition = function.definition
    if isinstance(definition, InferFunction) and definition.stable and test_mode()[0] and isinstance(output, Mapping):
        if set(output) == {"value", "samples", "agreement"}:
            return function.decode(output["value"])
    return function.decode(output)


async def _alone(
    function: StratumFunction[Any, Any], inputs: Mapping[str, Any]
) -> tuple[RunResult, PythonFlowExecution]:
    async def work(execution: PythonFlowExecution) -> Any:
        return await execution.call(execution.path_for(function.name), function.name, inputs)

    return await run_alone(
        function.name,
        inputs=inputs,
        input_specs=function.definition.input,
        functions={function.name: _definition(function)},
        contracts=function.contracts,
        work=work,
        source=f"python:{function.__module__}:{function.__qualname__}",
    )


async def _run_function_call(call: StepCall[Any]) -> Any:
    function: StratumFunction[Any, Any] = call.target
    execution = current_execution()
    if execution is None:
        result, alone = await _alone(function, call.inputs)
        raise_for(result, alone)
        return _decode(function, result.output)
    execution.include({function.name: _definition(function)}, function.contracts)
    output = await execution.call(execution.path_for(call.site or function.name), function.name, call.inputs)
    return _decode(function, output)


class InferFn(StratumFunction[P, R]):
    """A function done by a model (`@infer`): a stub whose signature and docstring the plan function is built from."""

    kind: ClassVar[str] = "infer"
    options: _InferOptions

    def decode(self, output: Any) -> R:
        definition = self.definition
        if isinstance(definition, InferFunction) and not definition.stable and isinstance(output, Mapping):
            value = self.output.to_python(output.get("value"), where="result")
            samples = tuple(self.output.to_python(item, where="result") for item in output.get("samples") or ())
            decided: R = Probabilistic(value=value, samples=samples, agreement=float(output.get("agreement", 1.0)))  # type: ignore[assignment]
            return decided
        return super().decode(output)


class ComputeFn(StratumFunction[P, R]):
    """Plain code (`@compute`), run by the engine as a compute step; plans call it by its import path.

    `await f(x)` runs it as a step (traced, checked against its types); a plain call `f(x)` of a sync function that
    is not awaited returns its value at once, like a normal function (as in the reference library).
    """

    kind: ClassVar[str] = "compute"
    import_path: str
    __stratum_call__: Callable[..., Any]
    """What the engine calls with the step's JSON inputs: converts them, calls the function, returns JSON."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> StepCall[R]:
        if not inspect.iscoroutinefunction(self.fn) and not awaited_by_caller(sys._getframe(1)):
            value: StepCall[R] = self.fn(*args, **kwargs)  # a plain call: the function's own value
            return value
        return StepCall(self, self.bind(args, kwargs), caller_site(), _run_function_call)


def _stub_problem(fn: Callable[..., Any]) -> DefinitionProblem | None:
    """A problem when an @infer function's body does something: the model does the work, the body must be `...`."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    node = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None)
    if node is None:
        return None
    for statement in node.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            if statement.value.value is Ellipsis or isinstance(statement.value.value, str):
                continue
        if isinstance(statement, ast.Raise) and "NotImplementedError" in ast.unparse(statement):
            continue  # the form type checkers accept for a body that is never run
        return DefinitionProblem(
            "the body of an @infer function must be `...` (the model does the work)",
            hint="move code into an @compute function (`raise NotImplementedError` is accepted too)",
        )
    return None


# -- @infer ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RefineSpec:
    until: ConditionArg
    feedback: ConditionArg | None
    max_iterations: int


@dataclass(frozen=True)
class Learned:
    """A learned-context file for `@infer(context=learned("route.learned.yaml"))` (see `learned`)."""

    path: str


def learned(path: str | os.PathLike[str]) -> Learned:
    """Use what `stratum optimize` learned for this function: `@infer(..., context=learned("FILE"))`.

    A relative path is read beside the module that defines the function. The file is checked when the function is
    decorated: it must have been learned for this function's name and its current input and output types.
    """
    return Learned(os.fspath(path))


@dataclass(frozen=True)
class _InferOptions:
    intent: str
    context: tuple[str, ...]
    learned: Learned | None
    ensure: ConditionArg | Sequence[ConditionArg] | None
    given: ConditionArg | Sequence[ConditionArg] | None
    model: str | None
    temperature: float | None
    max_tokens: int | None
    budget: Budget | None
    retries: int
    cache: Literal["none", "session", "global"]
    stable: bool
    samples: int | None
    min_agreement: float | None
    quorum: int | None
    agree_on: str | None
    threshold: int | None
    name: str | None
    refine: _RefineSpec | None = None


def _build_infer(fn: Callable[..., Any], options: _InferOptions) -> InferFn[Any, Any]:
    location = location_of(fn)
    name = options.name or fn.__name__
    problems: list[DefinitionProblem] = []
    stub = _stub_problem(fn)
    if stub is not None:
        problems.append(stub)
    shape = read_signature(fn, problems)
    annotation = shape.output_annotation
    probabilistic = get_origin(annotation) is Probabilistic or annotation is Probabilistic
    if probabilistic:
        inner = get_args(annotation)
        if not inner:
            problems.append(DefinitionProblem("Probabilistic needs its value type: Probabilistic[T]", path="output"))
        annotation = inner[0] if inner else None
        if options.stable:
            problems.append(
                DefinitionProblem(
                    "the return type is Probabilistic[...] but stable is true",
                    path="output",
                    hint="pass stable=False to sample the function, or return the plain type",
                )
            )
    elif not options.stable and annotation is not None:
        problems.append(
            DefinitionProblem(
                "a stable=False function returns Probabilistic[T]",
                path="output",
                hint=f"annotate the return as Probabilistic[{getattr(annotation, '__name__', annotation)}]",
            )
        )
    output = output_spec(annotation, problems, shape.contracts)
    result_codec = codec(annotation) if annotation is not None else None
    quorum: Quorum | None = None
    if options.quorum is not None:
        if options.quorum < 2:
            problems.append(DefinitionProblem("quorum must ask at least 2 times", path="quorum"))
        else:
            threshold = options.threshold if options.threshold is not None else options.quorum // 2 + 1
            quorum = Quorum(n=options.quorum, agree_on=options.agree_on, threshold=threshold)
    elif options.threshold is not None:
        problems.append(DefinitionProblem("threshold needs quorum=N", path="quorum"))
    # agree_on alone (as the reference allows) names the field a debate among such agents converges on
    try:
        given = condition_tokens(options.given, role="given", inputs=shape.codecs, result=None)
        ensure = condition_tokens(options.ensure, role="ensure", inputs=shape.codecs, result=result_codec)
        refine: Refine | None = None
        if options.refine is not None:
            [until] = condition_tokens(options.refine.until, role="until", inputs=shape.codecs, result=result_codec)
            feedback = None
            if options.refine.feedback is not None:
                [feedback] = condition_tokens(
                    options.refine.feedback, role="feedback", inputs=shape.codecs, result=result_codec
                )
            refine = Refine(until=until, feedback=feedback, max_iterations=options.refine.max_iterations)
    except DefinitionProblem as problem:
        problems.append(problem)
        given = ensure = ()
        refine = None
    definition = None
    if output is not None:
        definition = build_model(
            InferFunction,
            {
                "name": name,
                "description": description_of(fn),
                "input": shape.inputs,
                "output": output,
                "given": given,
                "ensure": ensure,
                "retries": options.retries,
                "budget": options.budget,
                "intent": options.intent,
                "context": options.context,
                "model": options.model,
                "temperature": options.temperature,
                "max_tokens": options.max_tokens,
                "cache": options.cache,
                "stable": options.stable,
                "samples": options.samples,
                "min_agreement": options.min_agreement,
                "quorum": quorum,
                "refine": refine,
            },
            problems,
        )
    if definition is not None and options.learned is not None:
        definition = _with_learned(definition, options.learned, fn, shape.contracts, problems)
    if problems or definition is None:
        raise definition_error(location, problems, prefix=f"functions.{name}")
    check_function(definition, shape.contracts, location)
    function: InferFn[Any, Any] = InferFn(
        fn,
        definition=definition,
        contracts=shape.contracts,
        signature=shape.signature,
        input_codecs=shape.codecs,
        output=result_codec if result_codec is not None else codec(Any),
        location=location,
    )
    function.options = options
    return function


def _with_learned(
    definition: Function, learned: Learned, fn: Callable[..., Any], contracts: Any, problems: list[DefinitionProblem]
) -> Function | None:
    """The definition with its learned context read and checked; None (and a problem) when it cannot be used."""
    from stratum_core.plan._learned import LearnedError, function_contract_hash, load_learned

    assert isinstance(definition, InferFunction)
    file = Path(learned.path)
    if not file.is_absolute():
        file = Path(inspect.getfile(fn)).parent / file
    try:
        context = load_learned(file)
    except LearnedError as e:
        problems.append(DefinitionProblem(f"{learned.path}: {e}", path="context"))
        return None
    expected = function_contract_hash(definition.input, definition.output, contracts)
    if context.function != definition.name or context.contract_hash != expected:
        problems.append(
            DefinitionProblem(
                f"{learned.path}: it was learned for function '{context.function}' with contract hash "
                f"{context.contract_hash}, not for '{definition.name}' with {expected}",
                path="context",
                hint="run `stratum optimize` again on the changed function",
            )
        )
        return None
    return definition.model_copy(update={"learned": learned.path, "learned_context": context})


class _InferDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> InferFn[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> InferFn[P, R]: ...


def infer(
    *,
    intent: str,
    context: str | Sequence[str] | Learned = (),
    ensure: ConditionArg | Sequence[ConditionArg] | None = None,
    given: ConditionArg | Sequence[ConditionArg] | None = None,
    model: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    budget: Budget | None = None,
    retries: int = 3,
    cache: Literal["none", "session", "global"] = "none",
    stable: bool = True,
    samples: int | None = None,
    min_agreement: float | None = None,
    quorum: int | None = None,
    agree_on: str | None = None,
    threshold: int | None = None,
    name: str | None = None,
) -> _InferDecorator:
    """Make a typed stub an LLM call held to its return type: `def classify(text: str) -> Sentiment: ...`.

    Args:
        intent: what the model is asked to do.
        context: standing instructions, one per line; or `learned("FILE")`, what `stratum optimize` learned.
        ensure: postconditions on the result (expression strings over `result` and the inputs, or callables taking
            the result); a violation is retried with the violation and the actual values.
        given: preconditions on the inputs; a false one fails at once, without calling the model.
        model: the LiteLLM model string (default: the configured model).
        temperature: sampling temperature.
        max_tokens: the answer's token limit.
        budget: time, money and tokens for this call (`Budget(ms=..., usd=..., tokens=...)`).
        retries: how many times a violated contract or ensure is retried.
        cache: `session` (this process's engine) or `global` (the run store) reuse an earlier answer.
        stable: False samples the function and returns `Probabilistic[T]`.
        samples: how many samples (stable=False; default 3).
        min_agreement: the least share of samples that must agree (StabilityAssertionError otherwise).
        quorum: ask N times at once; `threshold` of them (default a majority) must agree on `agree_on`.
        agree_on: the result field the quorum's answers must agree on; without quorum, the field a debate among
            such agents converges on (`debate(converge_on=...)` by default).
        threshold: how many of the quorum's answers must agree.
        name: the function's name in plans and traces (default: the Python name).

    The decorated function is checked at once, as a plan would be (types, expressions against the contracts,
    quorum options): a problem raises PlanError located at the function.
    """
    options = _InferOptions(
        intent=intent,
        context=() if isinstance(context, Learned) else (context,) if isinstance(context, str) else tuple(context),
        learned=context if isinstance(context, Learned) else None,
        ensure=ensure,
        given=given,
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        budget=budget,
        retries=retries,
        cache=cache,
        stable=stable,
        samples=samples,
        min_agreement=min_agreement,
        quorum=quorum,
        agree_on=agree_on,
        threshold=threshold,
        name=name,
    )

    def decorate(fn: Callable[..., Any]) -> InferFn[Any, Any]:
        defining_namespace(fn, 1)
        spec = getattr(fn, "__stratum_refine__", None)
        return _build_infer(fn, replace(options, refine=spec) if isinstance(spec, _RefineSpec) else options)

    return decorate


# -- @refine -----------------------------------------------------------------------------------------------------


F = TypeVar("F", bound=Callable[..., Any])


class _RefineDecorator(Protocol):
    @overload
    def __call__(self, fn: InferFn[P, R], /) -> InferFn[P, R]: ...

    @overload
    def __call__(self, fn: F, /) -> F: ...


def refine(*, until: ConditionArg, feedback: ConditionArg | None = None, max_iterations: int = 5) -> _RefineDecorator:
    """Repeat an `@infer` call until `until` holds, feeding `feedback` back; ConvergenceFailure after the last try.

    `until` and `feedback` are expression strings over `result` and the inputs, or callables taking the result
    (`feedback` returns the text the model is told). Put it above or below `@infer`.
    """
    spec = _RefineSpec(until=until, feedback=feedback, max_iterations=max_iterations)

    def decorate(target: Any) -> Any:
        if isinstance(target, InferFn):
            return _build_infer(target.fn, replace(target.options, refine=spec))
        if callable(target):
            defining_namespace(target, 1)
            target.__stratum_refine__ = spec
            return target
        raise TypeError(f"@refine applies to an @infer function, not {type(target).__name__}")

    return decorate


# -- @compute ----------------------------------------------------------------------------------------------------


def _json_entry(fn: Callable[..., Any], codecs: Mapping[str, Codec], output: Codec) -> Callable[..., Any]:
    """The engine's entry into a compute function: JSON inputs in, Python call, JSON result out."""

    def inputs_of(values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: codecs[name].to_python(value, where=name) for name, value in values.items()}

    if inspect.iscoroutinefunction(fn):

        async def call_async(**values: Any) -> Any:
            return output.to_json(await fn(**inputs_of(values)), where="result")

        return call_async

    def call(**values: Any) -> Any:
        return output.to_json(fn(**inputs_of(values)), where="result")

    return call


def _build_compute(
    fn: Callable[..., Any],
    *,
    ensure: ConditionArg | Sequence[ConditionArg] | None,
    given: ConditionArg | Sequence[ConditionArg] | None,
    name: str | None,
) -> ComputeFn[Any, Any]:
    location = location_of(fn)
    fn_name = name or fn.__name__
    problems: list[DefinitionProblem] = []
    shape = read_signature(fn, problems)
    output = output_spec(shape.output_annotation, problems, shape.contracts)
    result_codec = codec(shape.output_annotation) if shape.output_annotation is not None else codec(Any)
    entry = _json_entry(fn, shape.codecs, result_codec)
    import_path = f"{fn.__module__}:{fn.__qualname__}"
    try:
        given_texts = condition_tokens(given, role="given", inputs=shape.codecs, result=None)
        ensure_texts = condition_tokens(ensure, role="ensure", inputs=shape.codecs, result=result_codec)
    except DefinitionProblem as problem:
        problems.append(problem)
        given_texts = ensure_texts = ()
    definition = None
    if output is not None:
        definition = build_model(
            ComputeFunction,
            {
                "name": fn_name,
                "description": description_of(fn),
                "input": shape.inputs,
                "output": output,
                "given": given_texts,
                "ensure": ensure_texts,
                "call": register_target(entry, import_path),
            },
            problems,
        )
    if problems or definition is None:
        raise definition_error(location, problems, prefix=f"functions.{fn_name}")
    check_function(definition, shape.contracts, location)
    function: ComputeFn[Any, Any] = ComputeFn(
        fn,
        definition=definition,
        contracts=shape.contracts,
        signature=shape.signature,
        input_codecs=shape.codecs,
        output=result_codec,
        location=location,
    )
    function.import_path = import_path
    function.__stratum_call__ = entry
    return function


class _ComputeDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> ComputeFn[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> ComputeFn[P, R]: ...


@overload
def compute(fn: Callable[P, Coroutine[Any, Any, R]], /) -> ComputeFn[P, R]: ...


@overload
def compute(fn: Callable[P, R], /) -> ComputeFn[P, R]: ...


@overload
def compute(
    *,
    ensure: ConditionArg | Sequence[ConditionArg] | None = None,
    given: ConditionArg | Sequence[ConditionArg] | None = None,
    name: str | None = None,
) -> _ComputeDecorator: ...


def compute(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    ensure: ConditionArg | Sequence[ConditionArg] | None = None,
    given: ConditionArg | Sequence[ConditionArg] | None = None,
    name: str | None = None,
) -> Any:
    """Make plain code (sync or async) a compute step: `@compute` or `@compute(ensure=..., given=...)`.

    Called in a flow, it is a recorded step whose result is checked against its return type and `ensure` (once: a
    retry would not change it). Exported, it becomes `call: module:function`.
    """
    if fn is not None:
        defining_namespace(fn, 1)
        return _build_compute(fn, ensure=ensure, given=given, name=name)

    def decorate(target: Callable[..., Any]) -> ComputeFn[Any, Any]:
        defining_namespace(target, 1)
        return _build_compute(target, ensure=ensure, given=given, name=name)

    return decorate
