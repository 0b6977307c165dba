"""`StepCall`: one call of a decorated function or flow primitive, not yet run; awaiting it runs it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Coroutine, Generator, Mapping
from typing import Any, TypeVar

__all__ = ["StepCall"]

R_co = TypeVar("R_co", covariant=True)


class StepCall(Coroutine[Any, Any, R_co]):
    """One call of a decorated function (or of `parallel`, `race`, ...), not yet run: await it to run it.

    It is a coroutine, so it can also be handed to a task group (`group.start_soon(classify, text)`); until it is
    awaited or started, nothing runs and nothing is recorded.

    Attributes:
        target: what is called (a decorated function or flow, or a primitive's description).
        inputs: the arguments as JSON, by parameter name.
        site: the step id the call's position in a flow's code gives it, if it is made there.
    """

    __slots__ = ("_coroutine", "_runner", "_taken", "inputs", "site", "target")

    def __init__(
        self,
        target: Any,
        inputs: Mapping[str, Any],
        site: str | None,
        runner: Callable[[StepCall[R_co]], Coroutine[Any, Any, R_co]],
    ) -> None:
        self.target = target
        self.inputs = dict(inputs)
        self.site = site
        self._runner = runner
        self._coroutine: Coroutine[Any, Any, R_co] | None = None
        self._taken = False

    def _started(self) -> Coroutine[Any, Any, R_co]:
        if self._coroutine is None:
            if self._taken:
                raise RuntimeError(f"this call of {self.target!r} was already awaited (or given to parallel/race)")
            self._taken = True
            self._coroutine = self._runner(self)
        return self._coroutine

    def __await__(self) -> Generator[Any, None, R_co]:
        if self._taken:
            raise RuntimeError(f"this call of {self.target!r} was already awaited (or given to parallel/race)")
        return self._started().__await__()

    def send(self, value: Any) -> Any:
        """Advance the call (what an event loop does with a coroutine it runs)."""
        return self._started().send(value)

    def throw(self, *args: Any) -> Any:
        """Raise an exception inside the running call."""
        return self._started().throw(*args)

    def close(self) -> None:
        """Close the call: a started one is closed, one not started never runs."""
        self._taken = True
        if self._coroutine is not None:
            self._coroutine.close()

    def consume(self) -> None:
        """Mark the call as taken by a group (`parallel`, `race`): it runs there, not when awaited."""
        if self._taken:
            raise RuntimeError(f"this call of {self.target!r} was already awaited (or given to parallel/race)")
        self._taken = True

    def __repr__(self) -> str:
        return f"<StepCall {self.target!r} {self.inputs!r}>"

    def __del__(self) -> None:
        if not self._taken:  # like a coroutine: a call nobody awaited is almost always a forgotten `await`
            warnings.warn(f"{self!r} was never awaited", RuntimeWarning, stacklevel=2)
