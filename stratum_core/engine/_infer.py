"""The infer step: an LLM call held to an output contract, with given/ensure, targeted retry and a cache.

`run_infer` checks `given` on the inputs, then asks the model for an answer matching the output schema; each
answer is parsed, schema-validated and checked against `ensure`, and a failing one is retried with only its
violations (and their actual values) fed back. refine, quorum and `stable: false` compose on top of that loop
(`_infer_strategies`). Every attempt is recorded in the run store.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from stratum_core.engine._budget import Reservation
from stratum_core.engine._context import StepContext
from stratum_core.engine._defaults import with_defaults
from stratum_core.engine._infer_strategies import compiled, holds, run_strategies
from stratum_core.engine._output_checks import output_violations
from stratum_core.engine._pricing import DEFAULT_MAX_TOKENS, price_for
from stratum_core.engine._prompt import (
    Example,
    Message,
    OutputSchema,
    compile_messages,
    learned_prompt,
    output_schema,
    prompt_hash,
    split_opaque,
)
from stratum_core.engine._python_objects import Condition, violation_of
from stratum_core.engine._validation import schema_violations
from stratum_core.errors import (
    ConfigurationError,
    ExpressionError,
    LLMError,
    ParseFailure,
    PostconditionFailed,
    PreconditionFailed,
    RunError,
)
from stratum_core.expressions._budget import is_small, off_loop
from stratum_core.llm import LLMClient, LLMRequest, LLMResponse
from stratum_core.llm._local import is_local
from stratum_core.llm._protocol import BoundingClient, Quote, QuotingClient, estimate_quote
from stratum_core.plan import InferFunction
from stratum_core.plan._check_opaque import opaque_paths
from stratum_core.plan._schema import content_hash
from stratum_core.store import AttemptRecord
from stratum_core.store._records import now

__all__ = ["parse_answer", "run_infer"]

_INLINE_CHARS = 20_000  # a longer answer is checked in a worker thread (schemas cannot be checked a slice at a time)
_IN_FLIGHT = "cancelled while in flight; its whole reservation is charged"
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL)


async def run_infer(fn: InferFunction, inputs: Mapping[str, Any], ctx: StepContext) -> Any:
    """Run one infer step and return its output.

    The output is the answer itself for an object contract, the plain value for a primitive output, and a
    Probabilistic dict `{"value", "samples", "agreement"}` for `stable: false`. Errors are RunErrors naming the
    step, except a missing model, which is a ConfigurationError saying how to set one.
    """
    failure = await off_loop(_given_failure, fn, inputs, ctx.step_id, inline=is_small(inputs))
    if failure is not None:
        raise failure
    model = ctx.config.model_for(fn.model)
    if ctx.plan.untrusted and model and model not in ctx.config.configured_models:
        allowed = ", ".join(sorted(ctx.config.configured_models)) or "none"
        raise ConfigurationError(
            f"the model '{model}' is not one of the server's configured models ({allowed}), the only ones a plan "
            "sent by a client may use: leave `model:` out to use the server's default",
            step_id=ctx.step_id,
        )
    if not model:
        raise ConfigurationError(
            f"no model configured for infer step '{ctx.step_id}': pass --model or set STRATUM_MODEL "
            "(LiteLLM syntax, e.g. openai/gpt-4.1-mini), or install the embedded local model "
            "(stratum install-local-model)"
        )
    call = _InferCall.prepare(fn, inputs, ctx, model)
    ctx.attributes.setdefault("backend", "server")
    if is_local(model):  # the embedded model: said before any call, so cache hits and unanswered attempts show it
        ctx.attributes["backend"] = "local"

    key = call.cache_key() if fn.cache != "none" else None
    if key is not None:
        cached = _cache_get(ctx, fn, key)
        hit = cached is not None and await off_loop(call.accepts, cached, inline=is_small(cached))
        ctx.attributes["cache_hit"] = hit
        if hit:
            return cached

    output = await run_strategies(fn, inputs, ctx, call.answer)

    if key is not None:
        if fn.cache == "session":
            ctx.session_cache[key] = output
        else:
            ctx.store.cache_put(key, output, contract_hash=call.output.contract_hash)
    return output


def _given_failure(fn: InferFunction, inputs: Mapping[str, Any], step_id: str) -> PreconditionFailed | None:
    env = dict(inputs)
    for text in fn.given:
        expression = compiled(text, step_id=step_id)
        try:
            actual = violation_of(expression, env)
        except ExpressionError as e:
            e.step_id = e.step_id or step_id
            raise
        if actual is not None:
            return PreconditionFailed(f"given: {actual}", condition=text, actual=actual, step_id=step_id)
    return None


def _cache_get(ctx: StepContext, fn: InferFunction, key: str) -> Any:
    if fn.cache == "session":
        return ctx.session_cache.get(key)
    return ctx.store.cache_get(key)


def parse_answer(content: str) -> Any:
    """The JSON value of a model's answer; tolerates a ``` fence around it. Raises ValueError with a short reason."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise ValueError("the answer is empty")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"{e.msg} at line {e.lineno}, column {e.colno}") from e
    if _has_lone_surrogate(value):
        raise ValueError("a string holds an unpaired \\u surrogate escape, which is not valid Unicode")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """True when a string in `value` holds a lone UTF-16 surrogate (JSON allows the escape; Unicode does not)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@dataclass
class _Checked:
    value: Any = None
    violations: list[str] = field(default_factory=list)
    parsed: bool = True


@dataclass
class _InferCall:
    """One infer step's fixed parts, and the validate/retry loop that produces one answer."""

    fn: InferFunction
    inputs: Mapping[str, Any]
    ctx: StepContext
    model: str
    output: OutputSchema
    visible: dict[str, Any]
    attachment: dict[str, Any]
    ensures: tuple[tuple[str, Condition], ...]
    instructions: str | None = None
    examples: tuple[Example, ...] = ()
    hidden: frozenset[tuple[str, ...]] = frozenset()
    """Opaque field paths of the inputs and the result: named in violations, never shown."""

    @classmethod
    def prepare(cls, fn: InferFunction, inputs: Mapping[str, Any], ctx: StepContext, model: str) -> _InferCall:
        visible, attachment = split_opaque(fn.input, inputs, ctx.plan.contracts)
        instructions, examples = learned_prompt(fn, ctx.plan.contracts)
        if fn.learned_context is not None:
            ctx.attributes["learned_hash"] = fn.learned_context.hash
        return cls(
            fn=fn,
            inputs=inputs,
            ctx=ctx,
            model=model,
            output=output_schema(fn, ctx.plan.contracts),
            visible=visible,
            attachment=attachment,
            ensures=tuple((text, compiled(text, step_id=ctx.step_id)) for text in fn.ensure),
            instructions=instructions,
            examples=examples,
            hidden=opaque_paths({**fn.input, "result": fn.output}, ctx.plan.contracts),
        )

    def cache_key(self) -> str:
        fn = self.fn
        return content_hash(
            {
                "function": fn.name,
                "model": self.model,
                "inputs": dict(self.inputs),
                "contract_hash": self.output.contract_hash,
                "intent": fn.intent,
                "context": list(fn.context),
                "learned": fn.learned_context.hash if fn.learned_context else None,
                "temperature": fn.temperature,
                "stable": fn.stable,
            }
        )

    def accepts(self, output: Any) -> bool:
        """True when a cached output still meets the contract, `ensure` and refine's `until`."""
        if not self.fn.stable:
            if not isinstance(output, Mapping) or set(output) != {"value", "samples", "agreement"}:
                return False
            output = output["value"]
        if schema_violations(output, self.output.value_schema):
            return False
        if self._ensure_violations(output):
            return False
        if self.fn.refine is None:
            return True
        until = compiled(self.fn.refine.until, step_id=self.ctx.step_id)
        try:
            return holds(until, {**self.inputs, "result": output}, step_id=self.ctx.step_id)
        except ExpressionError:
            return False

    async def answer(self, *, feedback: str | None = None, kind: str = "infer", seed: int | None = None) -> Any:
        """One answer that meets the contract and `ensure`, retrying with the violations; raises when exhausted."""
        history: list[list[str]] = []
        parsed_any = False
        previous: list[str] = []
        for _ in range(1 + self.fn.retries):
            messages = compile_messages(
                intent=self.fn.intent,
                context=self.fn.context,
                visible=self.visible,
                attachment=self.attachment,
                violations=previous,
                feedback=feedback,
                wrapped=self.output.wrapped,
                instructions=self.instructions,
                examples=self.examples,
            )
            reason = "; ".join(previous) if previous else (f"refine: {feedback}" if feedback else None)
            attempt = _Attempt(self, messages, kind=kind, retry_reason=reason)
            response = await attempt.call(seed=seed)
            checked = await off_loop(self.check, response.content, inline=len(response.content) < _INLINE_CHARS)
            attempt.record(response=response, violations=checked.violations)
            if not checked.violations:
                return checked.value
            parsed_any = parsed_any or checked.parsed
            history.append(checked.violations)
            previous = checked.violations
        raise self._exhausted(history, parsed_any=parsed_any)

    def check(self, content: str) -> _Checked:
        """Parse, schema-validate and `ensure`-check one answer."""
        fn, inputs, project_dir = self.fn, self.inputs, self.ctx.config.project_dir
        return check_answer(
            content,
            output=self.output,
            inputs=inputs,
            ensures=self.ensures,
            output_checks=lambda value: output_violations(fn, value, inputs, project_dir),
            hidden=self.hidden,
        )

    def _ensure_violations(self, value: Any) -> list[str]:
        return ensure_violations(value, inputs=self.inputs, ensures=self.ensures, hidden=self.hidden)

    def _exhausted(self, history: Sequence[Sequence[str]], *, parsed_any: bool) -> PostconditionFailed:
        count = len(history)
        attempts = f"{count} attempt{'s' if count != 1 else ''}"
        last = "; ".join(history[-1]) if history else ""
        if not parsed_any:
            return ParseFailure(
                f"no answer parsed as JSON in {attempts}; last: {last}", history=history, step_id=self.ctx.step_id
            )
        return PostconditionFailed(
            f"the output contract was still not met after {attempts}: {last}",
            history=history,
            step_id=self.ctx.step_id,
        )


def check_answer(
    content: str,
    *,
    output: OutputSchema,
    inputs: Mapping[str, Any],
    ensures: Sequence[tuple[str, Condition]],
    output_checks: Callable[[Any], list[str]] | None = None,
    hidden: Collection[Sequence[str]] = (),
) -> _Checked:
    """Parse, schema-validate and `ensure`-check one answer: what every attempt is judged by (and `optimize`).

    `output_checks` (a reference plan's step output_schema, guardrails and file checks) run between the schema and
    the `ensure`s. Values under `hidden` (opaque) field paths are named in violations, never shown.
    """
    try:
        data = parse_answer(content)
    except ValueError as e:
        return _Checked(violations=[f"parse: the answer is not valid JSON ({e})"], parsed=False)
    value = data
    if output.wrapped and isinstance(data, Mapping) and "value" in data:
        value = data["value"]
    value = with_defaults(value, output.value_schema)  # the contract's `default`s of fields the answer left out
    violations = schema_violations(value, output.value_schema, hidden=hidden)
    if violations:
        return _Checked(violations=violations)
    if output_checks is not None:
        violations = output_checks(value)
        if violations:
            return _Checked(violations=violations)
    return _Checked(value=value, violations=ensure_violations(value, inputs=inputs, ensures=ensures, hidden=hidden))


def ensure_violations(
    value: Any,
    *,
    inputs: Mapping[str, Any],
    ensures: Sequence[tuple[str, Condition]],
    hidden: Collection[Sequence[str]] = (),
) -> list[str]:
    """One text per `ensure` that is false (with the actual values) or cannot be evaluated on `value`."""
    env = {**inputs, "result": value}
    violations: list[str] = []
    for text, expression in ensures:
        try:
            violation = violation_of(expression, env, hidden=hidden)
        except ExpressionError as e:
            violations.append(f"ensure: {text} could not be evaluated: {e.message}")
            continue
        if violation is not None:
            violations.append(f"ensure: {violation}")
    return violations


class _Attempt:
    """One model call within a step: the budget check, the deadline, the usage charge, and its record."""

    def __init__(self, infer: _InferCall, messages: Sequence[Message], *, kind: str, retry_reason: str | None) -> None:
        self.infer = infer
        self.messages = tuple(messages)
        self.kind = kind
        self.retry_reason = retry_reason
        self.prompt_hash = prompt_hash(self.messages)
        self.started_at = now()
        self.clock = anyio.current_time()
        self.reservation: Reservation | None = None
        self.charged: tuple[int, int, float | None] | None = None  # usage charged without a response (unknown)
        self.held: str | None = None  # the key of the reservation written into the run until this is recorded

    async def call(self, *, seed: int | None) -> LLMResponse:
        infer, ctx = self.infer, self.infer.ctx
        request = LLMRequest(
            model=infer.model,
            messages=self.messages,
            schema=infer.output.schema,
            schema_name=infer.output.name,
            temperature=infer.fn.temperature,
            max_tokens=infer.fn.max_tokens,
            api_base=ctx.config.api_base,
            api_key=ctx.config.api_key,
            seed=seed,
        )
        ctx.envelope.check_time(step_id=ctx.step_id)
        client = ctx.llm  # the client is made on first use: not on a cache hit
        quote = await _quote(client, request, ctx)
        price = price_for(infer.model, ctx, quote.price)
        self.reservation = await ctx.reserve(
            model=infer.model,
            prompt_tokens=quote.prompt_tokens,
            wanted_tokens=infer.fn.max_tokens or quote.max_output_tokens or DEFAULT_MAX_TOKENS,
            price=price,
        )
        request = dataclasses.replace(request, max_tokens=self.reservation.max_tokens)
        self.started_at = now()
        self.clock = anyio.current_time()
        self.held = ctx.hold(self.reservation, kind=self.kind, started_at=self.started_at)
        deadline = ctx.envelope.deadline
        response: LLMResponse | None = None
        try:
            with anyio.CancelScope(deadline=deadline):
                response = await client.complete(request)
        except anyio.get_cancelled_exc_class():
            # An enclosing scope with the same deadline (the scheduler's) is cancelled at the same moment and would
            # catch it first, losing the step's name; past the deadline, the cancellation is this budget running out.
            timed_out = anyio.current_time() >= deadline
            with anyio.CancelScope(shield=True):
                self.settle_unknown(_IN_FLIGHT, record=not timed_out)
            if not timed_out:
                raise
            timeout = ctx.envelope.timeout_error(step_id=ctx.step_id)
            self.record(error=timeout.message)
            raise timeout from None
        except RunError as e:
            e.step_id = e.step_id or ctx.step_id
            transport = e.attempts if isinstance(e, LLMError) else 1
            if isinstance(e, LLMError) and e.usage_unknown:
                self.settle_unknown(e.message, transport_attempts=transport)
            else:
                ctx.envelope.settle(self.reservation, tokens_in=0, tokens_out=0, cost_usd=0.0)
                self.record(error=e.message, transport_attempts=transport)
            raise
        except Exception as e:  # a client that broke its protocol: still an error that names the step
            error = LLMError(f"the model call failed: {e}", model=infer.model, attempts=1, step_id=ctx.step_id)
            self.settle_unknown(error.message)
            raise error from e
        if response is None:  # the deadline passed while the call was in flight
            self.settle_unknown(_IN_FLIGHT, record=False)
            timeout = ctx.envelope.timeout_error(step_id=ctx.step_id)
            self.record(error=timeout.message)
            raise timeout
        if response.backend:  # the client's word on who answered wins
            ctx.attributes["backend"] = response.backend
        _, _, cost = ctx.envelope.settle(
            self.reservation, tokens_in=response.tokens_in, tokens_out=response.tokens_out, cost_usd=response.cost_usd
        )
        return dataclasses.replace(response, cost_usd=cost)

    def settle_unknown(self, error: str, *, transport_attempts: int = 1, record: bool = True) -> None:
        """Charge the whole reservation of a call whose usage cannot be known, and record the attempt so."""
        if self.reservation is None or self.reservation.settled:
            if record:
                self.record(error=error, transport_attempts=transport_attempts)
            return
        tokens_in, tokens_out, cost = self.infer.ctx.envelope.settle_unknown(self.reservation)
        self.charged = (tokens_in, tokens_out, cost)
        if record:
            self.record(error=error, transport_attempts=transport_attempts)

    def record(
        self,
        *,
        response: LLMResponse | None = None,
        violations: Sequence[str] = (),
        error: str | None = None,
        transport_attempts: int = 1,
    ) -> None:
        infer, ctx = self.infer, self.infer.ctx
        elapsed_ms = (anyio.current_time() - self.clock) * 1000
        tokens_in, tokens_out, cost = (
            (response.tokens_in, response.tokens_out, response.cost_usd) if response else self.charged or (0, 0, 0.0)
        )
        reservation = self.reservation
        ctx.record_attempt(
            AttemptRecord(
                run_id=ctx.run_id,
                step_id=ctx.step_id,
                number=ctx.next_attempt_number(),  # taken and recorded with no await between: unique under quorum
                kind=self.kind,
                model=infer.model,
                prompt_hash=self.prompt_hash,
                contract_hash=infer.output.contract_hash,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost,
                reserved_tokens=reservation.tokens if reservation else None,
                reserved_usd=reservation.usd if reservation and reservation.price is not None else None,
                duration_ms=response.duration_ms if response else elapsed_ms,
                started_at=self.started_at,
                raw_output=response.content if response else None,
                violations=list(violations),
                retry_reason=self.retry_reason,
                transport_attempts=response.transport_attempts if response else transport_attempts,
                transport_errors=list(response.transport_errors) if response else [],
                error=error,
                backend=str(ctx.attributes.get("backend") or "server"),
                output_strategy=_strategy(response),
                strategy_fallbacks=list(response.strategy_fallbacks) if response else [],
            )
        )
        if self.held is not None:  # recorded with what it used: the reservation is no longer the charge
            ctx.release(self.held)
            self.held = None


async def _quote(client: LLMClient, request: LLMRequest, ctx: StepContext) -> Quote:
    """The call's quote: its prompt counted by the tokenizer when a budget limits tokens or cost, else a bound.

    Without such a limit the count changes nothing the call sends or may spend, and the tokenizer costs about as much
    CPU as the rest of a call; the bound (the prompt's bytes, see `prompt_bytes_bound`) is at least the count, so the
    reservation recorded for the call stays a worst case.
    """
    if isinstance(client, BoundingClient) and not ctx.envelope.limits_tokens_or_cost():
        bound = await client.quote_bound(request)
        if bound is not None:
            return bound
    return await client.quote(request) if isinstance(client, QuotingClient) else estimate_quote(request)


def _strategy(response: LLMResponse | None) -> str | None:
    """The output strategy an answer came by, for the trace (None for free text or no answer)."""
    if response is None or response.structured_output == "none":
        return None
    return response.structured_output
