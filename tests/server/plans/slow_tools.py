"""A compute function that waits until it is cancelled, for the cancellation tests."""

from __future__ import annotations

import threading

import anyio

STARTED = threading.Event()


async def wait_forever(text: str) -> str:
    """Signal that the step started, then wait until the run is cancelled."""
    STARTED.set()
    await anyio.sleep_forever()
    return text
