"""`stratum validate`'s budget warnings: a model with no known price under a cost budget is refused at run time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from stratum_core.llm._price_map import has_known_price
from stratum_core.plan import Budget, CallStep, DebateStep, ForEachStep, InferFunction, ParallelStep, Plan, RaceStep

__all__ = ["unpriced_warnings"]


def _calls(step: object) -> Iterator[CallStep]:
    if isinstance(step, CallStep):
        yield step
    elif isinstance(step, ParallelStep):
        yield from step.parallel.steps
    elif isinstance(step, RaceStep):
        yield from step.race
    elif isinstance(step, ForEachStep):
        yield step.step


def _costed(budget: Budget | None) -> bool:
    return budget is not None and budget.usd is not None and budget.unpriced != "allow"


def _functions_under_cost_budgets(plan: Plan) -> dict[str, str]:
    """Infer functions whose calls run under a cost budget that refuses unpriced models, with that budget's owner."""
    found: dict[str, str] = {}

    def add(name: str | None, owner: str) -> None:
        if name is not None and isinstance(plan.functions.get(name), InferFunction):
            found.setdefault(name, owner)

    for name, fn in plan.functions.items():
        if _costed(fn.budget):
            add(name, f"function '{name}'")
    for flow in plan.flows.values():
        allowed = flow.budget is not None and flow.budget.unpriced == "allow"
        for step in flow.steps:
            owner = f"flow '{flow.name}'" if _costed(flow.budget) else None
            if isinstance(step, DebateStep) and owner is not None:
                for agent in (*step.debate.agents, step.debate.synthesize):
                    add(agent, owner)
            for call in _calls(step):
                here = f"step '{call.id}' of flow '{flow.name}'" if _costed(call.budget) else owner
                if here is not None and not allowed and call.function is not None:
                    add(call.function, here)
    return found


def unpriced_warnings(
    plan: Plan, *, default_model: str | None, prices: Mapping[str, object], allow_unpriced: bool
) -> list[str]:
    """One warning per infer function whose model has no known price but runs under a cost budget."""
    if allow_unpriced:
        return []
    warnings: list[str] = []
    for name, owner in sorted(_functions_under_cost_budgets(plan).items()):
        fn = plan.functions[name]
        assert isinstance(fn, InferFunction)
        model = fn.model or default_model
        if model is None or model in plan.prices or model in prices or model == "local":
            continue
        if has_known_price(model) is False:
            warnings.append(
                f"{plan.source}: functions.{name}.model: warning: model '{model}' has no known price, and {owner} has "
                "a cost budget: its calls will be refused (give its price in `prices:` or with --price/"
                "STRATUM_PRICES, or allow unpriced calls with `unpriced: allow`)"
            )
    return warnings
