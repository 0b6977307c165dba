"""What `@flow`, `@infer` and `@compute` make of a Python function.

Its plan definition, the contracts it uses, how its values convert, and the function's own name and docs (as
`functools.wraps` copies them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar

from stratum_core.library._check import Location
from stratum_core.library._codec import Codec
from stratum_core.plan import Contract, Flow, Function

__all__ = ["Declared"]

P = ParamSpec("P")
R = TypeVar("R")
D = TypeVar("D", bound="Flow | Function")


class Declared(Generic[P, R, D]):
    """A decorated function or flow (see `StratumFunction` and `FlowFn` for what each adds)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        definition: D,
        contracts: Mapping[str, Contract],
        signature: inspect.Signature,
        input_codecs: Mapping[str, Codec],
        output: Codec,
        location: Location,
    ) -> None:
        self.fn = fn
        self.definition: D = definition
        self.contracts = dict(contracts)
        self.signature = signature
        self.input_codecs = dict(input_codecs)
        self.output = output
        self.location = location
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", definition.name)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", __name__)

    @property
    def name(self) -> str:
        """The name in plans and traces."""
        return self.definition.name
