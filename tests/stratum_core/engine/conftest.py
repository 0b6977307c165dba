"""Engine test fixtures: a scripted in-process LLM client and a StepContext factory; a real SQLite store and an
engine that calls the test LLM over HTTP through LiteLLM."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio
import pytest
from engine_helpers import IN_PRICE, OUT_PRICE

from stratum_core.engine import Engine
from stratum_core.engine._budget import Envelope
from stratum_core.engine._context import StepContext
from stratum_core.engine._types import EngineConfig
from stratum_core.llm import LiteLLMClient, LLMRequest, LLMResponse, register_model
from stratum_core.plan import Budget, Plan
from stratum_core.store import MemoryRunStore, RunRecord, RunStore, SQLiteRunStore
from stratum_core.testing import FakeLLM


class Hang:
    """A scripted answer that never comes (until the caller cancels)."""


HANG = Hang()

Script = str | Mapping[str, Any] | BaseException | Hang
Rule = Callable[[LLMRequest], Script]


class ScriptedLLM:
    """An LLMClient answering from a queue (then from `rule`), recording every request.

    Strings are sent as content, mappings as JSON; an exception is raised; `ScriptedLLM.HANG` never answers.
    """

    HANG = HANG

    def __init__(self, *answers: Script, tokens_in: int = 100, tokens_out: int = 20, cost: float | None = 0.001):
        self.queue: deque[Script] = deque(answers)
        self.rule: Rule | None = None
        self.requests: list[LLMRequest] = []
        self.called = anyio.Event()
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        self.cost = cost

    def push(self, *answers: Script) -> None:
        self.queue.extend(answers)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        self.called.set()
        if self.queue:
            answer = self.queue.popleft()
        elif self.rule is not None:
            answer = self.rule(request)
        else:
            raise AssertionError(f"unexpected LLM request #{len(self.requests)}: nothing scripted")
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Hang):
            await anyio.Event().wait()
        content = answer if isinstance(answer, str) else json.dumps(answer)
        return LLMResponse(
            content=content,
            model=request.model,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            cost_usd=self.cost,
            duration_ms=12.5,
            transport_attempts=1,
            transport_errors=(),
            structured_output="json_schema",
        )

    def texts(self, index: int) -> list[str]:
        """The message contents of request `index`."""
        return [str(message["content"]) for message in self.requests[index].messages]


class MakeContext(Protocol):
    def __call__(
        self,
        plan: Plan,
        llm: ScriptedLLM,
        *,
        model: str | None = ...,
        budget: Budget | None = ...,
        store: RunStore | None = ...,
        session_cache: dict[str, Any] | None = ...,
    ) -> StepContext: ...


RUN_ID = "run-1"
STEP_ID = "classify"


def _new_store() -> MemoryRunStore:
    store = MemoryRunStore()
    store.create_run(RunRecord(run_id=RUN_ID, flow="f", plan_hash="h", plan_text="", input={}))
    return store


@pytest.fixture
def make_context() -> MakeContext:
    """Build a StepContext for step 'classify' of run 'run-1' (call it inside a test: envelopes read the clock)."""

    def make(
        plan: Plan,
        llm: ScriptedLLM,
        *,
        model: str | None = "test/model",
        budget: Budget | None = None,
        store: RunStore | None = None,
        session_cache: dict[str, Any] | None = None,
    ) -> StepContext:
        return StepContext(
            run_id=RUN_ID,
            step_id=STEP_ID,
            plan=plan,
            envelope=Envelope(budget, label="step"),
            config=EngineConfig(model=model),
            store=store if store is not None else _new_store(),
            llm_factory=lambda: llm,
            session_cache=session_cache if session_cache is not None else {},
        )

    return make


@pytest.fixture
def llm() -> ScriptedLLM:
    """A scripted client with nothing queued."""
    return ScriptedLLM()


@pytest.fixture
def new_store() -> Callable[[], MemoryRunStore]:
    """A memory store that already holds run 'run-1'."""
    return _new_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteRunStore]:
    """A SQLite run store in a fresh file."""
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        yield store


@pytest.fixture
def engine(fake_llm: FakeLLM, store: SQLiteRunStore) -> Engine:
    """An engine on `store` whose model is the test LLM (priced, so cost budgets can reserve), over real HTTP."""
    register_model(fake_llm.model, input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE)
    return Engine(
        store=store,
        llm=LiteLLMClient(backoff_base=0.01, backoff_max=0.05),
        config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url),
    )
