"""Pod processes: one demo-app process per pod, each on its own loopback IP.

Why processes and not coroutines: a kill must look like a real pod dying (the port refuses), and
Envoy must see distinct upstream hosts. Every child is tied to its parent three ways, so nothing
outlives a notebook kernel even when it is SIGKILLed:

1. ``PR_SET_PDEATHSIG(SIGKILL)``, set by ``meshlab._processes`` without running Python in the
   child, forked from one long-lived spawner thread;
2. a watchdog pipe on the child's stdin: the app exits when it reads EOF (the parent is gone);
3. ``atexit`` and ``close()`` kill whatever is still running.

A pod process gets a container's environment (`meshlab._processes.lab_environment`: PATH, its
HOSTNAME, the lab's marker), never the notebook's, and its control endpoint (knobs, readiness) is
a UNIX socket in the lab's own folder: other users of the host can neither read the notebook's
secrets through a pod nor turn its knobs.
"""

from __future__ import annotations

import atexit
import hashlib
import http.client
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ... import _processes
from ...app import CONTROL_PORT
from ...envoy.admin import UnixHTTPConnection
from ...errors import PodStartError

APP_PATH = Path(__file__).resolve().parents[2] / "app.py"   # meshlab/app.py, run as a script


_live: "weakref.WeakSet[subprocess.Popen]" = weakref.WeakSet()


def spawn(argv: list[str], *, stdout: Any = subprocess.DEVNULL, stderr: Any = subprocess.DEVNULL,
          watchdog: bool = True, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a child that dies with this process (PDEATHSIG + optional stdin watchdog pipe)."""
    proc = _processes.spawn(argv, stdin=subprocess.PIPE if watchdog else subprocess.DEVNULL,
                            stdout=stdout, stderr=stderr, close_fds=True, env=env)
    _live.add(proc)
    return proc


def _kill_all_at_exit() -> None:
    for p in list(_live):
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass


atexit.register(_kill_all_at_exit)


@dataclass
class PodSpec:
    """What a pod process needs: identity, address, ports, and where its control endpoint
    listens (`unix:PATH`, or `IP:PORT`; default the pod IP, port `CONTROL_PORT`)."""

    name: str
    namespace: str
    ip: str
    ports: list[int]
    version: str = ""
    seed: int | None = None
    control: str | None = None
    env: dict[str, str] | None = None
    #: Knobs the pod starts with (from its container's environment: `meshlab.app.KNOB_ENV`).
    knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def control_address(self) -> str:
        return self.control or f"{self.ip}:{CONTROL_PORT}"


def log_name(namespace: str, name: str) -> str:
    """A log file name for a pod, under the 255-byte limit of a file name whatever the pod's name
    (a Deployment's name may be 253 characters, and its pods' longer still)."""
    stem = f"pod-{namespace}-{name}"
    if len(stem) > 120:
        stem = stem[:100] + "-" + hashlib.sha256(stem.encode()).hexdigest()[:12]
    return stem + ".log"


@dataclass
class PodProcess:
    spec: PodSpec
    log_path: Path | None = None
    proc: subprocess.Popen | None = None
    knobs: dict[str, Any] = field(default_factory=dict)   # what the running process was told
    killed: bool = False

    def __post_init__(self) -> None:
        self.knobs = {**self.spec.knobs, **self.knobs}

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def argv(self) -> list[str]:
        s = self.spec
        a = [sys.executable, "-I", "-S", str(APP_PATH), "--name", s.name, "--version", s.version or "",
             "--namespace", s.namespace, "--control", s.control_address, "--watch-stdin"]
        for port in s.ports:
            a += ["--listen", f"{s.ip}:{port}"]
        if s.seed is not None:
            a += ["--seed", str(s.seed)]
        k = self.knobs
        for knob in ("latency_ms", "latency_jitter_ms", "error_rate", "error_code", "keepalive_timeout_ms",
                     "network_delay_ms"):
            if k.get(knob):
                a += ["--" + knob.replace("_", "-"), str(k[knob])]
        if k.get("connection_close"):
            a += ["--connection-close", "true"]
        if k.get("ready") is False:
            a.append("--not-ready")
        return a

    def launch(self) -> None:
        """Fork the process; `wait_listening` completes the start."""
        err: Any = subprocess.DEVNULL
        if self.log_path is not None:
            err = open(self.log_path, "ab")
        try:
            self.proc = spawn(self.argv(), stdout=subprocess.PIPE, stderr=err, env=self.spec.env)
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
        self.killed = False

    def _stderr_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-2000:].strip()
        return ""

    def kill(self) -> None:
        """SIGKILL, like a container crash: its ports refuse at once."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        self.killed = True
        if p is not None and p.stdin:
            try:
                p.stdin.close()
            except OSError:
                pass

    def control(self, method: str, path: str, body: dict[str, Any] | None = None,
                timeout: float = 5.0) -> tuple[int, Any]:
        """One request to the pod's control endpoint (`unix:PATH` or `IP:PORT`): (status, the JSON
        it answered)."""
        where = self.spec.control_address
        if where.startswith("unix:"):
            conn: http.client.HTTPConnection = UnixHTTPConnection(where[len("unix:"):], timeout=timeout)
        else:
            host, _, port = where.rpartition(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"content-type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            conn.close()

    def set_knobs(self, timeout: float = 5.0, **knobs: Any) -> dict[str, Any]:
        """POST the knobs to the pod's control port (a pod not running just remembers them)."""
        knobs = {k: v for k, v in knobs.items() if v is not None}
        if self.alive:
            status, data = self.control("POST", "/knobs", knobs, timeout)
            if status != 200:
                raise ValueError(f"pod {self.spec.namespace}/{self.spec.name}: {data.get('error', status)}")
        self.knobs.update(knobs)
        return dict(self.knobs)

    def requests(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """What the app received (its `/requests` log); [] when the process is not running."""
        if not self.alive:
            return []
        status, data = self.control("GET", "/requests", timeout=timeout)
        return list(data.get("requests", [])) if status == 200 else []


def wait_listening(pods: list[PodProcess], timeout: float = 10.0) -> None:
    """Wait until every launched pod printed its ``listening`` line (all bound), in parallel."""
    sel = selectors.DefaultSelector()
    pending: dict[int, PodProcess] = {}
    bufs: dict[int, bytes] = {}
    for p in pods:
        if p.proc is not None and p.proc.stdout is not None:
            fd = p.proc.stdout.fileno()
            sel.register(fd, selectors.EVENT_READ)
            pending[fd], bufs[fd] = p, b""
    deadline = time.monotonic() + timeout
    failed: list[str] = []
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                fd = key.fd
                chunk = os.read(fd, 4096)
                bufs[fd] += chunk
                if b"listening" in bufs[fd] or not chunk:
                    p = pending.pop(fd)
                    sel.unregister(fd)
                    p.proc.stdout.close()  # type: ignore[union-attr]
                    if not chunk and b"listening" not in bufs[fd]:
                        p.proc.wait()  # type: ignore[union-attr]
                        failed.append(f"{p.spec.namespace}/{p.spec.name} ({p.spec.ip}): "
                                      f"{p._stderr_tail() or 'exited'}")
    finally:
        sel.close()
    for p in pending.values():
        p.kill()
        failed.append(f"{p.spec.namespace}/{p.spec.name}: not listening after {timeout:g}s")
    if failed:
        raise PodStartError("pod process failed to start: " + "; ".join(failed))


class PodRunner:
    """All pod processes of one lab. Calls ``on_exit(pod)`` when a pod dies unexpectedly."""

    def __init__(self, log_dir: Path | None = None,
                 on_exit: Callable[[PodProcess], None] | None = None) -> None:
        self.log_dir = log_dir
        self.on_exit = on_exit
        self.pods: dict[tuple[str, str], PodProcess] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._monitor: threading.Thread | None = None

    def _key(self, namespace: str, name: str) -> tuple[str, str]:
        return (namespace, name)

    def start(self, specs: list[PodSpec], timeout: float = 10.0) -> list[PodProcess]:
        """Start several pods in parallel and wait until all listen."""
        started = []
        with self._lock:
            for s in specs:
                key = self._key(s.namespace, s.name)
                if key in self.pods and self.pods[key].alive:
                    self.pods[key].kill()
                log = self.log_dir / log_name(s.namespace, s.name) if self.log_dir else None
                p = PodProcess(spec=s, log_path=log)
                p.launch()
                self.pods[key] = p
                started.append(p)
        try:
            wait_listening(started, timeout)
        except PodStartError:
            for p in started:
                p.kill()
                self.pods.pop(self._key(p.spec.namespace, p.spec.name), None)
            raise
        self._ensure_monitor()
        return started

    def get(self, name: str, namespace: str = "default") -> PodProcess:
        try:
            return self.pods[self._key(namespace, name)]
        except KeyError:
            raise KeyError(f"no pod {namespace}/{name} in this lab") from None

    def stop(self, name: str, namespace: str = "default") -> None:
        """Remove a pod for good (its object was deleted)."""
        with self._lock:
            p = self.pods.pop(self._key(namespace, name), None)
        if p is not None:
            p.kill()

    def kill(self, name: str, namespace: str = "default") -> PodProcess:
        p = self.get(name, namespace)
        p.kill()
        return p

    def restart(self, name: str, namespace: str = "default", timeout: float = 10.0) -> PodProcess:
        """A fresh process on the same IP and ports; knobs reset, as a new container would (kind too)."""
        p = self.get(name, namespace)
        p.kill()
        p.knobs = dict(p.spec.knobs)     # the container's environment again, nothing set since
        p.launch()
        wait_listening([p], timeout)
        return p

    def _ensure_monitor(self) -> None:
        if self._monitor is None or not self._monitor.is_alive():
            self._monitor = threading.Thread(target=self._watch, name="meshlab-pod-monitor", daemon=True)
            self._monitor.start()

    def _watch(self) -> None:
        """Notice pods that die on their own (crash, OOM, someone's kill -9)."""
        reported: set[int] = set()
        while not self._closed:
            with self._lock:
                pods = list(self.pods.values())
            for p in pods:
                if p.proc is not None and not p.killed and p.proc.poll() is not None and p.proc.pid not in reported:
                    reported.add(p.proc.pid)
                    p.killed = True
                    if self.on_exit:
                        try:
                            self.on_exit(p)
                        except Exception:
                            pass
            time.sleep(0.1)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            pods = list(self.pods.values())
            self.pods.clear()
        for p in pods:
            p.kill()
