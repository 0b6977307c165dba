"""Write the shared test vectors (Python's answers) that the TypeScript package must reproduce.

    python tests/vectors/make_vectors.py          # rewrite the JSON files beside this script

The files are the contract between the two implementations: `tests/vectors/test_vectors.py` checks that Python still
gives exactly these answers, and `ts/test/vectors.test.ts` that TypeScript does. Change them only on purpose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from vector_cases import contract_answers, expression_answers, feedback_answers  # noqa: E402


def write(name: str, data: Any) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write("expressions.json", expression_answers())
    write("contracts.json", contract_answers())
    write("feedback.json", feedback_answers())
