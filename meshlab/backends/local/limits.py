"""What one local lab may start, checked before anything starts: pods by memory and by open
files, probe connections by open files.

Why here: on a workshop host (or Binder) a learner's container has a memory limit of 1-2 GB and,
often, the common soft limit of 1024 open files. Past the first, the kernel's OOM killer ends
the notebook without a word; past the second, Envoy cannot accept or open connections and the
probe shows resets and `503 UF,URX` that `explain` would blame on crashed pods — wrong teaching.
So the lab refuses, up front, with the number it can hold and why.

Figures (bench/README.md, "Many labs on one host"): a pod process (the demo app, Python with
asyncio) takes 12-14 MB PSS and 22 MB RSS; `POD_MEMORY_MB` rounds that up. A connection the probe
holds open through the sidecar costs one descriptor in this process, two in Envoy (downstream and
upstream) and one in the pod; through kube-proxy (`via="none"`) two in the kube-proxy child.
"""

from __future__ import annotations

import resource
from pathlib import Path

#: Memory one pod process takes, in MB (measured PSS 12-14 MB, rounded up; bench/README.md).
POD_MEMORY_MB = 16
#: Memory kept free for the notebook itself and the lab's Envoys when counting pods, in MB.
HEADROOM_MB = 192
#: Descriptors a lab process keeps for itself besides a probe's connections (logs, pipes, xDS
#: files, listeners, the admin socket, Python's own).
FD_BASE = 256
#: Descriptors one probe connection takes in the busiest process (Envoy: downstream + upstream).
FD_PER_CONNECTION = 2
#: The soft limit we raise to (never above the hard limit): enough for any concurrency we allow.
FD_TARGET = 65536


# ------------------------------------------------------------------------------- open files

def open_files_limit() -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of this process (and so of the lab's children)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit towards the hard one (any process may), before the lab's
    children start so that they inherit it. Returns the soft limit in force."""
    soft, hard = open_files_limit()
    want = FD_TARGET if hard == resource.RLIM_INFINITY else min(hard, FD_TARGET)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def max_concurrency() -> int:
    """The most connections one probe may hold open with this process's open-files limit."""
    soft, _ = open_files_limit()
    if soft == resource.RLIM_INFINITY:
        soft = FD_TARGET
    return max(0, (soft - FD_BASE) // FD_PER_CONNECTION)


def concurrency_problem(concurrency: int) -> str | None:
    """Why `concurrency` connections cannot run here, or None."""
    most = max_concurrency()
    if concurrency <= most:
        return None
    soft, hard = open_files_limit()
    return (f"concurrency={concurrency} needs about {FD_BASE + FD_PER_CONNECTION * concurrency} open files in the "
            f"sidecar Envoy (two per connection), but this session may open only {soft} (hard limit "
            f"{'unlimited' if hard == resource.RLIM_INFINITY else hard}, which only an administrator can raise: "
            f"ulimit -n / LimitNOFILE). Beyond it Envoy would refuse connections and the probe would show resets "
            f"and 503 UF that are not the mesh's doing. Use concurrency <= {most}")


# ------------------------------------------------------------------------------------ memory

def _cgroup_v2_available() -> int | None:
    """Bytes left under the tightest cgroup v2 memory.max on this process's path, or None."""
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::"))
    except (OSError, StopIteration):
        return None
    path = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    best: int | None = None
    while True:
        try:
            limit = (path / "memory.max").read_text().strip()
            if limit != "max":
                used = int((path / "memory.current").read_text())
                stat = dict(x.split() for x in (path / "memory.stat").read_text().splitlines())
                used -= int(stat.get("inactive_file", 0))      # page cache the kernel reclaims first
                left = int(limit) - used
                best = left if best is None else min(best, left)
        except (OSError, ValueError):
            pass
        if path == Path("/sys/fs/cgroup") or path == path.parent:
            return best
        path = path.parent


def _cgroup_v1_available() -> int | None:
    try:
        rel = next(x.split(":", 2)[2] for x in Path("/proc/self/cgroup").read_text().splitlines()
                   if ":memory:" in x)
        base = Path("/sys/fs/cgroup/memory") / rel.lstrip("/")
        limit = int((base / "memory.limit_in_bytes").read_text())
        used = int((base / "memory.usage_in_bytes").read_text())
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return None if limit >= 1 << 60 else limit - used


def available_memory() -> int:
    """Bytes this process's cgroup (Binder, a JupyterHub spawner's limit) and the host can still
    give: the smaller of MemAvailable and what is left under the memory limit."""
    host = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                host = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    found = [x for x in (host, _cgroup_v2_available(), _cgroup_v1_available()) if x is not None]
    return max(0, min(found)) if found else 1 << 62


def pods_problem(adding: int, running: int) -> str | None:
    """Why `adding` more pod processes (with `running` already) cannot start here, or None."""
    if adding <= 0:
        return None
    free_mb = available_memory() // (1 << 20)
    room = max(0, (free_mb - HEADROOM_MB) // POD_MEMORY_MB)
    soft, _ = open_files_limit()
    fd_room = max(0, (soft if soft != resource.RLIM_INFINITY else FD_TARGET) - FD_BASE - running)
    if adding > room:
        return (f"{adding} more pod processes would need about {adding * POD_MEMORY_MB} MB (each pod is a process "
                f"of about {POD_MEMORY_MB} MB), and {free_mb} MB of memory are available to this lab: it can start "
                f"at most {room} more (keeping {HEADROOM_MB} MB for the notebook and Envoy). Beyond that the "
                f"kernel's OOM killer would end the notebook")
    if adding > fd_room:
        return (f"{adding} more pod processes would need {adding} more open files in this process (one pipe "
                f"each), and it may open only {soft}: at most {fd_room} more")
    return None

