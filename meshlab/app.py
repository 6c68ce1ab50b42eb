"""The demo workload: one instance per pod, answering who served the request.

Standard library only: the same file runs as a local pod process and inside the container image
of the kind backend. It is a small asyncio HTTP/1.1 server (keep-alive, minimal parsing) because
a lab pushes thousands of requests per second through it on one core.

Every answer carries ``x-meshlab-pod`` / ``x-meshlab-version`` headers and a JSON body with pod,
version, namespace, method, path, host and the request headers (so header rewrites are visible).

Knobs a notebook turns (per pod) live behind a separate *control* endpoint, so the same mechanism
works on kind (the control port is simply another containerPort). The local lab gives it a UNIX
socket instead (``--control unix:PATH``, mode 0600 in the lab's own folder): on a shared host a
TCP port on loopback would let every other user turn this user's pods' knobs.

- ``GET  /ready``   200 when ready, 503 when not (usable as a readinessProbe)
- ``GET  /healthz`` always 200 (liveness)
- ``GET  /knobs``   the current knobs as JSON
- ``POST /knobs``   JSON body with any of ``latency_ms``, ``error_rate``, ``error_code``,
  ``ready``, ``seed``; answers the new knobs

Errors are drawn from a seeded generator (``--seed``, default derived from the pod name), so a
given pod fails the same requests in the same order every run.

Run: ``python -m meshlab.app --name reviews-v1-0 --version v1 --namespace default
--listen 127.2.1.1:9080 [--listen ...] [--control 127.2.1.1:15999]``. Environment variables
``POD_NAME``, ``POD_NAMESPACE``, ``APP_VERSION`` fill in missing flags (kind downward API).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import zlib

CONTROL_PORT = 15999
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 500: b"Internal Server Error",
            502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}
_MAX_HEAD = 64 * 1024


class Knobs:
    """Per-pod behaviour, shared by all data ports of the pod."""

    def __init__(self, name: str, seed: int | None) -> None:
        self.latency_ms = 0.0
        self.error_rate = 0.0
        self.error_code = 503
        self.ready = True
        self.seed = zlib.crc32(name.encode()) if seed is None else seed
        self.rng = random.Random(self.seed)

    def as_dict(self) -> dict:
        return {"latency_ms": self.latency_ms, "error_rate": self.error_rate,
                "error_code": self.error_code, "ready": self.ready, "seed": self.seed}

    def update(self, d: dict) -> None:
        """Apply a knob change; raises ValueError naming the bad field (nothing changed then)."""
        new = self.as_dict()
        for k, v in d.items():
            if k not in new:
                raise ValueError(f"unknown knob {k!r} (known: {', '.join(new)})")
            new[k] = v
        try:
            lat, rate, code = float(new["latency_ms"]), float(new["error_rate"]), int(new["error_code"])
            seed = int(new["seed"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad knob value: {e}") from None
        if not 0 <= lat < float("inf"):      # also refuses NaN, which compares false
            raise ValueError("latency_ms must be a finite number >= 0")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if not 100 <= code <= 599:
            raise ValueError("error_code must be an HTTP status (100..599)")
        if not isinstance(new["ready"], bool):
            raise ValueError("ready must be true or false")
        self.latency_ms, self.error_rate, self.error_code, self.ready = lat, rate, code, new["ready"]
        if seed != self.seed or "seed" in d:
            self.seed, self.rng = seed, random.Random(seed)


class _Request:
    __slots__ = ("method", "path", "version", "headers", "body")

    def __init__(self, method: str, path: str, version: str, headers: dict, body: bytes) -> None:
        self.method, self.path, self.version, self.headers, self.body = method, path, version, headers, body


class _HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 server connection: sequential requests, keep-alive, Content-Length and
    chunked request bodies. Subclasses implement ``handle`` returning (status, headers, body, delay)."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False       # a delayed response is pending: parse nothing more until it is sent
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if not self.busy:
            self._process()

    def _process(self) -> None:
        while self.transport is not None and not self.busy and not self.closing:
            req = self._parse()
            if req is None:
                return
            status, headers, body, delay = self.handle(req)
            if req.method == "HEAD":     # same headers (incl. content-length), no body
                headers = headers + [(b"content-length", b"%d" % len(body))]
                body = None  # type: ignore[assignment]
            keep = req.version == "HTTP/1.1"
            conn = req.headers.get("connection", "").lower()
            if conn == "close":
                keep = False
            elif conn == "keep-alive":
                keep = True
            if delay > 0:
                self.busy = True
                asyncio.get_running_loop().call_later(delay, self._send_later, status, headers, body, keep)
                return
            self._send(status, headers, body, keep)

    def _send_later(self, status: int, headers: list, body: bytes, keep: bool) -> None:
        self.busy = False
        self._send(status, headers, body, keep)
        if self.buf:
            self._process()

    def _send(self, status: int, headers: list, body: bytes | None, keep: bool) -> None:
        t = self.transport
        if t is None:
            return
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Status"))]
        if body is not None:
            head.append(b"content-length: %d\r\n" % len(body))
        for k, v in headers:
            head.append(b"%s: %s\r\n" % (k, v))
        if not keep:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if body:
            head.append(body)
        t.write(b"".join(head))
        if not keep:
            self.closing = True
            t.close()

    def _bad(self, why: bytes) -> None:
        self._send(400, [(b"content-type", b"text/plain")], why, False)

    def _parse(self) -> _Request | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                self._bad(b"header too large\n")
            return None
        lines = buf[:end].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self._bad(b"bad request line\n")
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, sep, v = line.partition(b":")
            if not sep:
                self._bad(b"bad header line\n")
                return None
            headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        pos = end + 4
        body = b""
        if "content-length" in headers:
            try:
                n = int(headers["content-length"])
            except ValueError:
                self._bad(b"bad content-length\n")
                return None
            if len(buf) - pos < n:
                return None
            body = buf[pos:pos + n]
            pos += n
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                try:
                    size = int(buf[pos:eol].split(b";")[0], 16)
                except ValueError:
                    self._bad(b"bad chunk\n")
                    return None
                if size == 0:
                    trailer_end = buf.find(b"\r\n\r\n", eol)
                    if trailer_end < 0:
                        return None
                    pos = trailer_end + 4
                    break
                if len(buf) < eol + 2 + size + 2:
                    return None
                chunks.append(buf[eol + 2:eol + 2 + size])
                pos = eol + 2 + size + 2
            body = b"".join(chunks)
        self.buf = buf[pos:]
        return _Request(parts[0].decode("latin-1"), parts[1].decode("latin-1"),
                        parts[2].decode("latin-1"), headers, body)

    def handle(self, req: _Request) -> tuple[int, list, bytes, float]:  # pragma: no cover
        raise NotImplementedError


class _AppProtocol(_HttpProtocol):
    """A data port: answer who served the request, with the pod's latency/error knobs applied."""

    def __init__(self, pod: "_Pod", port: int) -> None:
        super().__init__()
        self.pod, self.port = pod, port

    def handle(self, req: _Request) -> tuple[int, list, bytes, float]:
        pod = self.pod
        k = pod.knobs
        status = 200
        if k.error_rate > 0.0 and k.rng.random() < k.error_rate:
            status = k.error_code
        body = {"pod": pod.name, "version": pod.version, "namespace": pod.namespace,
                "method": req.method, "path": req.path, "host": req.headers.get("host", ""),
                "port": self.port, "headers": req.headers}
        if status != 200:
            body["error"] = "injected by the pod's error_rate knob"
        return status, pod.resp_headers, json.dumps(body).encode() + b"\n", k.latency_ms / 1000.0


class _ControlProtocol(_HttpProtocol):
    """The control port: readiness and knobs."""

    def __init__(self, pod: "_Pod") -> None:
        super().__init__()
        self.pod = pod

    def handle(self, req: _Request) -> tuple[int, list, bytes, float]:
        k = self.pod.knobs
        path = req.path.split("?", 1)[0]
        js = [(b"content-type", b"application/json")]
        if path == "/ready":
            return (200, [], b"ready\n", 0.0) if k.ready else (503, [], b"not ready\n", 0.0)
        if path == "/healthz":
            return 200, [], b"ok\n", 0.0
        if path == "/knobs":
            if req.method in ("POST", "PUT", "PATCH"):
                try:
                    d = json.loads(req.body or b"{}")
                    if not isinstance(d, dict):
                        raise ValueError("body must be a JSON object")
                    k.update(d)
                except ValueError as e:
                    return 400, js, json.dumps({"error": str(e)}).encode() + b"\n", 0.0
            return 200, js, json.dumps(k.as_dict()).encode() + b"\n", 0.0
        return 404, js, b'{"error": "control paths: /ready /healthz /knobs"}\n', 0.0


class _Pod:
    def __init__(self, name: str, version: str, namespace: str, seed: int | None) -> None:
        self.name, self.version, self.namespace = name, version, namespace
        self.knobs = Knobs(name, seed)
        self.resp_headers = [(b"content-type", b"application/json"),
                             (b"x-meshlab-pod", name.encode()),
                             (b"x-meshlab-version", version.encode())]


def _split_addr(s: str, what: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"meshlab.app: {what} must be IP:PORT or :PORT, got {s!r}")
    return (host or "0.0.0.0"), int(port)


async def serve(pod: _Pod, listens: list[tuple[str, int]], control: tuple[str, int] | str | None,
                announce: bool = True, watch_stdin: bool = False) -> None:
    """Bind every port, print one ``listening`` line (the parent waits for it), serve forever."""
    loop = asyncio.get_running_loop()
    servers = []
    for host, port in listens:
        servers.append(await loop.create_server(lambda p=port: _AppProtocol(pod, p), host, port,
                                                reuse_address=True, backlog=1024))
    if isinstance(control, str):          # a UNIX socket only this user may open
        old = os.umask(0o177)
        try:
            servers.append(await loop.create_unix_server(lambda: _ControlProtocol(pod), control))
        finally:
            os.umask(old)
    elif control is not None:
        servers.append(await loop.create_server(lambda: _ControlProtocol(pod), control[0], control[1],
                                                reuse_address=True))
    if announce:
        sys.stdout.write("listening\n")
        sys.stdout.flush()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    if watch_stdin:  # the parent holds the other end of this pipe: EOF means it is gone
        def _stdin_readable() -> None:
            try:
                data = os.read(0, 4096)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(0)
                stop.done() or stop.set_result(None)
        loop.add_reader(0, _stdin_readable)
    await stop
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="meshlab.app", description=__doc__.splitlines()[0])
    p.add_argument("--name", default=os.environ.get("POD_NAME", "app"))
    p.add_argument("--version", default=os.environ.get("APP_VERSION", "v1"))
    p.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    p.add_argument("--listen", action="append", default=[], metavar="IP:PORT",
                   help="a data port (repeatable); default :8080")
    p.add_argument("--control", default=None, metavar="IP:PORT|unix:PATH",
                   help=f"control port (default: first listen IP, port {CONTROL_PORT}), a UNIX socket, "
                        f"or 'off' to disable")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--error-code", type=int, default=503)
    p.add_argument("--not-ready", action="store_true", help="start with /ready answering 503")
    p.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches EOF (parent died)")
    a = p.parse_args(argv)
    listens = [_split_addr(s, "--listen") for s in (a.listen or [":8080"])]
    control: tuple[str, int] | str | None
    if a.control == "off":
        control = None
    elif a.control and a.control.startswith("unix:"):
        control = a.control[len("unix:"):]
    elif a.control:
        control = _split_addr(a.control, "--control")
    else:
        control = (listens[0][0], CONTROL_PORT)
    pod = _Pod(a.name, a.version, a.namespace, a.seed)
    try:
        pod.knobs.update({"latency_ms": a.latency_ms, "error_rate": a.error_rate,
                          "error_code": a.error_code, "ready": not a.not_ready})
    except ValueError as e:
        raise SystemExit(f"meshlab.app: {e}")
    try:
        asyncio.run(serve(pod, listens, control, watch_stdin=a.watch_stdin))
    except OSError as e:
        print(f"meshlab.app: cannot listen: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
