"""Runs belong to whoever started them: a view of the run store as one identity sees it.

Each run records the identity that started it (`RunRecord.owner`). A caller that is not an operator sees only its
own runs: another identity's run, its steps, its trace and its reviews read exactly as a run that does not exist
(None, an empty list), so nothing tells the two apart. Writes go to the store unchanged: the server looks a run up
through the view before it acts on it. `OwnedEvents` does the same for `subscriptions/listen`: updates of another
identity's run are never delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent

from server._identity import Identity
from stratum_core.store import (
    ReviewRecord,
    ReviewStatus,
    RunPage,
    RunRecord,
    RunStatus,
    RunStore,
    StepRecord,
    Trace,
)

__all__ = ["OwnedEvents", "OwnedStore", "owned_view"]

P = ParamSpec("P")
R = TypeVar("R")

_RUNS = "stratum://runs/"


def owned_view(store: RunStore, identity: Identity) -> RunStore:
    """The store as `identity` sees it: the whole store for an operator, else only the runs it started."""
    return store if identity.operator else OwnedStore(store, identity)


class _Passed(Generic[P, R]):
    """A `RunStore` method an `OwnedStore` passes on unchanged: `view.name(...)` is `view.store.name(...)`.

    Made from the protocol's own method, so the view's method has the protocol's signature without repeating it.
    """

    def __init__(self, method: Callable[Concatenate[Any, P], R]) -> None:
        self.name = method.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.name:
            raise TypeError(f"{owner.__name__}.{name} would pass on RunStore.{self.name}")

    @overload
    def __get__(self, view: None, owner: type) -> _Passed[P, R]: ...
    @overload
    def __get__(self, view: OwnedStore, owner: type) -> Callable[P, R]: ...
    def __get__(self, view: OwnedStore | None, owner: type) -> _Passed[P, R] | Callable[P, R]:
        if view is None:
            return self
        method: Callable[P, R] = getattr(view.store, self.name)
        return method


class OwnedStore:
    """A `RunStore` that shows one identity its own runs only (everything else reads as missing)."""

    def __init__(self, store: RunStore, identity: Identity) -> None:
        self.store = store
        self.identity = identity

    def owns(self, run: RunRecord | None) -> bool:
        """Whether `run` exists and this identity may see it."""
        return run is not None and run.owner == self.identity.name

    def _owns_id(self, run_id: str) -> bool:
        return self.owns(self.store.get_run(run_id))

    # -- reads, filtered -------------------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None when there is none or it is another identity's."""
        run = self.store.get_run(run_id)
        return run if self.owns(run) else None

    def list_runs(
        self,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
        batch: str | None = None,
    ) -> RunPage:
        """This identity's runs (asking for another owner's gives none)."""
        if owner is not None and owner != self.identity.name:
            return RunPage(runs=[], next_cursor=None)
        return self.store.list_runs(
            flow=flow,
            status=status,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            owner=self.identity.name,
            batch=batch,
        )

    def batch_item_runs(self, keys: Collection[str]) -> list[RunRecord]:
        """This identity's runs of batch items with these keys."""
        return [run for run in self.store.batch_item_runs(keys) if self.owns(run)]

    def get_steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps; none for another identity's run."""
        return self.store.get_steps(run_id) if self._owns_id(run_id) else []

    def get_trace(self, run_id: str) -> Trace | None:
        """The run's trace, or None when there is none or it is another identity's."""
        trace = self.store.get_trace(run_id)
        return trace if trace is not None and self.owns(trace.run) else None

    def get_review(self, review_id: str) -> ReviewRecord | None:
        """The review, or None when there is none or its run is another identity's."""
        review = self.store.get_review(review_id)
        return review if review is not None and self._owns_id(review.run_id) else None

    def list_reviews(self, *, status: ReviewStatus | None = "pending", run_id: str | None = None) -> list[ReviewRecord]:
        """The reviews of this identity's runs."""
        if run_id is not None:
            return self.store.list_reviews(status=status, run_id=run_id) if self._owns_id(run_id) else []
        seen: dict[str, bool] = {}
        mine: list[ReviewRecord] = []
        for review in self.store.list_reviews(status=status):
            if review.run_id not in seen:
                seen[review.run_id] = self._owns_id(review.run_id)
            if seen[review.run_id]:
                mine.append(review)
        return mine

    # -- everything else goes to the store unchanged ---------------------------------------------------------------

    create_run = _Passed(RunStore.create_run)
    acquire_lease = _Passed(RunStore.acquire_lease)
    renew_lease = _Passed(RunStore.renew_lease)
    release_lease = _Passed(RunStore.release_lease)
    update_run = _Passed(RunStore.update_run)
    upsert_step = _Passed(RunStore.upsert_step)
    add_attempt = _Passed(RunStore.add_attempt)
    create_review = _Passed(RunStore.create_review)
    answer_review = _Passed(RunStore.answer_review)
    close_review = _Passed(RunStore.close_review)
    cache_get = _Passed(RunStore.cache_get)
    cache_put = _Passed(RunStore.cache_put)

    def close(self) -> None:
        """Nothing: the view does not own the store."""


class OwnedEvents:
    """The subscription bus as one identity sees it: an update of a run it cannot see is not delivered."""

    def __init__(self, bus: SubscriptionBus, view: OwnedStore) -> None:
        self._bus = bus
        self._view = view
        self._mine: set[str] = set()  # runs seen to be this identity's (ownership never changes)

    async def publish(self, event: ServerEvent) -> None:
        """As the bus's `publish`."""
        await self._bus.publish(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        """Subscribe `listener` to the events this identity may see."""

        def deliver(event: ServerEvent) -> None:
            if isinstance(event, ResourceUpdated) and not self._visible(str(event.uri)):
                return
            listener(event)

        return self._bus.subscribe(deliver)

    def _visible(self, uri: str) -> bool:
        if not uri.startswith(_RUNS):
            return True
        run_id = uri[len(_RUNS) :].split("/", 1)[0].split("?", 1)[0]
        if run_id in self._mine:
            return True
        if self._view.get_run(run_id) is None:
            return False
        self._mine.add(run_id)
        return True
