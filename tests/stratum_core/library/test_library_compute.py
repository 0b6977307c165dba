"""@compute: plain code as recorded compute steps, with types, given/ensure, and its errors."""

from __future__ import annotations

import pytest
from library_helpers import last_trace, steps
from pydantic import BaseModel

from stratum_core.engine import Engine
from stratum_core.errors import ComputeError, PlanError, PostconditionFailed, PreconditionFailed
from stratum_core.library import compute, contract


@contract
class Item(BaseModel):
    name: str
    price: float


@compute
def total(items: list[Item], currency: str = "EUR") -> str:
    """Add up the prices."""
    return f"{sum(item.price for item in items):.2f} {currency}"


@compute
async def fetch(name: str) -> Item:
    return Item(name=name, price=2.5)


@compute(ensure="result >= 0", given=lambda percent: 0 <= percent <= 100)
def discount(amount: float, percent: float) -> float:
    return amount * (1 - percent / 100) - 10


@compute
def explode(text: str) -> str:
    raise RuntimeError(f"cannot handle {text}")


@compute
def wrong(text: str) -> int:
    return text  # type: ignore[return-value]


async def test_a_compute_call_is_a_recorded_step_that_gets_and_returns_python_objects(engine: Engine) -> None:
    assert await total([Item(name="a", price=1.25), {"name": "b", "price": 2}]) == "3.25 EUR"  # type: ignore[list-item]
    trace = last_trace(engine)
    assert steps(trace) == [("total", "compute", "total", "succeeded")]
    assert trace.steps[0].input == {
        "items": [{"name": "a", "price": 1.25}, {"name": "b", "price": 2.0}],
        "currency": "EUR",
    }
    assert trace.steps[0].output == "3.25 EUR" and trace.attempts == []
    assert total.definition.description == "Add up the prices."
    assert total.import_path == f"{__name__}:total"


async def test_an_async_compute_function_is_awaited(engine: Engine) -> None:
    assert await fetch("pen") == Item(name="pen", price=2.5)
    assert last_trace(engine).steps[0].output == {"name": "pen", "price": 2.5}


async def test_the_engine_calls_a_compute_function_with_json_and_gets_json_back() -> None:
    entry = total.__stratum_call__
    assert entry(items=[{"name": "a", "price": 1}], currency="USD") == "1.00 USD"


async def test_a_compute_error_keeps_the_traceback_in_the_trace(engine: Engine) -> None:
    with pytest.raises(ComputeError) as caught:
        await explode("this")
    assert "RuntimeError: cannot handle this" in caught.value.message
    assert "Traceback" in caught.value.traceback
    step = last_trace(engine).steps[0]
    assert step.status == "failed" and step.error is not None and step.error["type"] == "ComputeError"
    with pytest.raises(ComputeError, match=r"result: input should be a valid integer"):
        await wrong("x")


async def test_compute_given_and_ensure_are_checked_once(engine: Engine) -> None:
    with pytest.raises(PreconditionFailed) as refused:
        await discount(100, 150)
    assert refused.value.actual == "0 <= percent <= 100 (actual: percent = 150.0)"
    with pytest.raises(PostconditionFailed) as broken:
        await discount(5, 50)
    assert broken.value.history == (("ensure: result >= 0 (actual: result = -7.5)",),)
    assert await discount(100, 50) == 40


def test_a_compute_function_needs_typed_parameters_and_a_return_type() -> None:
    with pytest.raises(PlanError) as caught:

        @compute
        def bad(*values: int, result: int) -> None:
            return None

    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("functions.bad.input.result", "an input cannot be named 'result'"),
        ("functions.bad.input.values", "*args, **kwargs and positional-only parameters cannot be inputs"),
        ("functions.bad.output", "the return type is missing"),
    ]
