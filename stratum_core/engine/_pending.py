"""Pausing a run: steps that wait for a person (a review) or for the calling agent (an agent step).

A waiting step raises `Pending`; the scheduler lets every step that does not need it run to the end, gathers what
all waiting steps need, and the run pauses with that list. Nothing is lost: the store holds the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable

from stratum_core.engine._types import AgentTask, ReviewRequest

__all__ = ["AgentTask", "Pending"]


class Pending(Exception):
    """Steps wait for answers from outside the engine; `items` says which (reviews and agent steps)."""

    def __init__(self, items: Iterable[ReviewRequest | AgentTask]) -> None:
        self.items: tuple[ReviewRequest | AgentTask, ...] = tuple(items)
        super().__init__(", ".join(item.step_id for item in self.items))

    @property
    def reviews(self) -> tuple[ReviewRequest, ...]:
        """The decisions waiting for a person."""
        return tuple(item for item in self.items if isinstance(item, ReviewRequest))

    @property
    def agent_tasks(self) -> tuple[AgentTask, ...]:
        """The steps waiting for the calling agent."""
        return tuple(item for item in self.items if isinstance(item, AgentTask))

    @classmethod
    def merge(cls, pendings: Iterable[Pending]) -> Pending:
        """One Pending holding the items of all of `pendings`, in order."""
        return cls(item for pending in pendings for item in pending.items)
