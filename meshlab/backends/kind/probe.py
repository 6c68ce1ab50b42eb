"""A probe from the client pod of a real cluster, as a running object like the local ProbeRun.

Why: rows stream back over exec while the in-pod prober (meshlab/probe/in_pod.py) runs, so a
notebook can show a timeline while it applies changes; Envoy's columns are joined from the
access log of the proxy that handled the traffic (client sidecar or ingress gateway), by request id.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from ...errors import ClusterError
from ...probe import rows
from ..base import Via
from .kube import Kube, wait_until
from .workloads import GATEWAY_SERVICE

if TYPE_CHECKING:
    import pandas as pd

#: Reads the access log of the proxy a probe went through: (via, namespace, client pod, seconds
#: back) → request id → entry.
ReadLogs = Callable[[Via, str, str, int], dict[str, dict[str, Any]]]


class KindProbeRun:
    """A probe running in the client pod: rows stream back over exec while it runs; Envoy's
    columns are joined from the access log when asked (snapshot) and, completely, at the end."""

    def __init__(self, kube: Kube, read_logs: ReadLogs, namespace: str, client: str, cmd: list[str], via: Via, *,
                 open_ended: bool, expected: int | None, log_timeout: float, poll_s: float,
                 on_failure: Callable[[], None]) -> None:
        self.kube, self._read_logs, self.namespace, self.client, self.via = kube, read_logs, namespace, client, via
        self.open_ended, self.expected = open_ended, expected
        self.log_timeout, self.poll_s, self._on_failure = log_timeout, poll_s, on_failure
        self._rows: list[dict[str, Any]] = []
        self._log: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._err = ""
        self._failure: BaseException | None = None
        self._started = time.time()
        self._thread = threading.Thread(target=self._run, args=(cmd,), name="meshlab-kind-probe", daemon=True)
        self._thread.start()

    def _on_line(self, line: str) -> None:
        if line.startswith("{"):
            self._rows.append(json.loads(line))

    def _run(self, cmd: list[str]) -> None:
        try:
            _, self._err = self.kube.exec(self.namespace, self.client, "client", cmd, on_line=self._on_line,
                                          timeout=24 * 3600.0, stop=self._stop if self.open_ended else None)
        except BaseException as e:   # noqa: BLE001 - surfaced by result()
            self._failure = e

    # ---- the same surface as the local ProbeRun ----
    def stop(self) -> None:
        self._stop.set()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _read_log(self) -> None:
        if self.via != "none":
            since = int(time.time() - self._started) + 10
            self._log.update(self._read_logs(self.via, self.namespace, self.client, since))

    def _frame(self) -> pd.DataFrame:
        got = list(self._rows)
        # which requests were this probe's, for what the pods' app logged (`Lab.app_log(df)`)
        attrs = {"request_id_prefix": got[0].get("request_id", "").rpartition("-")[0] + "-"} if got else {}
        return rows.frame((rows.join(r, self._log.get(r.get("request_id", "")), self.via) for r in got), attrs)

    def snapshot(self) -> pd.DataFrame:
        self._read_log()
        return self._frame()

    def result(self, timeout: float | None = None) -> pd.DataFrame:
        if self.open_ended:
            self.stop()
        try:
            while self._thread.is_alive():
                self._thread.join(0.2 if timeout is None else timeout)
                if timeout is not None:
                    break
        except KeyboardInterrupt:
            self.stop()
            raise
        if self._failure is not None:
            self._on_failure()   # the client pod is checked (re-created) next time
            raise ClusterError(f"probe from {self.namespace}/{self.client} failed: {self._failure}") from self._failure
        if self.expected is not None and len(self._rows) < self.expected and self._err.strip():
            raise ClusterError(f"the in-pod prober failed: {self._err.strip()[-500:]}")
        if self.via != "none":
            # Envoy flushes its access log in batches: poll until every answered request shows.
            def all_logged() -> tuple[bool, str]:
                self._read_log()
                gone = rows.unlogged(self._rows, self._log)
                return not gone, f"{len(gone)} requests not in the access log yet"
            try:
                wait_until(all_logged, timeout=self.log_timeout, what="istio-proxy access log",
                           interval=self.poll_s)
            except TimeoutError:
                pass   # rows Envoy never logged keep empty Envoy columns rather than guessed ones
        return self._frame()

    def __enter__(self) -> KindProbeRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._thread.join(60)


def probe_command(url: str, *, n: int | None, concurrency: int, keepalive: bool, headers: dict[str, str] | None,
                  via: Via, seed: int | None, rate: float | None = None, duration: float | None = None,
                  timeout: float = 30.0, stdin_stop: bool = False, method: str = "GET") -> list[str]:
    """The in-pod prober's argv. via=gateway dials the ingress gateway Service with the URL's host
    as Host header, as `curl -H Host:` against a real gateway would."""
    cmd = ["python", "-m", "meshlab.probe.in_pod", "--url", url, "--concurrency", str(concurrency), "--proxy", via,
           "--timeout", f"{timeout:g}"]
    if n is not None:
        cmd += ["--n", str(n)]
    if rate is not None:
        cmd += ["--rate", f"{rate:g}"]
    if duration is not None:
        cmd += ["--duration", f"{duration:g}"]
    if stdin_stop:
        cmd.append("--stdin-stop")
    for k, v in (headers or {}).items():
        cmd += ["--header", f"{k}: {v}"]
    if not keepalive:
        cmd.append("--no-keepalive")
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if method != "GET":
        cmd += ["--method", method]
    if via == "gateway":
        u = urlsplit(url)
        cmd += ["--connect", f"{GATEWAY_SERVICE}:{u.port or (443 if u.scheme == 'https' else 80)}"]
    elif via not in ("sidecar", "none"):
        # a Gateway API gateway: the Service Istio created for it (`[namespace/]<gateway>-istio`),
        # on the URL's port, which is the listener's port
        u = urlsplit(url)
        ns, _, name = via.rpartition("/")
        cmd += ["--connect", f"{name}.{ns or 'default'}.svc.cluster.local:{u.port or (443 if u.scheme == 'https' else 80)}"]
    return cmd
