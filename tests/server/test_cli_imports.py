"""The `stratum` entry point lives in `server`, yet only `serve` and `review` may load the MCP SDK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
PROBE = """
import sys
from server.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp."))
print("mcp loaded:", bool(loaded), "exit:", code)
"""
PLAN = """
version: "1"
functions:
  double: {mode: compute, input: {n: {type: integer}}, output: {type: integer}, expr: "n * 2"}
flows:
  f:
    input: {n: {type: integer}}
    output: {type: integer}
    steps: [{id: d, function: double, inputs: {n: $.input.n}}]
"""


@pytest.mark.parametrize(
    "command",
    [
        ["validate", "{plan}"],
        ["run", "{plan}", "f", "--input", '{{"n": 2}}', "--store", "{store}"],
        ["runs", "--store", "{store}"],
        ["--help"],
    ],
    ids=["validate", "run", "runs", "help"],
)
def test_commands_that_do_not_serve_never_import_the_mcp_sdk(tmp_path: Path, command: list[str]) -> None:
    plan = tmp_path / "double.stratum.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    argv = [part.format(plan=plan, store=tmp_path / "runs.db") for part in command]

    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=REPO, check=False, timeout=300
    )

    assert done.stdout.strip().splitlines()[-1] == "mcp loaded: False exit: 0", done.stderr


def test_the_server_package_still_offers_its_names() -> None:
    import server

    assert server.ServerConfig.__name__ == "ServerConfig"
    assert set(server.__all__) <= set(dir(server))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = server.nothing  # type: ignore[attr-defined]
