from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import stratum_core.observability

DOCS = Path(__file__).resolve().parents[3] / "docs" / "observability.md"


def test_the_public_api_of_the_observability_package_is_pinned() -> None:
    assert stratum_core.observability.__all__ == [
        "ErrorCount",
        "OTelExporter",
        "RunStats",
        "Summary",
        "add_otel_option",
        "otel_observers",
        "parse_time",
        "render_timeline_svg",
        "summarize",
        "trace_id_for",
    ]
    for name in stratum_core.observability.__all__:
        assert getattr(stratum_core.observability, name) is not None


def test_the_python_example_of_the_docs_runs(tmp_path: Path) -> None:
    (snippet,) = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    script = tmp_path / "example.py"
    script.write_text(snippet + "\nprint(type(engine).__name__, exporter.endpoint)\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Engine", "http://localhost:4318/v1/traces"]
    assert (tmp_path / ".stratum" / "stratum.db").exists()
