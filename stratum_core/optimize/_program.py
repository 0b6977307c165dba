"""The DSPy program for one infer function, speaking Stratum's own prompt.

The program is one `dspy.Predict` whose signature has the function's inputs and one output, `answer` (the raw
JSON text). Its adapter formats every call with Stratum's `compile_messages` (the signature's instructions as the
learned context, DSPy's demos as worked examples) and sends the output contract the way the engine would, so what
the optimizer scores is exactly the prompt a run sends. Imported only by `stratum optimize` (DSPy is an extra).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import dspy

from stratum_core.engine._infer import parse_answer
from stratum_core.engine._prompt import Example, OutputSchema, compile_messages, output_schema, split_opaque
from stratum_core.engine._validation import schema_violations
from stratum_core.llm._structured import OutputStrategy, strategy_arguments
from stratum_core.plan import Contract, InferFunction
from stratum_core.plan._learned import LearnedDemo

__all__ = ["ANSWER", "StratumAdapter", "baseline_instructions", "build_program", "learned_parts"]

ANSWER = "answer"


def baseline_instructions(fn: InferFunction) -> str:
    """The instructions the optimizer starts from: the function's context, else its intent."""
    return "\n".join(line.strip() for line in fn.context) or fn.intent.strip()


class StratumAdapter(dspy.Adapter):  # type: ignore[misc]  # dspy is untyped
    """Formats with Stratum's prompt compiler and asks for the contract with one output strategy; parses nothing.

    The answer goes back whole as `answer`: the metric judges it with Stratum's own parse and checks.
    """

    def __init__(
        self,
        fn: InferFunction,
        contracts: Mapping[str, Contract],
        *,
        strategy: OutputStrategy,
        schema_field: Any,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.contracts = contracts
        self.output = output_schema(fn, contracts)
        self.strategy: OutputStrategy = strategy
        self.schema_field = schema_field
        self.baseline = baseline_instructions(fn)

    def messages(self, instructions: str, demos: Sequence[Mapping[str, Any]], inputs: Mapping[str, Any]) -> list[Any]:
        """The chat messages a run would send for `inputs` with these learned instructions and demos."""
        visible, attachment = split_opaque(
            self.fn.input, {k: inputs[k] for k in self.fn.input if k in inputs}, self.contracts
        )
        examples: list[Example] = []
        for demo in demos:
            parsed = _demo(demo, self.fn, self.output)
            if parsed is not None:
                examples.append((split_opaque(self.fn.input, parsed.input, self.contracts)[0], parsed.output))
        messages = compile_messages(
            intent=self.fn.intent,
            context=self.fn.context,
            visible=visible,
            attachment=attachment,
            wrapped=self.output.wrapped,
            instructions=None if instructions.strip() == self.baseline else instructions,
            examples=examples,
        )
        _, sent = strategy_arguments(
            self.strategy,
            schema=self.output.schema,
            name=self.output.name,
            schema_field=self.schema_field,
            messages=messages,
        )
        return [dict(message) for message in sent]

    def format(self, signature: Any, demos: list[dict[str, Any]], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        return self.messages(str(signature.instructions or ""), demos, inputs)

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        return {ANSWER: completion}

    def lm_arguments(self) -> dict[str, Any]:
        """The request arguments of the output strategy (response_format, extra_body, ...)."""
        arguments, _ = strategy_arguments(
            self.strategy, schema=self.output.schema, name=self.output.name, schema_field=self.schema_field, messages=()
        )
        arguments.pop("drop_params", None)
        return arguments


def build_program(fn: InferFunction) -> Any:
    """A `dspy.Predict` over the function's inputs, with the baseline instructions."""
    fields: dict[str, Any] = {name: (str, dspy.InputField()) for name in fn.input}
    fields[ANSWER] = (str, dspy.OutputField(desc="the answer, as JSON matching the output schema"))
    signature = dspy.make_signature(fields, baseline_instructions(fn), signature_name=f"{fn.name}_signature")
    return dspy.Predict(signature)


def learned_parts(
    program: Any, fn: InferFunction, contracts: Mapping[str, Contract]
) -> tuple[str, tuple[LearnedDemo, ...]]:
    """The instructions (empty when unchanged from the baseline) and the demos a compiled program holds."""
    output = output_schema(fn, contracts)
    (predictor,) = program.predictors()
    instructions = str(predictor.signature.instructions or "").strip()
    if instructions == baseline_instructions(fn):
        instructions = ""
    demos: list[LearnedDemo] = []
    for demo in predictor.demos:
        parsed = _demo(demo, fn, output)
        if parsed is not None:
            demos.append(parsed)
    return instructions, tuple(demos)


def _demo(demo: Any, fn: InferFunction, output: OutputSchema) -> LearnedDemo | None:
    """A DSPy demo (a labelled example, or a bootstrapped trace whose answer is JSON text) as a LearnedDemo.

    Only a demo whose answer meets the output schema is kept: a partial label would teach a partial answer.
    """
    data = dict(demo.items()) if hasattr(demo, "items") else dict(demo)
    if ANSWER not in data or any(name not in data for name in fn.input):
        return None
    answer = data[ANSWER]
    if isinstance(answer, str):
        try:
            answer = parse_answer(answer)
        except ValueError:
            return None
    if output.wrapped and isinstance(answer, Mapping) and set(answer) == {"value"}:
        answer = answer["value"]
    try:
        json.dumps(answer)
    except (TypeError, ValueError):
        return None
    if schema_violations(answer, output.value_schema):
        return None
    return LearnedDemo(input={name: data[name] for name in fn.input}, output=answer)
