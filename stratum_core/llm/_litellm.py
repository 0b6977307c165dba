"""The LiteLLM adapter: the one place that talks to `litellm`, imported lazily on first use.

Transport faults (429, 5xx, dropped connections, timeouts) are retried here with backoff, within the caller's anyio
deadline; anything else the provider rejects becomes an `LLMError` at once. Content is never judged here.
"""

from __future__ import annotations

import email.utils
import importlib
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.to_thread

from stratum_core.errors import BudgetExceeded, LLMError
from stratum_core.llm._protocol import LLMRequest, LLMResponse
from stratum_core.llm._structured import (
    Capabilities,
    OutputProfile,
    OutputStrategy,
    Preference,
    is_strategy_rejection,
    output_profile,
    strategy_arguments,
)

__all__ = ["LiteLLMClient", "load_litellm", "register_model"]

# Status codes worth another try: timeout, conflict (lock contention), rate limit, and every server error.
_RETRIED_STATUS = frozenset({408, 409, 429})
# LiteLLM reports a missing key as a 500; retrying cannot fix it.
_CREDENTIAL_HINTS = ("missing credentials", "api_key client option must be set")
_DETAIL_CHARS = 300
# LiteLLM's wrapping of a provider's message ("litellm.BadRequestError: OpenAIException - ..."), cut in the trace.
_LITELLM_PREFIX = re.compile(r"^litellm\.\w+: (?:\w+Exception - )?")

_litellm: Any = None
_import_lock = threading.Lock()


def load_litellm() -> Any:
    """Import `litellm` once, offline-safe (bundled cost map) and quiet; typed Any as litellm's types are loose."""
    global _litellm
    with _import_lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            module: Any = importlib.import_module("litellm")
            module.suppress_debug_info = True
            _litellm = module
    return _litellm


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
        backoff_max: the longest backoff; a server's Retry-After is honoured as given.
        request_timeout: seconds one HTTP attempt may take.
        structured_output: "auto" (each model's output profile), or a strategy to start every chain at.
        output_profiles: output profiles by model string, overriding Stratum's table and LiteLLM's data (e.g.
            `guided_json` for a vLLM older than 0.12).
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
    ) -> None:
        if max_transport_retries < 0 or backoff_base < 0 or backoff_max < 0 or request_timeout <= 0:
            raise ValueError("retries and backoffs must not be negative, and request_timeout must be positive")
        self.max_transport_retries = max_transport_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.structured_output: Preference = structured_output
        self.output_profiles: dict[str, OutputProfile] = dict(output_profiles or {})
        self._random = random.Random()
        # Strategies a server refused, by (model, api_base): later calls start past them, with the reason kept.
        self._rejected: dict[tuple[str, str | None, OutputStrategy], str] = {}

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Call the model, retrying transport faults; raise `LLMError`, or `BudgetExceeded` if a wait cannot fit.

        With a schema, the strategies of the model's output profile are tried in order: a strategy the provider
        refuses is recorded in `strategy_fallbacks` and the same call is made again with the next one.
        """
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
        litellm = load_litellm()
        capabilities = Capabilities(
            response_schema=_supports_response_schema(litellm, model), json_mode=_supports_json_mode(litellm, model)
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
        """One `acompletion`, with transport retries: the response, the attempt count, the retried errors."""
        errors: list[str] = []
        attempt = first_attempt - 1
        while True:
            attempt += 1
            try:
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
        return LLMResponse(
            content=_content(response),
            model=str(getattr(response, "model", None) or request.model),
            tokens_in=_usage(response, "prompt_tokens"),
            tokens_out=_usage(response, "completion_tokens"),
            cost_usd=_cost(litellm, response, request.model),
            duration_ms=(time.perf_counter() - started) * 1000,
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
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ""
    message = getattr(choices[0], "message", None)
    return str(getattr(message, "content", None) or "")


def _usage(response: Any, field: str) -> int:
    value = getattr(getattr(response, "usage", None), field, None)
    return int(value) if isinstance(value, int | float) else 0


def _cost(litellm: Any, response: Any, model: str) -> float | None:
    """The call's price from LiteLLM's cost data; None when the model has no price (not 0: unknown is not free)."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response, model=model)
        except Exception:  # LiteLLM raises for unmapped models; that means "cost unknown"
            return None
    return float(cost) if isinstance(cost, int | float) else None
