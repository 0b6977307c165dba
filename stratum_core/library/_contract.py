"""`@contract`: a pydantic model or a plain annotated class as a named record type of the plan language.

A plain class becomes a dataclass. Either way the contract is compiled at decoration: its JSON Schema 2020-12 and
content hash are ready (`contract_info(cls)`), and a field type the plan language cannot express, or a contract
that refers back to itself, is refused with a PlanError located at the class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from stratum_core.errors import PlanError, Problem
from stratum_core.library._check import definition_error, location_of
from stratum_core.library._emit import plan_text
from stratum_core.library._types import ContractInfo, DefinitionProblem, defining_namespace, set_contract_name
from stratum_core.library._types import contract_info as _contract_info
from stratum_core.plan import load_plan_text

__all__ = ["contract", "contract_info"]

C = TypeVar("C", bound=type)


def contract_info(cls: type) -> ContractInfo:
    """The contract of a class: its name, plan model, JSON Schema and content hash (PlanError if it has none)."""
    try:
        return _contract_info(cls)
    except DefinitionProblem as problem:
        name = getattr(cls, "__name__", "?")
        raise definition_error(location_of(cls), [problem], prefix=f"contracts.{name}") from None


def _declare(cls: C, name: str | None) -> C:
    defining_namespace(cls, 2)  # _declare <- contract (or decorate) <- where the class is defined
    target: Any = cls
    if not (isinstance(cls, type) and (issubclass(cls, BaseModel) or dataclasses.is_dataclass(cls))):
        target = dataclasses.dataclass(cls)
    if target is not cls:
        defining_namespace(target, 2)
    if name is not None:
        set_contract_name(target, name)
    info = contract_info(target)
    try:
        load_plan_text(plan_text(contracts=info.contracts, functions={}, flows={}), source="<library>")
    except PlanError as error:
        where = location_of(target)
        raise PlanError(
            [Problem(where.file, where.line, 1, p.path, p.message, p.hint) for p in error.problems]
        ) from None
    return target  # type: ignore[no-any-return]


@overload
def contract(cls: C, /) -> C: ...


@overload
def contract(*, name: str | None = None) -> Callable[[C], C]: ...


def contract(cls: C | None = None, /, *, name: str | None = None) -> C | Callable[[C], C]:
    """Declare a contract: `@contract` on a pydantic model or a plain annotated class (which becomes a dataclass).

    Field constraints come from `Field(...)` or `Annotated[..., Field(...)]`; `opaque[T]` marks a field that reaches
    the model only as data; `T | None` (or a default) makes a field optional. `name` renames the contract.
    """
    if cls is not None:
        return _declare(cls, name)

    def decorate(target: C) -> C:
        return _declare(target, name)

    return decorate
