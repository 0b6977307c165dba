"""A library module exported into a plans folder validates and is served, from any working folder.

`stratum export examples.support_ticket -o plans/support.stratum.yaml` records in the plan (`python_path`) the
folder the module was imported from, relative to the plan; `validate` and `serve` then find the module without
PYTHONPATH, as real processes started elsewhere (the console script, which puts no working folder on sys.path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from server_helpers import server_env, stdio_params

from stratum_core.plan import load_plan

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STRATUM = str(Path(sys.executable).with_name("stratum"))
PROCESS_GUARD_S = 120  # a bound on a stuck process, not a speed target


def shell(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = server_env()
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [STRATUM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=PROCESS_GUARD_S, check=False
    )


async def test_an_exported_plan_finds_its_module_when_validated_and_served_from_elsewhere(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    shutil.copytree(ROOT / "examples", project / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere.mkdir()

    exported = shell("export", "examples.support_ticket", "-o", "plans/support.stratum.yaml", cwd=project)
    assert exported.returncode == 0, exported.stderr
    plan_file = project / "plans" / "support.stratum.yaml"
    assert "\npython_path: [..]\n" in plan_file.read_text(encoding="utf-8")
    assert project.resolve() in load_plan(plan_file).module_search_path()

    validated = shell("validate", os.path.relpath(plan_file, elsewhere), cwd=elsewhere)
    assert (validated.returncode, validated.stdout + validated.stderr) == (0, "1 plan valid\n")

    env = server_env()
    env.pop("PYTHONPATH", None)
    params = stdio_params(
        [STRATUM, "serve", "--plans", str(project / "plans"), "--store", ":memory:", "--poll", "0"], env
    )
    params.cwd = elsewhere
    async with Client(stdio_client(params)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert "triage" in tools
        result = await client.call_tool("triage", {"email": "grace@example.com", "text": "thanks"})
        assert "cannot import" not in str(result.content)
