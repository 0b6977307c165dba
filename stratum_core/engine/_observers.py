"""Fanning run events out to several observers, so that one failing observer never breaks a run."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio

from stratum_core.engine._types import RunObserver

__all__ = ["FanOut"]

logger = logging.getLogger("stratum.engine")


class FanOut(RunObserver):
    """Calls every observer in turn; an observer's exception is logged once per observer and otherwise ignored."""

    def __init__(self, observers: Sequence[RunObserver]) -> None:
        self.observers = tuple(observers)
        self._reported: set[int] = set()

    def _failed(self, observer: RunObserver) -> None:
        if id(observer) not in self._reported:
            self._reported.add(id(observer))
            logger.exception("run observer %r failed; its later failures are not logged", observer)

    async def step_started(self, run_id: str, step_id: str, kind: str) -> None:
        for observer in self.observers:
            try:
                await observer.step_started(run_id, step_id, kind)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                self._failed(observer)

    async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
        for observer in self.observers:
            try:
                await observer.step_finished(run_id, step_id, status, done, total)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                self._failed(observer)

    async def step_ended(self, run_id: str, step_id: str, status: str) -> None:
        for observer in self.observers:
            try:
                await observer.step_ended(run_id, step_id, status)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                self._failed(observer)

    async def log(self, run_id: str, level: str, message: str) -> None:
        for observer in self.observers:
            try:
                await observer.log(run_id, level, message)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                self._failed(observer)

    async def run_finished(self, run_id: str, status: str) -> None:
        for observer in self.observers:
            try:
                await observer.run_finished(run_id, status)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                self._failed(observer)
