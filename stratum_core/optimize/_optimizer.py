"""Optimize one infer function on labelled examples with DSPy, and write what it learned as a reviewable artifact.

Baseline and optimized programs are scored on the same held-out split by `Judge` (Stratum's own checks and the
label), through the adapter that formats Stratum's runtime prompt. BootstrapFewShot learns demonstrations, GEPA
learns instructions from Stratum's violation text, MIPROv2 both (it needs optuna). Imported only by the command.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import dspy

from stratum_core.errors import ConfigurationError
from stratum_core.llm._structured import OutputProfile
from stratum_core.optimize._data import Example, load_examples, split_examples
from stratum_core.optimize._metric import Judge, Judgement
from stratum_core.optimize._program import ANSWER, StratumAdapter, build_program, learned_parts
from stratum_core.plan import InferFunction, Plan
from stratum_core.plan._learned import LearnedContext, function_contract_hash

__all__ = ["OPTIMIZERS", "OptimizeOptions", "OptimizeReport", "Progress", "optimize_function"]

Optimizer = Literal["bootstrap", "gepa", "mipro"]
OPTIMIZERS: tuple[Optimizer, ...] = ("bootstrap", "gepa", "mipro")

Progress = Callable[[str, int, int | None], None]
"""Told (phase, done, total) as the work goes: phases `baseline`, `optimizing` (model calls), `optimized`."""


@dataclass(frozen=True, kw_only=True)
class OptimizeOptions:
    """How to optimize (the command's options)."""

    optimizer: Optimizer = "bootstrap"
    model: str
    api_base: str | None = None
    api_key: str | None = None
    reflection_model: str | None = None
    train_split: float = 0.7
    metric: str | None = None
    seed: int = 0
    max_demos: int = 4
    max_metric_calls: int = 60
    max_tokens: int = 512
    output_profiles: Mapping[str, OutputProfile] = field(default_factory=dict)
    """How models take the output schema, by model string (the models file), as for `stratum run`."""
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Prices in US dollars per million (input, output) tokens for models LiteLLM cannot price (what is spent)."""


@dataclass(frozen=True)
class Spent:
    """Model calls made, their tokens and cost (None when a model has no price)."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0


@dataclass(frozen=True)
class OptimizeReport:
    """The outcome: scores on the held-out split, what was spent, and the artifact to write."""

    baseline: float
    optimized: float
    train: int
    test: int
    spent: Spent
    learned: LearnedContext
    failures: list[str] = field(default_factory=list)


class _CallCounter(dspy.utils.callback.BaseCallback):  # type: ignore[misc]  # dspy is untyped
    def __init__(self, progress: Progress | None) -> None:
        self.calls = 0
        self.progress = progress
        self.phase = "baseline"

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None) -> None:
        self.calls += 1
        if self.progress is not None and self.phase == "optimizing":
            self.progress("optimizing", self.calls, None)


def optimize_function(
    plan: Plan,
    function: str,
    data: str | os.PathLike[str],
    *,
    options: OptimizeOptions,
    progress: Progress | None = None,
) -> OptimizeReport:
    """Optimize `function` of `plan` on the examples in `data`; ConfigurationError for bad input."""
    fn = plan.functions.get(function)
    if not isinstance(fn, InferFunction):
        names = ", ".join(name for name, f in plan.functions.items() if isinstance(f, InferFunction)) or "none"
        kind = "no function" if fn is None else f"a {fn.mode} function"
        raise ConfigurationError(f"{function!r} is {kind}; optimize an infer function ({names})")
    if options.optimizer not in OPTIMIZERS:
        raise ConfigurationError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {options.optimizer!r}")
    examples = load_examples(data, fn, plan.contracts)
    train, test = split_examples(examples.items, train_split=options.train_split, seed=options.seed)
    judge = Judge(fn, plan.contracts, metric=options.metric)
    model, api_base, api_key, profile = _endpoint(options)
    adapter = StratumAdapter(fn, plan.contracts, strategy=profile.strategies[0], schema_field=profile.schema_field)
    counter = _CallCounter(progress)
    lm = dspy.LM(
        model,
        api_base=api_base,
        api_key=api_key,
        temperature=fn.temperature if fn.temperature is not None else 0.0,
        max_tokens=fn.max_tokens or options.max_tokens,
        cache=False,
        num_retries=2,
        callbacks=[counter],
        **adapter.lm_arguments(),
    )
    reflection = None
    if options.optimizer in ("gepa", "mipro"):
        reflection = dspy.LM(
            options.reflection_model or model,
            api_base=api_base if options.reflection_model is None else None,
            api_key=api_key if options.reflection_model is None else None,
            temperature=1.0,
            max_tokens=2048,
            cache=False,
            num_retries=2,
            callbacks=[counter],
        )
    student = build_program(fn)
    with dspy.context(lm=lm, adapter=adapter):
        baseline = _score(student, test, judge, progress, "baseline")
        counter.phase = "optimizing"
        compiled = _compile(options, student, train, judge, reflection)
        counter.phase = "optimized"
        optimized = _score(compiled, test, judge, progress, "optimized")
    instructions, demos = learned_parts(compiled, fn, plan.contracts)
    plan_prices = {model: (price.input, price.output) for model, price in plan.prices.items()}
    spent = _spent(lm, reflection, prices={**options.prices, **plan_prices})  # the plan's win, as in a run
    learned = LearnedContext(
        function=fn.name,
        contract_hash=function_contract_hash(fn.input, fn.output, plan.contracts),
        instructions=instructions,
        demos=demos,
        provenance={
            "optimizer": options.optimizer,
            "model": options.model,
            "reflection_model": options.reflection_model if reflection is not None else None,
            "metric": options.metric or "contract, ensure and label",
            "data": {
                "file": Path(examples.source).name,
                "sha256": examples.data_hash,
                "examples": len(examples.items),
                "train": len(train),
                "test": len(test),
                "train_split": options.train_split,
                "seed": options.seed,
            },
            "scores": {"baseline": round(baseline.mean, 4), "optimized": round(optimized.mean, 4), "split": "test"},
            "spent": {
                "calls": spent.calls,
                "tokens_in": spent.tokens_in,
                "tokens_out": spent.tokens_out,
                "cost_usd": spent.cost_usd,
            },
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return OptimizeReport(
        baseline=baseline.mean,
        optimized=optimized.mean,
        train=len(train),
        test=len(test),
        spent=spent,
        learned=learned,
        failures=optimized.failures,
    )


def _endpoint(options: OptimizeOptions) -> tuple[str, str | None, str | None, OutputProfile]:
    """The LiteLLM model, api_base, key and output profile the program calls (the embedded model is started)."""
    from stratum_core.llm import LiteLLMClient
    from stratum_core.llm._local import LITELLM_MODEL, LOCAL_OUTPUT_PROFILE, is_local, shared_local_model

    if is_local(options.model):
        from stratum_core.llm._litellm import register_model

        api_base = shared_local_model().start()
        register_model(LITELLM_MODEL, supports_response_schema=True)
        return LITELLM_MODEL, api_base, "none", LOCAL_OUTPUT_PROFILE
    api_key = options.api_key
    if options.api_base and api_key is None and options.model.startswith("openai/"):
        api_key = os.environ.get("OPENAI_API_KEY") or "no-key"
    profile = LiteLLMClient(output_profiles=options.output_profiles).profile_for(
        options.model, api_base=options.api_base
    )
    return options.model, options.api_base, api_key, profile


@dataclass
class _Scores:
    values: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else 0.0


def _score(program: Any, examples: list[Example], judge: Judge, progress: Progress | None, phase: str) -> _Scores:
    scores = _Scores()
    for index, example in enumerate(examples, start=1):
        judgement = _judge(program, example.input, example.label, judge)
        scores.values.append(judgement.score)
        if judgement.score < 1.0:
            scores.failures.append(f"line {example.line}: {judgement.feedback}")
        if progress is not None:
            progress(phase, index, len(examples))
    return scores


def _judge(program: Any, inputs: Mapping[str, Any], label: Any, judge: Judge) -> Judgement:
    try:
        prediction = program(**inputs)
    except Exception as e:  # the model call failed (transport, provider): a zero, said in the feedback
        return Judgement(0.0, f"The model call failed: {type(e).__name__}: {str(e)[:200]}")
    return judge(str(getattr(prediction, ANSWER, "") or ""), inputs, label)


def _dspy_examples(examples: list[Example], fn_inputs: list[str]) -> list[Any]:
    return [dspy.Example(**dict(e.input), **{ANSWER: e.label}).with_inputs(*fn_inputs) for e in examples]


def _compile(options: OptimizeOptions, student: Any, train: list[Example], judge: Judge, reflection: Any) -> Any:
    (predictor,) = student.predictors()
    inputs = list(predictor.signature.input_fields)
    trainset = _dspy_examples(train, inputs)

    def inputs_of(gold: Any) -> dict[str, Any]:
        return {name: gold[name] for name in inputs}

    def score(gold: Any, prediction: Any, trace: Any = None) -> float:
        return judge(str(getattr(prediction, ANSWER, "") or ""), inputs_of(gold), gold[ANSWER]).score

    def with_feedback(
        gold: Any, prediction: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
    ) -> Any:
        judgement = judge(str(getattr(prediction, ANSWER, "") or ""), inputs_of(gold), gold[ANSWER])
        return dspy.Prediction(score=judgement.score, feedback=judgement.feedback)

    if options.optimizer == "bootstrap":
        teleprompter = dspy.BootstrapFewShot(
            metric=score,
            metric_threshold=1.0,
            max_bootstrapped_demos=options.max_demos,
            max_labeled_demos=options.max_demos,
        )
        compiled = teleprompter.compile(student, trainset=trainset)
    elif options.optimizer == "gepa":
        teleprompter = dspy.GEPA(
            metric=with_feedback,
            reflection_lm=reflection,
            max_metric_calls=options.max_metric_calls,
            reflection_minibatch_size=min(3, len(trainset)),
            num_threads=1,
            seed=options.seed,
            track_stats=False,
        )
        compiled = teleprompter.compile(student, trainset=trainset, valset=trainset)
    else:
        try:
            import optuna  # noqa: F401  # MIPROv2's search needs it
        except ImportError as e:
            raise ConfigurationError("--optimizer mipro needs optuna: pip install 'stratum[optimize]'") from e
        teleprompter = dspy.MIPROv2(
            metric=score,
            prompt_model=reflection,
            auto="light",
            max_bootstrapped_demos=options.max_demos,
            max_labeled_demos=options.max_demos,
            num_threads=1,
            seed=options.seed,
            verbose=False,
        )
        compiled = teleprompter.compile(student, trainset=trainset, requires_permission_to_run=False)
    return compiled


def _spent(*lms: Any, prices: Mapping[str, tuple[float, float]]) -> Spent:
    """Calls, tokens and cost in the models' histories; a call LiteLLM could not price is priced from `prices`."""
    calls = tokens_in = tokens_out = 0
    cost: float | None = 0.0
    for lm in lms:
        if lm is None:
            continue
        configured = prices.get(lm.model)
        for entry in lm.history:
            calls += 1
            usage = entry.get("usage") or {}
            used_in, used_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            tokens_in += used_in
            tokens_out += used_out
            price = entry.get("cost")
            if configured is not None:  # a configured price wins, as in a run (LiteLLM's may be a guess)
                price = (used_in * configured[0] + used_out * configured[1]) / 1_000_000
            cost = None if cost is None or price is None else cost + float(price)
    return Spent(calls, tokens_in, tokens_out, cost)
