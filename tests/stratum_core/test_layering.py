"""The engine stands alone: importing it loads neither the MCP SDK, the server, nor LiteLLM."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def test_importing_stratum_core_loads_no_mcp_server_or_litellm() -> None:
    loaded = modules_after("import stratum_core, stratum_core.engine, stratum_core.plan, stratum_core.store")
    assert not {name for name in loaded if name == "mcp" or name.startswith("mcp.")}
    assert "server" not in loaded
    assert "litellm" not in loaded


def test_the_cli_and_the_test_llm_do_not_import_litellm_until_a_model_is_called() -> None:
    loaded = modules_after("import stratum_core.cli, stratum_core.testing, stratum_core.llm")
    assert "litellm" not in loaded


def test_the_temporal_sdk_is_imported_only_when_its_backend_is_chosen() -> None:
    loaded = modules_after(
        "import stratum_core.backends, stratum_core.cli._run, stratum_core.library, stratum_core.engine\n"
        "from stratum_core.backends import engine_for\n"
        "from stratum_core.store import MemoryRunStore\n"
        "engine_for('local', store=MemoryRunStore())"
    )
    assert "temporalio" not in loaded
    chosen = modules_after(
        "from stratum_core.backends import engine_for\n"
        "from stratum_core.store import MemoryRunStore\n"
        "engine_for('temporal', store=MemoryRunStore())"
    )
    assert "temporalio" in chosen


def test_psycopg_is_imported_only_when_a_postgresql_store_is_opened() -> None:
    loaded = modules_after(
        "import stratum_core, stratum_core.backends, stratum_core.store, stratum_core.cli._run, stratum_core.library\n"
        "from stratum_core.backends import open_run_store\n"
        "open_run_store('memory:').close()"
    )
    assert not {name for name in loaded if name == "psycopg" or name.startswith("psycopg.")}
    chosen = modules_after("import stratum_core.store._postgres")
    assert "psycopg" in chosen
