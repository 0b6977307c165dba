"""The results file of a batch: one JSON line per item done, kept consistent whatever stops the batch.

Lines are appended (and flushed) as items finish, so a batch killed half way leaves every finished item's line;
each invocation starts the file anew from the store (the items done earlier first), and a batch that ends, or is
stopped, rewrites it in input order through a temporary file and a rename, so it is never seen half written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO

from stratum_core.batch._results import ItemResult

__all__ = ["ResultsFile"]


class ResultsFile:
    """Writes a batch's results file at `path` (its folder is created)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lines: dict[int, str] = {}
        self._file: IO[str] | None = None

    def open(self) -> ResultsFile:
        """Start the file anew."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        return self

    def write(self, result: ItemResult) -> None:
        """Append the line of a done item (items not done are not written: a re-run runs them)."""
        if not result.done or self._file is None:
            return
        line = json.dumps(result.to_json(), ensure_ascii=False)
        self._lines[result.index] = line
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Rewrite the file in input order, atomically, and close it."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            out.writelines(self._lines[index] + "\n" for index in sorted(self._lines))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    def __enter__(self) -> ResultsFile:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
