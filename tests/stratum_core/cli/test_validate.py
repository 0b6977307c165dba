from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stratum_core.cli import main

ROOT = Path(__file__).parents[3]
GOOD = (
    'version: "1"\nfunctions:\n  f:\n    mode: compute\n'
    '    input: {x: {type: integer}}\n    output: {type: integer}\n    expr: "x + 1"\n'
)
BAD = GOOD.replace('expr: "x + 1"', 'expr: "y + 1"').replace("mode: compute", "mode: compute\n    retires: 1")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_plans_exit_0_with_a_summary_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "a.stratum.yaml", GOOD)
    _write(tmp_path, "nested/b.stratum.yml", GOOD)
    assert main(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "2 plans valid\n"


def test_invalid_plans_print_every_problem_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "good.stratum.yaml", GOOD)
    _write(tmp_path, "any-name.yaml", BAD)
    assert main(["validate", "good.stratum.yaml", "any-name.yaml"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "any-name.yaml:5:5: functions.f: unknown key 'retires' (did you mean 'retries'?)",
        "any-name.yaml:8:12: functions.f.expr: expr: unknown name 'y' (expr sees x)",
    ]
    assert err == "1 of 2 plans invalid (2 problems)\n"


def test_json_format_prints_an_array_of_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "bad.stratum.yaml", BAD)
    assert main(["validate", "--format", "json", "."]) == 1
    problems = json.loads(capsys.readouterr().out)
    assert problems[0] == {
        "file": "bad.stratum.yaml",
        "line": 5,
        "column": 5,
        "path": "functions.f",
        "message": "unknown key 'retires'",
        "hint": "did you mean 'retries'?",
    }
    assert len(problems) == 2


def test_json_format_prints_an_empty_array_when_everything_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--format", "json", str(_write(tmp_path, "ok.stratum.yaml", GOOD))]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_missing_path_or_a_folder_without_plans_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["validate", str(tmp_path)]) == 2
    assert "no plan (*.stratum.yaml or *.stratum.yml) in folder" in capsys.readouterr().err
    assert main(["validate"]) == 2


def test_no_imports_skips_importing_call_targets(tmp_path: Path) -> None:
    plan = _write(tmp_path, "p.stratum.yaml", GOOD.replace('expr: "x + 1"', "call: not_installed_anywhere:f"))
    assert main(["validate", str(plan)]) == 1
    assert main(["validate", "--no-imports", str(plan)]) == 0


def test_the_example_plans_validate() -> None:
    assert main(["validate", str(ROOT / "plans")]) == 0


@pytest.mark.slow
def test_the_console_script_validates_the_example_plans() -> None:
    script = Path(sys.executable).with_name("stratum")
    env = {**os.environ, "LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [str(script), "validate", "plans/"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert (done.returncode, done.stderr.strip().splitlines()[-1]) == (0, "4 plans valid")
    broken = subprocess.run(
        [str(script), "validate", "tests/fixtures/invalid/unknown_key.stratum.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert broken.returncode == 1
    assert broken.stdout.startswith("tests/fixtures/invalid/unknown_key.stratum.yaml:8:5: functions.classify:")


RUNTIME_CHECKS = """\
version: "1"
functions:
  guess:
    mode: infer
    intent: Guess a number.
    input: {}
    output: {type: any}
  ratio:
    mode: compute
    input: {a: {type: integer}, b: {type: integer}}
    output: {type: number}
    expr: "a / b"
flows:
  main:
    input: {a: {type: integer}}
    steps:
      - {id: g, function: guess, inputs: {}}
      - {id: r, function: ratio, inputs: {a: $.input.a, b: $.steps.g.output}}
"""


def test_strict_lists_every_run_time_check_as_a_warning_and_the_plan_stays_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "checks.stratum.yaml", RUNTIME_CHECKS)
    assert main(["validate", "checks.stratum.yaml"]) == 0
    assert capsys.readouterr() == ("", "1 plan valid\n")
    assert main(["validate", "--strict", "checks.stratum.yaml"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "warning: checks.stratum.yaml:12:16: functions.ratio.expr: checked at run time: expr: a / b: division by b, "
        "which may be 0, fails when it runs",
        "warning: checks.stratum.yaml:18:60: flows.main.steps[1].inputs.b: checked at run time: $.steps.g.output "
        "feeds input 'b': a value of unknown type must be an integer",
    ]
    assert err == "2 run-time checks (warnings)\n1 plan valid\n"
    assert main(["validate", "--strict", "--format", "json", "checks.stratum.yaml"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(entry["severity"], entry["line"]) for entry in entries] == [("warning", 12), ("warning", 18)]


def test_stratum_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"stratum {importlib.metadata.version('stratum')}\n"


SIDE_EFFECT = """
import pathlib

pathlib.Path(__file__).with_name("imported.txt").write_text("module code ran")


def shout(text):
    return text.upper()


class Tools:
    def trim(self, text):
        return text.strip()
"""


def test_call_targets_are_checked_without_running_module_code_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "side_tools.py").write_text(SIDE_EFFECT, encoding="utf-8")
    good = _write(tmp_path, "good.stratum.yaml", GOOD.replace('expr: "x + 1"', "call: side_tools:shout"))
    typo = _write(tmp_path, "typo.stratum.yaml", GOOD.replace('expr: "x + 1"', "call: side_tools:shuot"))
    method = _write(tmp_path, "method.stratum.yaml", GOOD.replace('expr: "x + 1"', "call: side_tools:Tools.trm"))
    missing = _write(tmp_path, "missing.stratum.yaml", GOOD.replace('expr: "x + 1"', "call: no_such_module:f"))
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(typo)]) == 1
    assert main(["validate", str(method)]) == 1
    assert main(["validate", str(missing)]) == 1
    assert not (tmp_path / "imported.txt").exists()  # nothing of the module ran
    out = capsys.readouterr().out
    assert "'side_tools' has no attribute 'shuot' (read from" in out and "did you mean 'shout'?" in out
    assert "'side_tools:Tools' has no attribute 'trm'" in out
    assert "cannot find the module 'no_such_module'" in out
    assert main(["validate", "--import", str(good)]) == 0
    assert (tmp_path / "imported.txt").read_text(encoding="utf-8") == "module code ran"


def test_a_module_inside_a_package_is_found_without_running_the_packages_init(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise SystemExit('the package ran')\n", encoding="utf-8")
    (package / "tools.py").write_text("def f(x):\n    return x\n", encoding="utf-8")
    plan = _write(tmp_path, "p.stratum.yaml", GOOD.replace('expr: "x + 1"', "call: pkg.tools:f"))
    assert main(["validate", str(plan)]) == 0
    assert main(["validate", "--import", str(plan)]) == 1  # importing runs the package's __init__, which fails
