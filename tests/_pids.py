"""Is a process still running? The checks every "nothing outlives its parent" test needs.

A killed child re-parented to init stays a zombie until init reaps it (and in some containers
PID 1 never does), so a zombie counts as gone: it runs nothing and holds no port.
"""

from __future__ import annotations

import time


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def survivors(pids: list[int], limit: float = 10.0) -> list[int]:
    """Wait up to `limit` seconds for every pid to end; return those still running."""
    end = time.monotonic() + limit
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]
