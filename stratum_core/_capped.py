"""Lists of errors that stay small however many errors there are: the first few, then "... and K more".

A value with a million bad items must not make a million error objects (or a million-line reply): the first
`shown` errors are kept, the rest are only counted, and counting stops after MAX_COUNTED more.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["MAX_COUNTED", "first_errors", "more_line"]

T = TypeVar("T")

MAX_COUNTED = 1_000
"""Errors counted past the ones shown before counting stops."""


def first_errors(errors: Iterable[T], *, shown: int) -> tuple[list[T], int]:
    """The first `shown` of `errors`, and how many more there were (counted up to MAX_COUNTED + 1)."""
    iterator = iter(errors)
    first = list(itertools.islice(iterator, shown))
    return first, sum(1 for _ in itertools.islice(iterator, MAX_COUNTED + 1))


def more_line(more: int) -> str:
    """`... and 3 more` (or `... and more than 1000 more` once counting stopped)."""
    return f"... and more than {MAX_COUNTED} more" if more > MAX_COUNTED else f"... and {more} more"
