"""The probe as it runs *inside* the client pod of a real cluster: one JSON line per request.

Why an entry point of its own: the sending is meshlab's own prober (meshlab/probe/client.py, the very
code the local backend uses — standard library until it builds a DataFrame), but in a pod there
is no pandas and the rows must stream back over exec stdout. Name resolution is the pod's real
cluster DNS, and the pod's sidecar intercepts the connection as it would for any app. Every row
carries the request id the probe sent, so the backend joins it with the `istio-proxy` (or
gateway) access-log line of the same request.

Run: ``python -m meshlab.probe.in_pod --url http://reviews:9080/ [--n 100] [--concurrency 1]
[--header 'Name: value']... [--no-keepalive] [--connect HOST:PORT] [--seed N] [--proxy sidecar]
[--rate R] [--duration S] [--stdin-stop] [--method POST]``
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from typing import Any, TextIO

from .client import ProbeError, Target, parse_header, parse_url, run
from .rows import CLIENT_COLUMNS


def target_for(url: str, proxy: str, connect: str | None) -> Target:
    """Resolve where to connect like any app in the pod would (cluster DNS via getaddrinfo);
    `connect` (the ingress gateway Service) is dialled instead while Host stays the URL's."""
    u = parse_url(url)
    host, port = u.host, u.port
    if connect:
        host, _, p = connect.rpartition(":")
        port = int(p)
    try:
        ip = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except socket.gaierror:
        return Target(proxy, None, u.authority, u.path, error="dns")
    return Target(proxy, (ip, port), u.authority, u.path)


def _emit(rows: list[dict[str, Any]], out: TextIO) -> None:
    for r in rows:
        out.write(json.dumps({**{k: r.get(k) for k in CLIENT_COLUMNS}, "request_id": r.get("request_id", "")}) + "\n")
    out.flush()


def _stop_on_stdin(pr: Any, stdin: TextIO) -> None:
    """A background probe ends when the backend writes `stop` (or closes stdin)."""
    for line in stdin:
        if line.strip() == "stop":
            break
    pr.stop()


def stream_probe(url: str, *, n: int | None, concurrency: int, keepalive: bool, headers: dict[str, str],
                 proxy: str = "sidecar", connect: str | None = None, seed: int | None = None,
                 timeout: float = 30.0, rate: float | None = None, duration: float | None = None,
                 stdin_stop: TextIO | None = None, out: TextIO | None = None, method: str = "GET") -> int:
    """Send the probe, writing each finished request as a JSON line while the rest are in flight.
    With neither `n` nor `duration` (but a `rate`) it runs until `stop` arrives on `stdin_stop`."""
    out = out or sys.stdout
    pr = run(target_for(url, proxy, connect), n=n, concurrency=concurrency, keepalive=keepalive,
             headers=headers, timeout=timeout, seed=seed, rate=rate, duration=duration, method=method)
    if stdin_stop is not None:
        threading.Thread(target=_stop_on_stdin, args=(pr, stdin_stop), daemon=True).start()
    sent = 0
    while True:
        finished = pr.done()
        rows = pr.completed(sent)
        if rows:
            _emit(rows, out)
            sent += len(rows)
        if finished and not pr.completed(sent):
            break
        time.sleep(0.05)
    pr.wait()                    # re-raises a failure inside the probe loop
    return sent


def _header(s: str) -> tuple[str, str]:
    try:
        return parse_header(s)
    except ProbeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshlab.probe.in_pod")
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=None, help="requests (default 100 unless --rate/--duration)")
    p.add_argument("--rate", type=float, default=None, help="requests per second (paced)")
    p.add_argument("--duration", type=float, default=None, help="seconds to run")
    p.add_argument("--stdin-stop", action="store_true", help="stop when `stop` is read on stdin")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--header", type=_header, action="append", default=[])
    p.add_argument("--no-keepalive", action="store_true")
    p.add_argument("--connect", default=None, metavar="HOST:PORT",
                   help="dial this instead of the URL's host (the Host header stays the URL's)")
    # sidecar, gateway (Istio's ingress gateway), none, or a Gateway API gateway deployment (`web-istio`)
    p.add_argument("--proxy", default="sidecar")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--method", default="GET")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        stream_probe(a.url, n=a.n, concurrency=a.concurrency, keepalive=not a.no_keepalive,
                     headers=dict(a.header), proxy=a.proxy, connect=a.connect, seed=a.seed, timeout=a.timeout,
                     rate=a.rate, duration=a.duration, stdin_stop=sys.stdin if a.stdin_stop else None,
                     method=a.method)
    except ProbeError as e:
        print(f"meshlab probe: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
