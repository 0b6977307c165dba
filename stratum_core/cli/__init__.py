"""The `stratum` command line: the engine's commands (validate, run, runs, review).

`server.cli` adds `serve` on top, so this package never imports the server.
"""

from stratum_core.cli._main import Command, build_parser, main

__all__ = ["Command", "build_parser", "main"]
