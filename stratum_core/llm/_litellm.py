"""The LiteLLM adapter: the one place that talks to `litellm`, imported lazily (or in the background) on first use.

Transport faults (429, 5xx, dropped connections, timeouts) are retried here with backoff, within the caller's anyio
deadline and never longer than the client's own caps (`call_timeout`, `max_wait`); anything else the provider
rejects becomes an `LLMError` at once. Content is never judged here, but usage is: a provider reporting negative or
absurd token counts or cost fails that attempt. `quote` prices a request before it is made (the model's tokenizer
through LiteLLM's token counting, and its price), for the engine's budget reservations.
"""

from __future__ import annotations

import contextlib
import email.utils
import importlib
import json
import logging
import math
import os
import random
import re
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.to_thread

from stratum_core.errors import BudgetExceeded, LLMError
from stratum_core.llm._openai_http import ChatResponse, ConnectionFailed, TimedOut, lean_model_name, send_chat
from stratum_core.llm._protocol import LLMRequest, LLMResponse, Price, Quote, prompt_bytes_bound
from stratum_core.llm._structured import (
    Capabilities,
    OutputProfile,
    OutputStrategy,
    Preference,
    is_strategy_rejection,
    output_profile,
    strategy_arguments,
)

__all__ = ["LiteLLMClient", "import_in_background", "load_litellm", "register_model"]

logger = logging.getLogger("stratum.llm")

# Status codes worth another try: timeout, conflict (lock contention), rate limit, and every server error.
_RETRIED_STATUS = frozenset({408, 409, 429})
# LiteLLM reports a missing key as a 500; retrying cannot fix it.
_CREDENTIAL_HINTS = ("missing credentials", "api_key client option must be set")
_DETAIL_CHARS = 300
# LiteLLM's wrapping of a provider's message ("litellm.BadRequestError: OpenAIException - ..."), cut in the trace.
_LITELLM_PREFIX = re.compile(r"^litellm\.\w+: (?:\w+Exception - )?")
# More tokens than any model takes or gives in one call: a provider reporting this many is broken, not expensive.
_ABSURD_TOKENS = 100_000_000
_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
# Imported by LiteLLM on its first call to an OpenAI-compatible server, so imported with LiteLLM instead.
_FIRST_CALL_MODULES = ("openai", "httpx", "aiohttp", "litellm.llms.openai.openai")
_ABANDONED_COROUTINE = r"coroutine '\w+\.acompletion' was never awaited"

_litellm: Any = None
_import_lock = threading.Lock()
_background: threading.Thread | None = None
# What LiteLLM's data says of a model, looked up once per model: (price per token in, out, cached in) or None
# (unpriced). `register_model` clears it, as it changes that data.
_token_prices: dict[str, tuple[float, float, float] | None] = {}
# `_model_info` by model: LiteLLM's lookup walks its provider logic on every call (about 0.6 ms); `register_model`
# clears both caches.
_model_infos: dict[str, tuple[Price | None, int | None]] = {}


def load_litellm() -> Any:
    """Import `litellm` once, offline-safe (bundled cost map) and quiet; typed Any as litellm's types are loose.

    Quiet: LiteLLM's own loggers are set to WARNING unless `LITELLM_LOG` asks for more (Stratum logs one DEBUG line
    per call on `stratum.llm`), and its tokenizer is loaded here, so the first `quote` does not pay for it.
    """
    global _litellm
    with _import_lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            module: Any = importlib.import_module("litellm")
            module.suppress_debug_info = True
            # LiteLLM builds a provider's request coroutine in a worker thread and awaits it afterwards; a call
            # cancelled during that hand-off (a budget stopping parallel calls) leaves the coroutine unawaited. Its
            # request was never sent and nothing leaks, so the warning says nothing a user can act on.
            warnings.filterwarnings("ignore", message=_ABANDONED_COROUTINE, category=RuntimeWarning)
            if not os.environ.get("LITELLM_LOG"):
                for name in _LITELLM_LOGGERS:
                    logging.getLogger(name).setLevel(logging.WARNING)
            try:  # loads the default tokenizer's tables (a fraction of a second, once)
                module.token_counter(model="gpt-4o-mini", text="warm up")
            except Exception:  # a tokenizer that cannot load makes every quote an estimate, not a failure
                logger.debug("LiteLLM's tokenizer did not load", exc_info=True)
            for name in _FIRST_CALL_MODULES:  # what the first call would import: seconds on a busy machine
                try:
                    importlib.import_module(name)
                except ImportError:
                    logger.debug("could not import %s ahead of the first call", name, exc_info=True)
            _litellm = module
    return _litellm


def import_in_background() -> None:
    """Start importing LiteLLM in a daemon thread (once), so that the first model call does not wait for it.

    `stratum serve` and `stratum run` call this as they start when a model is configured; a call made before the
    import finished waits for it (outside any budget: the engine gets the client ready before its clock starts).
    """
    global _background
    with _import_lock:
        if _litellm is not None or _background is not None:
            return
        _background = threading.Thread(target=_load_quietly, name="stratum-litellm-import", daemon=True)
        _background.start()


def _load_quietly() -> None:
    try:
        load_litellm()
    except Exception:  # the first call will import again and report the failure where it matters
        logger.debug("importing LiteLLM in the background failed", exc_info=True)


def register_model(
    model: str,
    *,
    input_cost_per_token: float = 0.0,
    output_cost_per_token: float = 0.0,
    supports_response_schema: bool = True,
) -> None:
    """Teach LiteLLM a model's price and abilities (a local or test model), process-wide.

    The provider is the model string's prefix (`openai/...`), else openai. Cached-token prices are set to the input
    price, a safe upper bound that also keeps LiteLLM from warning about them.
    """
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    _token_prices.clear()
    _model_infos.clear()
    load_litellm().register_model(
        {
            model: {
                "input_cost_per_token": input_cost_per_token,
                "output_cost_per_token": output_cost_per_token,
                "cache_creation_input_token_cost": input_cost_per_token,
                "cache_read_input_token_cost": input_cost_per_token,
                "litellm_provider": provider,
                "mode": "chat",
                "supports_response_schema": supports_response_schema,
            }
        }
    )


@dataclass(frozen=True)
class _Failure:
    """A failed attempt, as the retry loop sees it."""

    summary: str  # "429 rate limited"
    detail: str  # the provider's message, shortened
    retryable: bool
    retry_after: float | None
    strategy_rejected: bool = False  # the provider refused the output strategy: fall back to the next one


class _StrategyRejected(Exception):
    """The provider refused an output strategy; carries what the next strategy's call continues from."""

    def __init__(self, reason: str, attempt: int, errors: list[str]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempt = attempt
        self.errors = errors


class LiteLLMClient:
    """An `LLMClient` over `litellm.acompletion`.

    Args:
        max_transport_retries: extra attempts after a transport fault (so at most this + 1 calls).
        backoff_base: first backoff in seconds; it doubles per retry, with jitter, up to `backoff_max`.
        backoff_max: the longest backoff; a server's Retry-After is honoured up to `max_wait`.
        request_timeout: seconds one HTTP attempt may take.
        structured_output: "auto" (each model's output profile), or a strategy to start every chain at.
        output_profiles: output profiles by model string, overriding Stratum's table and LiteLLM's data (e.g.
            `guided_json` for a vLLM older than 0.12).
        call_timeout: seconds the whole call (every transport attempt and wait) may take when the caller's budget
            sets no earlier deadline.
        max_wait: the longest wait before a retry; a server asking for longer (`Retry-After`) fails the call.
        default_max_tokens: the most output tokens a request asks for when neither it nor the model's known limit
            says.
    """

    def __init__(
        self,
        *,
        max_transport_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        request_timeout: float = 120.0,
        structured_output: Preference = "auto",
        output_profiles: Mapping[str, OutputProfile] | None = None,
        call_timeout: float = 300.0,
        max_wait: float = 30.0,
        default_max_tokens: int = 4096,
    ) -> None:
        if max_transport_retries < 0 or backoff_base < 0 or backoff_max < 0 or max_wait < 0:
            raise ValueError("retries, backoffs and max_wait must not be negative")
        if request_timeout <= 0 or call_timeout <= 0 or default_max_tokens <= 0:
            raise ValueError("request_timeout, call_timeout and default_max_tokens must be positive")
        self.max_transport_retries = max_transport_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.structured_output: Preference = structured_output
        self.output_profiles: dict[str, OutputProfile] = dict(output_profiles or {})
        self.call_timeout = call_timeout
        self.max_wait = max_wait
        self.default_max_tokens = default_max_tokens
        self._random = random.Random()
        # Strategies a server refused, by (model, api_base): later calls start past them, with the reason kept.
        self._rejected: dict[tuple[str, str | None, OutputStrategy], str] = {}
        # LiteLLM's capability data, asked once per (model, api_base) rather than on every call.
        self._capabilities: dict[str, Capabilities] = {}

    async def prepare(self, model: str) -> None:
        """Import LiteLLM (waiting for a background import under way) before a budget's clock starts."""
        if _litellm is None:
            await anyio.to_thread.run_sync(load_litellm)

    async def quote(self, request: LLMRequest) -> Quote:
        """The request's prompt tokens as it may be sent, by the model's tokenizer; the model's price.

        The prompt is counted as each output strategy the call may fall back to would send it (messages, and the
        schema in the request or in the prompt), and the largest count is quoted: the reservation is a worst case.
        """
        litellm = _litellm if _litellm is not None else await anyio.to_thread.run_sync(load_litellm)
        exact = True
        tokens = 0
        for messages, schema_part in self._variants(request):
            try:
                count = int(litellm.token_counter(model=request.model, messages=messages))
                if schema_part is not None:
                    count += int(litellm.token_counter(model=request.model, text=json.dumps(schema_part, default=str)))
            except Exception:  # no tokenizer for this model: a generous estimate (about 2 characters a token)
                exact = False
                text = json.dumps(messages, default=str) + (json.dumps(schema_part, default=str) if schema_part else "")
                count = math.ceil(len(text) / 2)
            tokens = max(tokens, count)
        price, most = _model_info(litellm, request.model)
        return Quote(prompt_tokens=tokens, price=price, max_output_tokens=most or self.default_max_tokens, exact=exact)

    async def quote_bound(self, request: LLMRequest) -> Quote | None:
        """Like `quote`, with the prompt bounded by its bytes (`prompt_bytes_bound`) instead of the tokenizer.

        The tokenizer costs about as much CPU as the rest of a call (1 to 2 ms for a small prompt); the bound, a few
        microseconds. At least as large as `quote`'s count, including its estimate when there is no tokenizer.
        """
        litellm = _litellm if _litellm is not None else await anyio.to_thread.run_sync(load_litellm)
        tokens = 0
        for messages, schema_part in self._variants(request):
            bound = prompt_bytes_bound(messages, schema_part)
            if bound is None:
                return None
            text = json.dumps(messages, default=str) + (json.dumps(schema_part, default=str) if schema_part else "")
            tokens = max(tokens, bound, math.ceil(len(text) / 2))
        price, most = _model_info(litellm, request.model)
        return Quote(prompt_tokens=tokens, price=price, max_output_tokens=most or self.default_max_tokens, exact=False)

    def _variants(self, request: LLMRequest) -> list[tuple[list[dict[str, Any]], Any]]:
        """The prompt as each output strategy the call may fall back to would send it: messages, and the schema."""
        if request.schema is None:
            return [([dict(m) for m in request.messages], None)]
        variants: list[tuple[list[dict[str, Any]], Any]] = []
        profile = self.profile_for(request.model, api_base=request.api_base)
        for strategy in profile.strategies:
            extra, sent = strategy_arguments(
                strategy,
                schema=request.schema,
                name=request.schema_name,
                schema_field=profile.schema_field,
                messages=request.messages,
            )
            variants.append(([dict(m) for m in sent], extra or None))
        return variants

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Call the model, retrying transport faults; raise `LLMError`, or `BudgetExceeded` if a wait cannot fit.

        With a schema, the strategies of the model's output profile are tried in order: a strategy the provider
        refuses is recorded in `strategy_fallbacks` and the same call is made again with the next one. Without a
        time budget, the whole call is capped at `call_timeout`.
        """
        with anyio.move_on_after(self.call_timeout):
            return await self._complete(request)
        raise LLMError(
            f"model '{request.model}' did not answer within {self.call_timeout:g}s (the longest one call may take "
            "when no time budget ends it sooner)",
            model=request.model,
            attempts=1,
        )

    async def _complete(self, request: LLMRequest) -> LLMResponse:
        litellm = _litellm if _litellm is not None else await anyio.to_thread.run_sync(load_litellm)
        started = time.perf_counter()
        if request.schema is None:
            response, attempts, errors = await self._call(litellm, request, self._base_arguments(request), started)
            return self._response(litellm, request, response, started, attempts, errors, "none", ())
        profile = self.profile_for(request.model, api_base=request.api_base)
        fallbacks: list[str] = []
        attempts_before = 0
        errors_before: list[str] = []
        strategies = profile.strategies
        for index, strategy in enumerate(strategies):
            last = index == len(strategies) - 1
            key = (request.model, request.api_base, strategy)
            if key in self._rejected and not last:
                fallbacks.append(f"{strategy}: {self._rejected[key]} (refused earlier; not tried again)")
                continue
            extra, messages = strategy_arguments(
                strategy,
                schema=request.schema,
                name=request.schema_name,
                schema_field=profile.schema_field,
                messages=request.messages,
            )
            kwargs = {**self._base_arguments(request), **extra, "messages": [dict(m) for m in messages]}
            try:
                response, attempts, errors = await self._call(
                    litellm, request, kwargs, started, may_reject=not last, first_attempt=attempts_before + 1
                )
            except _StrategyRejected as rejected:
                self._rejected[key] = rejected.reason
                fallbacks.append(f"{strategy}: {rejected.reason}")
                attempts_before = rejected.attempt
                errors_before.extend(rejected.errors)
                continue
            return self._response(
                litellm, request, response, started, attempts, [*errors_before, *errors], strategy, tuple(fallbacks)
            )
        raise AssertionError("the last strategy never falls back")  # pragma: no cover

    def profile_for(self, model: str, *, api_base: str | None) -> OutputProfile:
        """The output profile used for `model`: configured, Stratum's table, or LiteLLM's data; then the preference."""
        capabilities = self._capabilities.get(model)
        if capabilities is None:
            litellm = load_litellm()
            capabilities = self._capabilities[model] = Capabilities(
                response_schema=_supports_response_schema(litellm, model),
                json_mode=_supports_json_mode(litellm, model),
            )
        configured = self.output_profiles.get(model)
        profile = output_profile(model, api_base=api_base, capabilities=capabilities, configured=configured)
        return profile.starting_at(self.structured_output)

    async def _call(
        self,
        litellm: Any,
        request: LLMRequest,
        kwargs: dict[str, Any],
        started: float,
        *,
        may_reject: bool = False,
        first_attempt: int = 1,
    ) -> tuple[Any, int, list[str]]:
        """One `acompletion`, with transport retries: the response, the attempt count, the retried errors.

        A call to an OpenAI-compatible server on an api_base takes the lean path (`send_chat`): the same request,
        without LiteLLM's layers.
        """
        errors: list[str] = []
        attempt = first_attempt - 1
        lean = lean_model_name(request.model, request.api_base)
        while True:
            attempt += 1
            try:
                if lean is not None:
                    return await send_chat(lean, kwargs, api_key=kwargs.get("api_key")), attempt, errors
                return await litellm.acompletion(**kwargs), attempt, errors
            except Exception as e:  # the LiteLLM boundary: every failure is classified, none escapes raw
                failure = _classify(litellm, e, self.request_timeout)
                if failure.strategy_rejected and may_reject:
                    reason = f"{failure.summary}: {_provider_message(failure.detail)}"
                    raise _StrategyRejected(reason, attempt, errors) from e
                if not failure.retryable:
                    raise LLMError(
                        f"model '{request.model}' failed: {failure.summary}: {failure.detail}",
                        model=request.model,
                        attempts=attempt,
                    ) from e
                if attempt > self.max_transport_retries + first_attempt - 1:
                    raise LLMError(
                        f"model '{request.model}' failed after {attempt} attempts; last error: "
                        f"{failure.summary}: {failure.detail}",
                        model=request.model,
                        attempts=attempt,
                    ) from e
                wait = self._backoff(attempt, failure.retry_after)
                if wait > self.max_wait:
                    raise LLMError(
                        f"model '{request.model}': {failure.summary}; the server asked to wait {wait:g}s before "
                        f"retrying, longer than the {self.max_wait:g}s this client waits",
                        model=request.model,
                        attempts=attempt,
                    ) from e
                if (late := _past_deadline(request.model, failure, wait, started)) is not None:
                    raise late from e
                errors.append(f"{failure.summary}, retried after {wait:.2f}s")
                await anyio.sleep(wait)

    def _response(
        self,
        litellm: Any,
        request: LLMRequest,
        response: Any,
        started: float,
        attempts: int,
        errors: list[str],
        strategy: OutputStrategy | Literal["none"],
        fallbacks: tuple[str, ...],
    ) -> LLMResponse:
        tokens_in, tokens_out, cost = _checked_usage(litellm, response, request.model, attempts)
        duration_ms = (time.perf_counter() - started) * 1000
        logger.debug(
            "model call: %s, %d+%d tokens, %s, %.0f ms, %d transport attempt%s",
            request.model,
            tokens_in,
            tokens_out,
            "cost unknown" if cost is None else f"${cost:.6f}",
            duration_ms,
            attempts,
            "" if attempts == 1 else "s",
        )
        return LLMResponse(
            content=_content(response),
            model=str(getattr(response, "model", None) or request.model),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            duration_ms=duration_ms,
            transport_attempts=attempts,
            transport_errors=tuple(errors),
            structured_output=strategy,
            strategy_fallbacks=fallbacks,
        )

    def _base_arguments(self, request: LLMRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": request.model, "num_retries": 0, "timeout": self.request_timeout}
        optional = {
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
            "api_base": request.api_base,
            "api_key": request.api_key,
        }
        kwargs.update({name: value for name, value in optional.items() if value is not None})
        if (
            request.api_base is not None
            and request.api_key is None
            and request.model.startswith("openai/")
            and not os.environ.get("OPENAI_API_KEY")
        ):
            kwargs["api_key"] = "no-key"  # OpenAI-compatible local servers need none, but the OpenAI SDK insists
        kwargs["messages"] = [dict(m) for m in request.messages]
        return kwargs

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)


def _past_deadline(model: str, failure: _Failure, wait: float, started: float) -> BudgetExceeded | None:
    """Refuse to sleep into a cancellation: the error to raise when a wait would cross the caller's deadline.

    `limit` is the time this call had (elapsed + left), `used` what the retry would have needed, both in ms.
    """
    deadline = anyio.current_effective_deadline()
    now = anyio.current_time()
    if math.isinf(deadline) or now + wait < deadline:
        return None
    elapsed_ms = (time.perf_counter() - started) * 1000
    left_ms = max(0.0, (deadline - now) * 1000)
    return BudgetExceeded(
        f"model '{model}': {failure.summary}; waiting {wait:.2f}s to retry would pass the deadline "
        f"({left_ms:.0f} ms left)",
        dimension="ms",
        limit=elapsed_ms + left_ms,
        used=elapsed_ms + wait * 1000,
    )


def _classify(litellm: Any, error: Exception, request_timeout: float) -> _Failure:
    detail = _detail(error)
    status = getattr(error, "status_code", None)
    status = status if isinstance(status, int) else None
    retry_after = _retry_after(error)
    if isinstance(error, TimedOut):
        return _Failure(f"timeout after {request_timeout:g}s", detail, True, None)
    if isinstance(error, ConnectionFailed):
        return _Failure("connection error", detail, True, None)
    if not isinstance(error, litellm.Timeout | litellm.RateLimitError) and is_strategy_rejection(status, detail):
        return _Failure(f"{status or 'error'} {_status_text(status or 400)}", detail, False, None, True)
    if isinstance(error, litellm.Timeout):
        return _Failure(f"timeout after {request_timeout:g}s", detail, True, retry_after)
    if isinstance(error, litellm.RateLimitError) or status == 429:
        return _Failure("429 rate limited", detail, True, retry_after)
    if any(hint in detail.lower() for hint in _CREDENTIAL_HINTS):
        return _Failure("no API key", detail, False, None)
    if isinstance(error, litellm.APIConnectionError) or "connection error" in detail.lower():
        return _Failure("connection error", detail, True, retry_after)
    if status is not None and (status >= 500 or status in _RETRIED_STATUS):
        return _Failure(f"{status} {_status_text(status)}", detail, True, retry_after)
    if status is not None:
        return _Failure(f"{status} {_status_text(status)}", detail, False, None)
    openai = importlib.import_module("openai")
    if isinstance(error, openai.APIConnectionError | openai.APITimeoutError):
        return _Failure("connection error", detail, True, retry_after)
    return _Failure(f"unexpected {type(error).__name__}", detail, False, None)


def _status_text(status: int) -> str:
    texts = {
        400: "bad request",
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        408: "request timeout",
        409: "conflict",
        422: "unprocessable",
        500: "server error",
        502: "bad gateway",
        503: "service unavailable",
        504: "gateway timeout",
    }
    return texts.get(status, "server error" if status >= 500 else "client error")


def _detail(error: Exception) -> str:
    text = str(getattr(error, "message", None) or error) or type(error).__name__
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _provider_message(detail: str) -> str:
    """The provider's own words in a LiteLLM error: its wrapping cut, a JSON error body reduced to its message."""
    text = _LITELLM_PREFIX.sub("", detail)
    try:
        body = json.loads(text)
    except ValueError:
        return text
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    return message if isinstance(message, str) and message else text


def _retry_after(error: Exception) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms` or `Retry-After`, seconds or HTTP date), if any."""
    for source in (getattr(getattr(error, "response", None), "headers", None), getattr(error, "headers", None)):
        if not source:
            continue
        try:
            headers = {str(k).lower(): str(v) for k, v in source.items()}
        except (AttributeError, TypeError):
            continue
        if "retry-after-ms" in headers:
            try:
                return float(headers["retry-after-ms"]) / 1000
            except ValueError:
                pass
        if "retry-after" in headers:
            value = headers["retry-after"]
            try:
                return float(value)
            except ValueError:
                try:
                    return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
                except (TypeError, ValueError):
                    pass
    return None


def _supports_response_schema(litellm: Any, model: str) -> bool:
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # an unknown model is "no", however LiteLLM says it
        return False


def _supports_json_mode(litellm: Any, model: str) -> bool:
    try:
        return "response_format" in (litellm.get_supported_openai_params(model=model) or ())
    except Exception:  # an unknown provider: JSON mode may still work; the text strategy follows if refused
        return True


def _content(response: Any) -> str:
    if isinstance(response, ChatResponse):
        return response.content
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ""
    message = getattr(choices[0], "message", None)
    return str(getattr(message, "content", None) or "")


def _checked_usage(litellm: Any, response: Any, model: str, attempts: int) -> tuple[int, int, float | None]:
    """The tokens and cost a response reports; LLMError (for this attempt) when they are negative or absurd."""
    problems: list[str] = []
    counts: list[int] = []
    for field in ("prompt_tokens", "completion_tokens"):
        value = getattr(getattr(response, "usage", None), field, None)
        if value is None:
            counts.append(0)
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"{field} is {value!r}")
            counts.append(0)
        elif value < 0 or value > _ABSURD_TOKENS or value != int(value):
            problems.append(f"{field} is {value!r}")
            counts.append(0)
        else:
            counts.append(int(value))
    cost = None if problems else _cost(litellm, response, model)
    if cost is not None and (not math.isfinite(cost) or cost < 0):
        problems.append(f"its cost is {cost!r}")
    if problems:
        error = LLMError(
            f"model '{model}' reported impossible usage ({', '.join(problems)}); the answer is not used",
            model=model,
            attempts=attempts,
            usage_unknown=True,
        )
        raise error
    return counts[0], counts[1], cost


def _model_info(litellm: Any, model: str) -> tuple[Price | None, int | None]:
    """The model's price per token and its output limit, from LiteLLM's price map (None where it does not say)."""
    found = _model_infos.get(model)
    if found is None:
        found = _model_infos[model] = _looked_up_model_info(litellm, model)
    return found


def _looked_up_model_info(litellm: Any, model: str) -> tuple[Price | None, int | None]:
    try:
        info = litellm.get_model_info(model=model)
    except Exception:  # an unmapped model: LiteLLM raises; its price is unknown
        return None, None
    most = info.get("max_output_tokens") or info.get("max_tokens")
    most = int(most) if isinstance(most, int | float) and most > 0 else None
    given_in, given_out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not isinstance(given_in, int | float) and not isinstance(given_out, int | float):
        return None, most
    price = Price(
        float(given_in) if isinstance(given_in, int | float) else 0.0,
        float(given_out) if isinstance(given_out, int | float) else 0.0,
    )
    return price, most


def _cost(litellm: Any, response: Any, model: str) -> float | None:
    """The call's price from LiteLLM's cost data; None when the model has no price (not 0: unknown is not free)."""
    if isinstance(response, ChatResponse):
        return _lean_cost(litellm, response, model)
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response, model=model)
        except Exception:  # LiteLLM raises for unmapped models; that means "cost unknown"
            return None
    return float(cost) if isinstance(cost, int | float) else None


def _lean_cost(litellm: Any, response: ChatResponse, model: str) -> float | None:
    """A lean-path call's price by LiteLLM's price map, looked up once per model.

    Tokens in (cached ones at the cached price) and out, as LiteLLM prices a chat completion; None for a model the
    map does not price (unknown is not free).
    """
    if model not in _token_prices:
        price, _ = _model_info(litellm, model)
        cached: Any = None
        if price is not None:
            with contextlib.suppress(Exception):  # priced, so mapped; no cached price means the input price
                cached = litellm.get_model_info(model=model).get("cache_read_input_token_cost")
        _token_prices[model] = (
            None
            if price is None
            else (
                price.input_per_token,
                price.output_per_token,
                float(cached) if isinstance(cached, int | float) else price.input_per_token,
            )
        )
    prices = _token_prices[model]
    if prices is None:
        return None
    per_in, per_out, per_cached = prices
    usage = response.usage  # checked by `_checked_usage` before it prices the call
    prompt, completion = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
    cached_tokens = usage.cached_tokens if isinstance(usage.cached_tokens, int) and usage.cached_tokens > 0 else 0
    cached_tokens = min(cached_tokens, prompt)
    return (prompt - cached_tokens) * per_in + cached_tokens * per_cached + completion * per_out
