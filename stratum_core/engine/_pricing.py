"""Which price a model call is reserved and charged at: the plan's, the server's configuration, or LiteLLM's map."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratum_core.llm._protocol import Price

if TYPE_CHECKING:
    from stratum_core.engine._context import StepContext

__all__ = ["DEFAULT_MAX_TOKENS", "price_for"]

DEFAULT_MAX_TOKENS = 4096
"""The most output tokens a call asks for when neither the function (`max_tokens`) nor the model's known limit says."""


def price_for(model: str, ctx: StepContext, quoted: Price | None) -> Price | None:
    """The price of `model`: the plan's `prices:`, else the engine's configured prices, else what the client quoted.

    None means no price is known: under a cost budget the call is refused unless unpriced calls are allowed.
    """
    given = ctx.plan.prices.get(model)
    if given is not None:
        return Price.per_million(given.input, given.output)
    configured = ctx.config.prices.get(model)
    if configured is not None:
        return Price.per_million(*configured)
    return quoted
