"""Runs belong to whoever started them: a view of the run store as one identity sees it.

Each run records the identity that started it (`RunRecord.owner`). A caller that is not an operator sees only its
own runs: another identity's run, its steps, its trace and its reviews read exactly as a run that does not exist
(None, an empty list), so nothing tells the two apart. Writes go to the store unchanged: the server looks a run up
through the view before it acts on it. `OwnedEvents` does the same for `subscriptions/listen`: updates of another
identity's run are never delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Literal

from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent
from pydantic import JsonValue

from server._identity import Identity
from stratum_core.store import (
    AttemptRecord,
    ReviewAction,
    ReviewRecord,
    ReviewStatus,
    RunPage,
    RunRecord,
    RunStatus,
    RunStore,
    StepRecord,
    Trace,
)
from stratum_core.store._records import AnsweredBy

__all__ = ["OwnedEvents", "OwnedStore", "owned_view"]

_RUNS = "stratum://runs/"


def owned_view(store: RunStore, identity: Identity) -> RunStore:
    """The store as `identity` sees it: the whole store for an operator, else only the runs it started."""
    return store if identity.operator else OwnedStore(store, identity)


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

    # -- everything else goes to the store ------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        """As `RunStore.create_run`."""
        self.store.create_run(record)

    def acquire_lease(
        self, run_id: str, holder: str, *, ttl: float, statuses: tuple[RunStatus, ...] = ("paused", "running")
    ) -> RunRecord:
        """As `RunStore.acquire_lease`."""
        return self.store.acquire_lease(run_id, holder, ttl=ttl, statuses=statuses)

    def renew_lease(self, run_id: str, holder: str, *, ttl: float) -> bool:
        """As `RunStore.renew_lease`."""
        return self.store.renew_lease(run_id, holder, ttl=ttl)

    def release_lease(self, run_id: str, holder: str) -> None:
        """As `RunStore.release_lease`."""
        self.store.release_lease(run_id, holder)

    def update_run(self, run_id: str, /, **fields: Any) -> RunRecord:
        """As `RunStore.update_run`."""
        return self.store.update_run(run_id, **fields)

    def upsert_step(self, record: StepRecord) -> None:
        """As `RunStore.upsert_step`."""
        self.store.upsert_step(record)

    def add_attempt(self, record: AttemptRecord) -> None:
        """As `RunStore.add_attempt`."""
        self.store.add_attempt(record)

    def create_review(self, record: ReviewRecord) -> None:
        """As `RunStore.create_review`."""
        self.store.create_review(record)

    def answer_review(
        self,
        review_id: str,
        *,
        action: ReviewAction,
        value: JsonValue,
        reviewer: str | None,
        rationale: str | None,
        answered_by: AnsweredBy = "person",
        channel: str | None = None,
    ) -> ReviewRecord:
        """As `RunStore.answer_review`."""
        return self.store.answer_review(
            review_id,
            action=action,
            value=value,
            reviewer=reviewer,
            rationale=rationale,
            answered_by=answered_by,
            channel=channel,
        )

    def close_review(self, review_id: str, *, status: Literal["timed_out", "cancelled"]) -> ReviewRecord:
        """As `RunStore.close_review`."""
        return self.store.close_review(review_id, status=status)

    def cache_get(self, key: str) -> JsonValue | None:
        """As `RunStore.cache_get`."""
        return self.store.cache_get(key)

    def cache_put(self, key: str, value: JsonValue, *, contract_hash: str) -> None:
        """As `RunStore.cache_put`."""
        self.store.cache_put(key, value, contract_hash=contract_hash)

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
