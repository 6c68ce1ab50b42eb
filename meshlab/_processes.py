"""Start child processes (Envoy, pods, kube-proxy, cluster tools) that die with this Python process.

Why this way: PR_SET_PDEATHSIG is the one guarantee that still holds when a kernel is SIGKILLed,
and it has to be set inside the child. A `preexec_fn` would run Python between fork and exec,
which CPython documents as unsafe in a threaded parent — and a Jupyter kernel always has threads:
the child can deadlock, or fail in its after-fork hooks (seen here as a bare "release unlocked
lock" raised by Popen). util-linux's `setpriv --pdeathsig` sets the signal from C and then execs
the real program, so no Python runs in the child.

The signal fires when the *thread* that forked exits, so every child is forked on one long-lived
spawner thread (or on the main thread, which lives as long as the process).

Where `setpriv` is missing the first line of defence is gone: `pdeathsig_available()` says so,
and the local backend warns and relies on its second line (a new lab reclaims a dead lab's
address block and kills the processes left on it: `backends/local/addresses.py`).

Lab processes (Envoy, pods, kube-proxy) get `lab_environment()`, not this process's environment:
a pod sees only what Kubernetes would give a container, so a notebook's secrets (a JupyterHub API
token, cloud credentials) cannot be read back through Envoy's `%ENVIRONMENT(...)%` header
formatter or a pod. Cluster tools (kind, kubectl, docker) keep the user's environment: they need
its KUBECONFIG, HOME and DOCKER_HOST.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal

_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


# Runs after setpriv's prctl: if the parent died before that, we were re-parented already and the
# signal will never come, so give up instead of running as an orphan. Then exec: same pid.
_STILL_OUR_CHILD = 'if [ "$PPID" != "$0" ]; then exit 129; fi; exec "$@"'


#: The PATH a container runtime gives a container that sets none (containerd's and Docker's default).
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def lab_environment(**extra: str) -> dict[str, str]:
    """The whole environment of a lab process: a container's default PATH, a UTF-8 C locale, and
    `extra` (e.g. a pod's HOSTNAME, the lab's marker). Nothing is inherited from this process."""
    return {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": "/", **extra}


def own_pids() -> Iterator[int]:
    """The pids of this user's processes (by /proc, so Linux only; those that end while listed are
    skipped), for the few places that must look at all of them: a dead lab's leftovers, the
    inotify instances the user holds."""
    me = os.geteuid()
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit():
            try:
                if entry.stat(follow_symlinks=False).st_uid == me:
                    yield int(entry.name)
            except OSError:
                continue


def own_open_files() -> Iterator[str]:
    """What each open descriptor of this user's processes names (`readlink /proc/PID/fd/N`:
    a path, `socket:[inode]`, `anon_inode:inotify`, ...); those that close while listed are skipped."""
    for pid in own_pids():
        try:
            fds = list(os.scandir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        for fd in fds:
            try:
                yield os.readlink(fd.path)
            except OSError:
                continue


def pdeathsig_available() -> bool:
    """Can children be tied to this process's life (Linux with util-linux's `setpriv`)?"""
    return sys.platform.startswith("linux") and shutil.which("setpriv") is not None


def die_with_parent(argv: Sequence[str], signal: Literal["KILL", "TERM"] = "KILL") -> list[str]:
    """`argv` prefixed so the child gets `signal` when its parent dies (Linux with util-linux);
    elsewhere unchanged, and only `atexit`/`stop()` clean up."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if not setpriv:
        return list(argv)
    return [setpriv, "--pdeathsig", signal, "--", "/bin/sh", "-c", _STILL_OUR_CHILD, str(os.getpid()), *argv]


def spawn(argv: Sequence[str], *, signal: Literal["KILL", "TERM"] = "KILL", **popen: Any) -> subprocess.Popen:
    """`subprocess.Popen(argv, **popen)` in its own session, dying with this process.

    Pass `signal="TERM"` for programs that must clean up after themselves (kind, istioctl).
    A program that cannot be found raises FileNotFoundError, as Popen itself would."""
    program = argv[0]
    path = (popen.get("env") or os.environ).get("PATH")
    if (shutil.which(program, path=path) if os.sep not in program else os.path.lexists(program)) in (None, False):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)

    def run() -> subprocess.Popen:
        return subprocess.Popen(die_with_parent(argv, signal), start_new_session=True, **popen)

    if threading.current_thread() is threading.main_thread():
        return run()
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="meshlab-spawn")
    return _spawner.submit(run).result()
