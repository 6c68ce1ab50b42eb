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
- ``POST /knobs``   JSON body with any of the knobs below; answers the new knobs
- ``GET  /requests`` the requests the data ports received, oldest first (the app's access log:
  ``t``, ``method``, ``path``, ``request_id``, ``status``; the last 20,000), and ``total``

Knobs (every one also a flag, and an environment variable a Deployment can set, in capitals:
``KEEPALIVE_TIMEOUT_MS``):

- ``latency_ms`` (≥ 0) every answer waits this long, plus ``latency_jitter_ms`` × a uniform draw;
- ``error_rate`` (0–1) this share of answers is ``error_code`` (default 503) instead of 200;
- ``ready`` what ``/ready`` says;
- ``keepalive_timeout_ms`` (≥ 0; 0 = never) a keep-alive connection idle this long is closed by
  the app, silently, as servers do (Node.js' ``keepAliveTimeout``, Gunicorn's ``--keep-alive``):
  a client that sends on it at that instant finds it closed;
- ``connection_close`` (true/false) every answer says ``connection: close`` and the app closes
  the connection after it (keep-alive off, announced);
- ``network_delay_ms`` (≥ 0) the data ports' bytes, and their closes, take this long to travel
  between the pod and its peer each way, as over a network between nodes (loopback has none): a
  request sent while the app's close is on its way arrives at a closed connection;
- ``seed`` the seed of the generator errors and jitter are drawn from.

Errors and jitter are drawn from a seeded generator (``--seed``, default derived from the pod
name), so a given pod fails the same requests in the same order every run.

Run: ``python -m meshlab.app --name reviews-v1-0 --version v1 --namespace default
--listen 127.2.1.1:9080 [--listen ...] [--control 127.2.1.1:15999] [--keepalive-timeout-ms 2000]``.
Environment variables ``POD_NAME``, ``POD_NAMESPACE``, ``APP_VERSION`` (kind downward API) and
the knobs' own (``LATENCY_MS``, ``KEEPALIVE_TIMEOUT_MS``, …) fill in missing flags.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import sys
import time
import zlib

CONTROL_PORT = 15999
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 500: b"Internal Server Error",
            413: b"Payload Too Large", 502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}
_MAX_HEAD = 64 * 1024
#: The largest request body a pod takes (413 beyond): anyone on the host can reach a pod's port,
#: and a pod, unlike a container, has no memory limit of its own. The course sends no bodies.
_MAX_BODY = 1 << 20
#: How many received requests `/requests` keeps (the oldest are dropped first).
REQUEST_LOG_SIZE = 20_000
#: Knob name → the environment variable that sets it at start (a Deployment's `env`).
KNOB_ENV = {"latency_ms": "LATENCY_MS", "latency_jitter_ms": "LATENCY_JITTER_MS", "error_rate": "ERROR_RATE",
            "error_code": "ERROR_CODE", "keepalive_timeout_ms": "KEEPALIVE_TIMEOUT_MS",
            "connection_close": "CONNECTION_CLOSE", "network_delay_ms": "NETWORK_DELAY_MS"}


def race_free_idle_ms(env: dict[str, str]) -> tuple[float, float] | None:
    """(the app's keep-alive idle timeout, the longest client idle timeout that never races it), in
    ms, from a container's environment; None when the app keeps connections for ever.

    A client's idle clock starts when the answer reaches it, a network delay after the app's; the
    request it sends takes that delay again to arrive. So a connection the client still reuses
    after idling `i` reaches the app idle `i + 2 × NETWORK_DELAY_MS`: the client must close first
    by that much (on a real network the round trip is small next to a keep-alive timeout)."""
    try:
        keepalive = float(env.get(KNOB_ENV["keepalive_timeout_ms"]) or 0)
        delay = float(env.get(KNOB_ENV["network_delay_ms"]) or 0)
    except ValueError:
        return None
    if keepalive <= 0:
        return None
    return keepalive, max(keepalive - 2 * delay, 0.0)


def knobs_from_env(env: dict[str, str]) -> dict:
    """The knobs a container's environment sets (`KNOB_ENV` names), typed; ValueError naming the
    variable for a value the app would refuse at start."""
    out: dict = {}
    for knob, var in KNOB_ENV.items():
        if var not in env:
            continue
        raw = str(env[var]).strip()
        try:
            if knob == "connection_close":
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError("must be true or false")
                out[knob] = raw.lower() in ("true", "1", "yes")
            elif knob == "error_code":
                out[knob] = int(raw)
            else:
                out[knob] = float(raw)
        except ValueError as e:
            raise ValueError(f"env {var}={raw!r}: {e}") from None
    probe = Knobs("env", 0)
    try:
        probe.update(out)
    except ValueError as e:
        raise ValueError(f"env: {e}") from None
    return out


class Knobs:
    """Per-pod behaviour, shared by all data ports of the pod."""

    def __init__(self, name: str, seed: int | None) -> None:
        self.latency_ms = 0.0
        self.latency_jitter_ms = 0.0
        self.error_rate = 0.0
        self.error_code = 503
        self.ready = True
        self.keepalive_timeout_ms = 0.0
        self.connection_close = False
        self.network_delay_ms = 0.0
        self.seed = zlib.crc32(name.encode()) if seed is None else seed
        self.rng = random.Random(self.seed)

    def as_dict(self) -> dict:
        return {"latency_ms": self.latency_ms, "latency_jitter_ms": self.latency_jitter_ms,
                "error_rate": self.error_rate, "error_code": self.error_code, "ready": self.ready,
                "keepalive_timeout_ms": self.keepalive_timeout_ms, "connection_close": self.connection_close,
                "network_delay_ms": self.network_delay_ms, "seed": self.seed}

    def delay_s(self) -> float:
        """How long the next answer waits: latency plus a seeded share of the jitter."""
        extra = self.rng.random() * self.latency_jitter_ms if self.latency_jitter_ms else 0.0
        return (self.latency_ms + extra) / 1000.0

    def update(self, d: dict) -> None:
        """Apply a knob change; raises ValueError naming the bad field (nothing changed then)."""
        new = self.as_dict()
        for k, v in d.items():
            if k not in new:
                raise ValueError(f"unknown knob {k!r} (known: {', '.join(new)})")
            new[k] = v
        try:
            lat, rate, code = float(new["latency_ms"]), float(new["error_rate"]), int(new["error_code"])
            jitter, idle = float(new["latency_jitter_ms"]), float(new["keepalive_timeout_ms"])
            net = float(new["network_delay_ms"])
            seed = int(new["seed"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad knob value: {e}") from None
        for name, v in (("latency_ms", lat), ("latency_jitter_ms", jitter), ("keepalive_timeout_ms", idle),
                        ("network_delay_ms", net)):
            if not 0 <= v < float("inf"):      # also refuses NaN, which compares false
                raise ValueError(f"{name} must be a finite number >= 0")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if not 100 <= code <= 599:
            raise ValueError("error_code must be an HTTP status (100..599)")
        for name in ("ready", "connection_close"):
            if not isinstance(new[name], bool):
                raise ValueError(f"{name} must be true or false")
        self.latency_ms, self.error_rate, self.error_code, self.ready = lat, rate, code, new["ready"]
        self.latency_jitter_ms, self.keepalive_timeout_ms, self.network_delay_ms = jitter, idle, net
        self.connection_close = new["connection_close"]
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
        self._idle: asyncio.TimerHandle | None = None
        self._outbox: collections.deque = collections.deque()   # (due, bytes, close) on the "wire"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._disarm_idle()

    def data_received(self, data: bytes) -> None:
        delay = self.net_delay_s()
        if delay > 0:    # the bytes are still on their way to the app
            asyncio.get_running_loop().call_later(delay, self._arrive, data)
        else:
            self._arrive(data)

    def _arrive(self, data: bytes) -> None:
        if self.closing or self.transport is None:
            return       # the app closed the connection already: these bytes meet a closed socket
        self._disarm_idle()
        self.buf = self.buf + data if self.buf else data
        if not self.busy:
            self._process()
        if not self.busy and not self.buf:
            self._arm_idle()

    # ---- the network between the app and its peer (loopback has none; a real one has some) ------
    def net_delay_s(self) -> float:
        """Seconds every byte (and the close) takes between the app and its peer; subclasses decide."""
        return 0.0

    def _wire(self, data: bytes, close: bool) -> None:
        """Send `data` (and then close, when `close`) after the network delay, in order."""
        delay = self.net_delay_s()
        if delay <= 0 and not self._outbox:
            self._deliver(data, close)
            return
        loop = asyncio.get_running_loop()
        self._outbox.append((loop.time() + delay, data, close))
        loop.call_later(delay, self._drain)

    def _drain(self) -> None:
        now = asyncio.get_running_loop().time()
        while self._outbox and self._outbox[0][0] <= now + 1e-6:
            _, data, close = self._outbox.popleft()
            self._deliver(data, close)

    def _deliver(self, data: bytes, close: bool) -> None:
        t = self.transport
        if t is None:
            return
        if data:
            t.write(data)
        if close:
            t.close()

    # ---- keep-alive idle timeout: the server closes a connection nobody used for a while --------
    def idle_timeout_s(self) -> float:
        """Seconds an idle keep-alive connection stays open (0: forever); subclasses decide."""
        return 0.0

    def _arm_idle(self) -> None:
        timeout = self.idle_timeout_s()
        if timeout > 0 and self.transport is not None and not self.closing:
            self._idle = asyncio.get_running_loop().call_later(timeout, self._idle_expired)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_expired(self) -> None:
        """Close without a word, as servers do: a request already on its way finds it closed."""
        self._idle = None
        if self.transport is not None and not self.busy and not self.buf:
            self.closing = True
            self._wire(b"", True)

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
            if self.announce_close():
                keep = False
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
        if not self.busy and not self.buf:
            self._arm_idle()

    def announce_close(self) -> bool:
        """True: answer with `connection: close` and close (subclasses decide)."""
        return False

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
        if not keep:
            self.closing = True
        self._wire(b"".join(head), not keep)

    def _bad(self, why: bytes, status: int = 400) -> None:
        self._send(status, [(b"content-type", b"text/plain")], why, False)

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
            length = headers["content-length"]
            if not (length.isascii() and length.isdigit()):
                self._bad(b"bad content-length\n")
                return None
            n = int(length)
            if n > _MAX_BODY:
                self._bad(b"body too large\n", 413)
                return None
            if len(buf) - pos < n:
                return None
            body = buf[pos:pos + n]
            pos += n
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            if len(buf) - pos > _MAX_BODY + _MAX_HEAD:      # the body so far, with its chunk framing
                self._bad(b"body too large\n", 413)
                return None
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

    def idle_timeout_s(self) -> float:
        return self.pod.knobs.keepalive_timeout_ms / 1000.0

    def net_delay_s(self) -> float:
        return self.pod.knobs.network_delay_ms / 1000.0

    def announce_close(self) -> bool:
        return self.pod.knobs.connection_close

    def handle(self, req: _Request) -> tuple[int, list, bytes, float]:
        pod = self.pod
        k = pod.knobs
        status = 200
        if k.error_rate > 0.0 and k.rng.random() < k.error_rate:
            status = k.error_code
        pod.record(req, status)
        body = {"pod": pod.name, "version": pod.version, "namespace": pod.namespace,
                "method": req.method, "path": req.path, "host": req.headers.get("host", ""),
                "port": self.port, "headers": req.headers}
        if status != 200:
            body["error"] = "injected by the pod's error_rate knob"
        return status, pod.resp_headers, json.dumps(body).encode() + b"\n", k.delay_s()


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
        if path == "/requests":
            log = self.pod
            return 200, js, json.dumps({"total": log.total, "requests": list(log.requests)}).encode() + b"\n", 0.0
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
        return 404, js, b'{"error": "control paths: /ready /healthz /knobs /requests"}\n', 0.0


class _Pod:
    def __init__(self, name: str, version: str, namespace: str, seed: int | None) -> None:
        self.name, self.version, self.namespace = name, version, namespace
        self.knobs = Knobs(name, seed)
        self.resp_headers = [(b"content-type", b"application/json"),
                             (b"x-meshlab-pod", name.encode()),
                             (b"x-meshlab-version", version.encode())]
        self.total = 0
        self.requests: collections.deque = collections.deque(maxlen=REQUEST_LOG_SIZE)

    def record(self, req: _Request, status: int) -> None:
        """One line of the app's access log (what `/requests` answers)."""
        self.total += 1
        self.requests.append({"t": round(time.time(), 6), "method": req.method, "path": req.path,
                              "request_id": req.headers.get("x-request-id", ""), "status": status})


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
    env = os.environ.get
    p.add_argument("--latency-ms", type=float, default=env(KNOB_ENV["latency_ms"], "0"))
    p.add_argument("--latency-jitter-ms", type=float, default=env(KNOB_ENV["latency_jitter_ms"], "0"))
    p.add_argument("--error-rate", type=float, default=env(KNOB_ENV["error_rate"], "0"))
    p.add_argument("--error-code", type=int, default=env(KNOB_ENV["error_code"], "503"))
    p.add_argument("--keepalive-timeout-ms", type=float, default=env(KNOB_ENV["keepalive_timeout_ms"], "0"),
                   help="close keep-alive connections idle this long (0: never)")
    p.add_argument("--connection-close", default=env(KNOB_ENV["connection_close"], "false"),
                   help="true: every answer says connection: close and the connection is closed")
    p.add_argument("--network-delay-ms", type=float, default=env(KNOB_ENV["network_delay_ms"], "0"),
                   help="one-way delay of the data ports' bytes and closes (a network between nodes)")
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
    close = str(a.connection_close).strip().lower()
    if close not in ("true", "false", "1", "0", "yes", "no"):
        raise SystemExit(f"meshlab.app: --connection-close must be true or false, not {a.connection_close!r}")
    try:
        pod.knobs.update({"latency_ms": a.latency_ms, "latency_jitter_ms": a.latency_jitter_ms,
                          "error_rate": a.error_rate, "error_code": a.error_code, "ready": not a.not_ready,
                          "keepalive_timeout_ms": a.keepalive_timeout_ms, "network_delay_ms": a.network_delay_ms,
                          "connection_close": close in ("true", "1", "yes")})
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
