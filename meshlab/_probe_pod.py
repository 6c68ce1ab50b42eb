"""The prober that runs *inside* the client pod on a real cluster, printing one JSON line per request.

Why a separate entry point: the local probe lives in the notebook's process (pandas, Envoy log
reader); in a pod only the standard library is available, and the rows must stream back through
`kubectl exec`-style stdout. It speaks plain HTTP/1.1 to the URL; the pod's sidecar intercepts
the connection exactly as it would for any app. Every request carries its own `x-request-id`, so
the backend can join each row to the line the sidecar (or gateway) wrote in its access log.

Run: ``python -m meshlab._probe_pod --url http://reviews:9080/ --n 100 --concurrency 1
--id <probe-id> [--header 'Name: value'] [--no-keepalive] [--connect host:port] [--seed N]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

REQUEST_ID_HEADER = "x-request-id"


def request_id(probe_id: str, seq: int) -> str:
    """The id of request `seq`; the backend rebuilds it to find the access-log line."""
    return f"{probe_id}-{seq:06d}"


def _classify(exc: BaseException) -> str:
    """Client-side failure → the probe schema's `error` values."""
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    return "reset"   # ConnectionResetError, RemoteDisconnected, BrokenPipe, a half-read answer


class _Worker:
    """One client connection (reused while keep-alive holds); `conn` counts connections opened."""

    _conn_counter = 0
    _lock = threading.Lock()

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.http: http.client.HTTPConnection | None = None
        self.conn_id = -1

    def _connect(self) -> None:
        self.http = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.http.connect()
        with _Worker._lock:
            _Worker._conn_counter += 1
            self.conn_id = _Worker._conn_counter

    def send(self, path: str, headers: dict[str, str], keepalive: bool) -> tuple[int, str, dict, int]:
        if self.http is None:
            self._connect()
        assert self.http is not None
        h = dict(headers)
        if not keepalive:
            h["connection"] = "close"
        self.http.request("GET", path, headers=h)
        resp = self.http.getresponse()
        body = resp.read()
        status = resp.status
        info = {"pod": resp.getheader("x-meshlab-pod") or "", "version": resp.getheader("x-meshlab-version") or ""}
        if not info["pod"]:
            try:
                d = json.loads(body)
                info = {"pod": d.get("pod", ""), "version": d.get("version", "")}
            except (ValueError, AttributeError):
                pass
        conn = self.conn_id
        if not keepalive or resp.will_close:
            self.close()
        return status, "", info, conn

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None


def run(url: str, n: int, concurrency: int, keepalive: bool, headers: dict[str, str], probe_id: str,
        connect: str | None = None, timeout: float = 30.0, seed: int | None = None, out=None) -> None:
    """Send `n` GETs to `url` from `concurrency` connections; print one JSON row per request."""
    out = out or sys.stdout
    u = urllib.parse.urlsplit(url)
    host_header = u.netloc
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    if connect:
        chost, _, cport = connect.rpartition(":")
        target = (chost, int(cport))
    else:
        target = (u.hostname or "", u.port or 80)
    rng = random.Random(seed)
    # Seeded jitter of the start order only; requests themselves are deterministic GETs.
    order = list(range(n))
    if seed is not None and concurrency > 1:
        rng.shuffle(order)
    queue = iter(order)
    qlock, wlock = threading.Lock(), threading.Lock()
    t0 = time.monotonic()

    def work() -> None:
        w = _Worker(target[0], target[1], timeout)
        while True:
            with qlock:
                seq = next(queue, None)
            if seq is None:
                break
            rid = request_id(probe_id, seq)
            h = {"host": host_header, REQUEST_ID_HEADER: rid, "user-agent": "meshlab-probe", **headers}
            start = time.monotonic()
            status, error, info, conn = 0, "", {"pod": "", "version": ""}, w.conn_id
            try:
                status, error, info, conn = w.send(path, h, keepalive)
            except Exception as e:   # noqa: BLE001 - every failure becomes a row, never a crash
                error, conn = _classify(e), w.conn_id
                w.close()
            end = time.monotonic()
            row = {"seq": seq, "t": round(start - t0, 6), "status": status, "error": error,
                   "pod": info["pod"], "version": info["version"],
                   "latency_ms": round((end - start) * 1000.0, 3), "conn": conn, "request_id": rid}
            with wlock:
                out.write(json.dumps(row) + "\n")
                out.flush()
        w.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _header(s: str) -> tuple[str, str]:
    name, sep, value = s.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"header must be 'Name: value', got {s!r}")
    return name.strip().lower(), value.strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="meshlab._probe_pod")
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--header", type=_header, action="append", default=[])
    p.add_argument("--no-keepalive", action="store_true")
    p.add_argument("--connect", default=None, metavar="HOST:PORT",
                   help="dial this instead of the URL's host (the Host header stays the URL's)")
    p.add_argument("--id", default="meshlab", help="request-id prefix")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args(argv)
    run(a.url, a.n, a.concurrency, not a.no_keepalive, dict(a.header), a.id, a.connect, a.timeout, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
