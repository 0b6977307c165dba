"""`@infer(context=learned(FILE))`: the library uses what `stratum optimize` learned, checked at decoration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from stratum_core.engine import Engine
from stratum_core.errors import PlanError
from stratum_core.library import contract, infer, learned
from stratum_core.plan._learned import LearnedContext, LearnedDemo, learned_yaml
from stratum_core.testing import FakeLLM


@contract
class Route(BaseModel):
    team: Literal["billing", "shipping"]


def artifact(folder: Path, contract_hash: str) -> Path:
    learned_context = LearnedContext(
        function="route",
        contract_hash=contract_hash,
        instructions="Parcels go to shipping.",
        demos=(LearnedDemo(input={"text": "Parcel late"}, output={"team": "shipping"}),),
    )
    path = folder / "route.learned.yaml"
    path.write_text(learned_yaml(learned_context), encoding="utf-8")
    return path


def define(path: Path) -> object:
    @infer(intent="Route the ticket.", context=learned(path))
    def route(text: str) -> Route: ...

    return route


def right_hash(tmp_path: Path) -> str:
    with pytest.raises(PlanError) as raised:
        define(artifact(tmp_path, "000000000000"))
    return str(raised.value).split("not for 'route' with ")[1].split()[0].rstrip(")")


async def test_a_learned_context_reaches_the_prompt(tmp_path: Path, engine: Engine, fake_llm: FakeLLM) -> None:
    route = define(artifact(tmp_path, right_hash(tmp_path)))
    fake_llm.enqueue({"team": "shipping"})

    result = await route("Where is my parcel?")  # type: ignore[operator]

    assert result.team == "shipping"
    messages = fake_llm.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Context:\nParcels go to shipping." in messages[0]["content"]


def test_an_artifact_for_other_types_is_refused_when_the_function_is_decorated(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as raised:
        define(artifact(tmp_path, "000000000000"))

    assert "it was learned for function 'route' with contract hash 000000000000, not for 'route' with" in str(
        raised.value
    )
    assert "run `stratum optimize` again on the changed function" in str(raised.value)
