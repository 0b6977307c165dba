"""Run leases: one process advances a run at a time.

A process that advances a run (runs it, resumes it, checks an agent's report) first takes the run's lease in the
store: a compare-and-set on the run's row naming the holder (`host:pid:nonce`) and an expiry, renewed while it
works and released when it stops. Another process finds the lease live and is told the run is being advanced
elsewhere. A lease is dead once it expires, or at once when its holder was a process on this host that no longer
exists (a server killed mid-run; a holder with this process's pid that this process never made belongs to a dead
process whose pid was reused), so the run can be resumed without waiting out the expiry.
"""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["lease_is_live", "new_holder"]

_HOST = socket.gethostname()
_MINE: set[str] = set()  # the holders made by this process (a holder with our pid but not in here is a past one's)


def new_holder() -> str:
    """A fresh holder id for this process: `host:pid:nonce` (the nonce tells two engines of one process apart)."""
    holder = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    _MINE.add(holder)
    return holder


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (owned by someone else), or we cannot tell: trust the expiry
    return True


def lease_is_live(holder: str | None, expires: float | None, *, now: float) -> bool:
    """Whether a lease still binds: it has a holder, has not expired, and its holder is not a dead local process."""
    if holder is None or expires is None or expires <= now:
        return False
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host == _HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():  # ours, or a dead process's whose pid we reuse (a restarted container's pid 1)
            return holder in _MINE
        return _process_exists(pid)
    return True
