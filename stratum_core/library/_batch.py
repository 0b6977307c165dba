"""`stratum.batch(...)`: a flow of a plan run once per item, from Python, as an async iterator of results."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio

from stratum_core.batch import (
    Batch,
    BatchSummary,
    Expectation,
    ItemResult,
    RayItemRunner,
    items_from_lines,
    read_items,
)
from stratum_core.engine import Engine
from stratum_core.plan import Budget, Plan

__all__ = ["BatchResults", "batch"]


class BatchResults:
    """The results of a batch as they come (`async for result in stratum.batch(...)`); `summary` once it is over.

    Items done by an earlier run of the same batch (same plan, flow and inputs, in the same store) come first, read
    back rather than run again. Breaking out of the loop early cancels the items in flight (wrap the iteration in
    `contextlib.aclosing` so that this happens at once).
    """

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.summary: BatchSummary | None = None

    @property
    def id(self) -> str:
        """The batch's id: its runs carry it (`stratum runs --batch ID`)."""
        return self.batch.id

    def __aiter__(self) -> AsyncIterator[ItemResult]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ItemResult]:
        send, receive = anyio.create_memory_object_stream[ItemResult](max_buffer_size=self.batch.concurrency * 2)
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                async with send:
                    self.summary = await self.batch.run(send.send)

            tg.start_soon(produce)
            async with receive:
                async for result in receive:
                    yield result


def batch(
    plan: Plan | str | os.PathLike[str],
    flow: str,
    items: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    *,
    concurrency: int = 4,
    item_budget: Budget | None = None,
    budget: Budget | None = None,
    expect: str | None = None,
    retry_failed: bool = False,
    engine: Engine | None = None,
    ray: str | None = None,
) -> BatchResults:
    """Run `flow` of `plan` once per item: a JSONL file, or the flow inputs themselves.

    `item_budget` bounds each item, `budget` the whole batch (every call reserves from both). `expect` is a field
    of each item holding the expected output, or an expression reading `input` and `output`, for `summary.accuracy`.
    Runs go to `engine`'s store (default: the library's engine, see `configure`). `ray` spreads the items over a
    Ray cluster (`auto`, `local` or an address; needs `pip install 'stratum[ray]'`).
    """
    from stratum_core.library._runtime import engine as library_engine
    from stratum_core.plan import load_plan

    loaded = plan if isinstance(plan, Plan) else load_plan(Path(plan))
    if isinstance(items, str | os.PathLike):
        batch_items = read_items(Path(items), loaded, flow)
    else:
        batch_items = list(items_from_lines(items, loaded, flow))
    runs_on = engine if engine is not None else library_engine()
    runner = RayItemRunner(ray, config=runs_on.config) if ray is not None else None
    return BatchResults(
        Batch(
            runs_on,
            loaded,
            flow,
            batch_items,
            concurrency=concurrency,
            item_budget=item_budget,
            batch_budget=budget,
            expect=Expectation.parse(expect) if expect else None,
            retry_failed=retry_failed,
            runner=runner,
        )
    )
