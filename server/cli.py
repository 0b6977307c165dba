"""Entry point of the `stratum` console script: the engine's commands plus `serve` and `review`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from stratum_core.cli import main as core_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `stratum` command line and return its exit code."""
    from server._review_command import COMMAND as review
    from server._serve_command import COMMAND as serve

    return core_main(argv, extra=[serve, review])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
