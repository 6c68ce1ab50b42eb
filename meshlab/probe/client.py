"""The traffic generator: real HTTP/1.1 requests → one DataFrame row per request (`rows.py`).

Why its own thread and event loop: notebooks already run an event loop, so the probe cannot
``asyncio.run`` there; a background loop also lets a probe keep running while the notebook
applies changes (``ProbeRun``: a timeline of 503s appearing and disappearing).

What the client knows it records itself (status, client-side error, latency, which connection,
the pod/version headers the app answered with). What only Envoy knows comes from Envoy's JSON
access log, tailed here (`LogTail`) and joined on the ``x-request-id`` the probe puts on every
request by `rows.join` — never inferred.

The backend resolves the URL (``Target``): cluster DNS, ClusterIP vs. sidecar listener vs.
ingress gateway. This module only speaks HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import numbers
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import ProbeError
from . import rows as _rows


@dataclass
class Target:
    """Where the probe's bytes go, decided by the backend for one URL/via/namespace.

    `connect` is None when the name does not resolve (`error="dns"` on every row).
    `access_logs` are the Envoy access logs that may hold this traffic (joined by request id).
    """

    proxy: str                       # "sidecar" | "gateway" | "none" | a gateway deployment ("web-istio")
    connect: tuple[str, int] | None
    host_header: str
    path: str
    source_ip: str | None = None
    access_logs: list[Path] = field(default_factory=list)
    error: str = ""
    #: The address the app dialled, when `connect` is a sidecar's virtual outbound listener: sent
    #: first on each connection as a PROXY protocol (v1) header, standing in for iptables'
    #: SO_ORIGINAL_DST (meshlab.istiod.listeners).
    original_dst: tuple[str, int] | None = None


@dataclass
class ParsedURL:
    scheme: str
    host: str
    port: int
    explicit_port: bool
    path: str

    @property
    def authority(self) -> str:
        """The Host header a client (curl, an app) sends for this URL."""
        return f"{self.host}:{self.port}" if self.explicit_port else self.host


# Characters a URL path/query may carry as they are; anything else is percent-encoded (UTF-8),
# as a browser or Python requests would: Envoy answers a raw space or non-ASCII byte with 400.
_URL_SAFE = "/?&=%:@!$'()*+,;~-._[]"


def parse_url(url: str) -> ParsedURL:
    """Split a probe URL; only plain http is supported (the lab is plaintext, like auto-mTLS)."""
    if not isinstance(url, str):
        raise ProbeError(f"probe URL must be a string such as 'http://reviews:9080/', not {url!r}")
    if "://" not in url:
        url = "http://" + url
    try:
        u = urlsplit(url)
    except ValueError as e:         # "Invalid IPv6 URL": http://[::1/
        raise ProbeError(f"probe URL {_clip(url)}: {e}") from None
    if u.scheme != "http":
        raise ProbeError(f"probe URL {url!r}: only http:// is supported (the lab runs plaintext)")
    if not u.hostname:
        raise ProbeError(f"probe URL {url!r}: no host")
    try:
        port = u.port
    except ValueError:
        raise ProbeError(f"probe URL {url!r}: bad port") from None
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    path = quote(path, safe=_URL_SAFE)
    return ParsedURL(u.scheme, u.hostname, port or 80, port is not None, path)


def parse_header(text: str) -> tuple[str, str]:
    """`'end-user: jason'` → ('end-user', 'jason'), as curl's `-H` takes it (ProbeError if not)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ProbeError(f"header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")         # an HTTP header name (RFC 9110 token), fullmatch
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")         # control characters (tab is fine)


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


#: The methods a probe sends (a body-less request each; POST/PUT/PATCH with `content-length: 0`).
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

#: Requests one probe may send (and rows one run keeps). A row with its Envoy access-log line
#: takes about 3 KB in this process (measured: 50,000 rows ≈ 160 MB), so this bounds a run at
#: ~320 MB, within a Binder-sized notebook. An open-ended `probing()` run stops here by itself.
MAX_REQUESTS = 100_000
#: Connections one probe may hold open. Each is a coroutine and a socket here and two sockets in
#: the sidecar Envoy; the local lab also checks the open-files limit (backends/local/limits.py).
MAX_CONCURRENCY = 10_000
#: The longest a probe may run, and the longest a request may wait (seconds): a cell that blocks
#: longer is a mistake (`rate=0.0001`), not an experiment; `probing()` runs in the background.
MAX_SECONDS = 3600.0
#: The slowest rate (requests per second): one request every 100 s.
MIN_RATE = 0.01


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_args(*, n: Any = None, concurrency: Any = 1, keepalive: Any = True, headers: Any = None,
               rate: Any = None, duration: Any = None, timeout: Any = 30.0, seed: Any = None,
               method: Any = "GET") -> None:
    """Refuse probe arguments that are wrong before anything starts, naming the argument
    (a float `n`, a string where a number goes, a header a server would reject) and the bound
    it crosses (`MAX_REQUESTS`, `MAX_CONCURRENCY`, `MAX_SECONDS`, `MIN_RATE`), with the reason."""
    if method not in METHODS:
        raise ProbeError(f"method must be one of {', '.join(METHODS)} (in capitals), not {_clip(method)}")
    if n is not None and not (_is_int(n) and n >= 0):
        raise ProbeError(f"n must be a whole number of requests >= 0, not {_clip(n)}")
    if n is not None and n > MAX_REQUESTS:
        raise ProbeError(f"n={n} is more than a probe may send ({MAX_REQUESTS:,}): each request's row takes about "
                         f"3 KB here, so {n:,} would need {n * 3 / 1e6:,.1f} GB. Use n <= {MAX_REQUESTS:,}")
    if not (_is_int(concurrency) and concurrency >= 1):
        raise ProbeError(f"concurrency must be a whole number >= 1 (connections in parallel), not {_clip(concurrency)}")
    if concurrency > MAX_CONCURRENCY:
        raise ProbeError(f"concurrency={concurrency} is more connections than a probe may hold open "
                         f"({MAX_CONCURRENCY:,}: each is a socket here and two in the sidecar Envoy)")
    if rate is not None and not (_is_number(rate) and rate > 0):
        raise ProbeError(f"rate must be a number > 0 (requests per second) or None, not {_clip(rate)}")
    if rate is not None and rate < MIN_RATE:
        raise ProbeError(f"rate={rate} is slower than a probe may go ({MIN_RATE} requests per second, one every "
                         f"{1 / MIN_RATE:g} s)")
    if duration is not None and not (_is_number(duration) and duration > 0):
        raise ProbeError(f"duration must be a number of seconds > 0 or None, not {_clip(duration)}")
    if duration is not None and duration > MAX_SECONDS:
        raise ProbeError(f"duration={duration} s is longer than a probe may run ({MAX_SECONDS:g} s)")
    if n is not None and rate is not None and duration is None and n / rate > MAX_SECONDS:
        raise ProbeError(f"n={n} at rate={rate} would take {n / rate:,.0f} s, longer than a probe may run "
                         f"({MAX_SECONDS:g} s); raise the rate or lower n")
    if not (_is_number(timeout) and timeout > 0):
        raise ProbeError(f"timeout must be a number of seconds > 0, not {_clip(timeout)}")
    if timeout > MAX_SECONDS:
        raise ProbeError(f"timeout={timeout} s is longer than a request may wait ({MAX_SECONDS:g} s)")
    if seed is not None and not _is_int(seed):
        raise ProbeError(f"seed must be a whole number or None, not {_clip(seed)}")
    if keepalive not in (True, False):
        raise ProbeError(f"keepalive must be True or False, not {_clip(keepalive)}")
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise ProbeError(f"headers must be a dict such as {{'end-user': 'jason'}}, not {_clip(headers)}")
    for k, v in headers.items():
        if not isinstance(k, str) or not _TOKEN.fullmatch(k):
            raise ProbeError(f"bad header name {_clip(k)}: a name is letters, digits and -_. (no spaces, no colon)")
        if k.lower() in ("x-request-id", "content-length", "transfer-encoding"):
            raise ProbeError(f"header {k!r} is set by the probe itself")
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise ProbeError(f"header {k!r}: the value must be a string, not {_clip(v)}")
        if _BAD_VALUE.search(str(v)):
            raise ProbeError(f"bad header value for {k!r}: {_clip(v)} (no line breaks or control characters)")


# ---------------------------------------------------------------------------------------------
# the background loop
# ---------------------------------------------------------------------------------------------

class _Loop:
    """One daemon thread running an asyncio loop for every probe of the process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="meshlab-probe", daemon=True).start()
                self._loop = loop
            return self._loop

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


_LOOP = _Loop()
_probe_ids = itertools.count(1)


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 client connection
# ---------------------------------------------------------------------------------------------

class _ClientConn(asyncio.Protocol):
    """One client connection: one request in flight at a time, response parsed minimally."""

    def __init__(self, cid: int) -> None:
        self.cid = cid
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.close_exc: BaseException | None = None
        self.head: tuple[int, dict[str, str]] | None = None
        self.body_left: int | None = None   # None: read until close; -1: chunked
        self.requests = 0
        self.local = ""                     # "ip:port" of our end (a TCP access-log line names it)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.close_exc = exc
        w = self.waiter
        if w is not None and not w.done():
            if self.head is not None and self.body_left is None:   # body delimited by close
                w.set_result(self.head)
            else:
                w.set_exception(ConnectionResetError("connection closed before a full response"))

    def request(self, data: bytes, timeout: float) -> asyncio.Future:
        """Send one request; the future gets (status, headers) or an error. The timeout is a
        plain timer (cheaper than wait_for, which matters at thousands of requests/s)."""
        loop = asyncio.get_running_loop()
        w = self.waiter = loop.create_future()
        self.head, self.body_left, self.buf = None, 0, b""
        self.requests += 1
        timer = loop.call_later(timeout, self._timed_out, w)
        w.add_done_callback(lambda _f: timer.cancel())
        self.transport.write(data)  # type: ignore[union-attr]
        return w

    def _timed_out(self, w: asyncio.Future) -> None:
        if not w.done():
            w.set_exception(TimeoutError("no response in time"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._parse()

    def _parse(self) -> None:
        w = self.waiter
        if w is None or w.done():
            return
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].split(b"\r\n")
            self.buf = self.buf[end + 4:]
            try:
                status = int(lines[0].split(b" ", 2)[1])
            except (IndexError, ValueError):
                w.set_exception(ConnectionResetError("malformed HTTP response"))
                return
            hdrs: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
            self.head = (status, hdrs)
            if "content-length" in hdrs:
                self.body_left = int(hdrs["content-length"])
            elif hdrs.get("transfer-encoding", "").lower() == "chunked":
                self.body_left = -1
            elif status in (204, 304) or 100 <= status < 200:
                self.body_left = 0
            else:
                self.body_left = None
        if self.body_left is None:
            self.buf = b""
            return          # until close
        if self.body_left >= 0:
            if len(self.buf) >= self.body_left:
                self.buf = self.buf[self.body_left:]
                w.set_result(self.head)
            return
        # chunked: skip chunks until the zero-size one and its trailer
        while True:
            eol = self.buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(self.buf[:eol].split(b";")[0], 16)
            if size == 0:
                end = self.buf.find(b"\r\n\r\n", eol)
                if end < 0:
                    return
                self.buf = self.buf[end + 4:]
                w.set_result(self.head)
                return
            if len(self.buf) < eol + 2 + size + 2:
                return
            self.buf = self.buf[eol + 2 + size + 2:]


def _classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    return "reset"


# ---------------------------------------------------------------------------------------------
# a probe run
# ---------------------------------------------------------------------------------------------

class ProbeRun:
    """A probe in flight (or finished). ``result()`` waits and returns the DataFrame;
    ``snapshot()`` gives the rows so far (for live charts); ``stop()`` ends an open-ended run."""

    def __init__(self, target: Target, *, n: int | None, concurrency: int, keepalive: bool,
                 headers: dict[str, str] | None, rate: float | None, duration: float | None,
                 timeout: float, seed: int | None, method: str = "GET") -> None:
        check_args(n=n, concurrency=concurrency, keepalive=keepalive, headers=headers, rate=rate,
                   duration=duration, timeout=timeout, seed=seed, method=method)
        if n is None and duration is None and rate is None:
            n = 100
        self.open_ended = n is None and duration is None   # runs until stop()
        self.target = target
        self.attrs: dict[str, Any] = {}      # copied into the DataFrame's .attrs (url, via, ...)
        self.collected = False
        self.n, self.concurrency, self.keepalive = n, concurrency, keepalive
        self.rate, self.duration, self.timeout = rate, duration, timeout
        pid = next(_probe_ids)
        self.id_prefix = f"ml{os.getpid():x}-{pid}-{seed if seed is not None else int(time.time() * 1000) % 100000}"
        # which requests were this probe's, for what the pods' app logged (`Lab.app_log(df)`)
        self.attrs["request_id_prefix"] = self.id_prefix + "-"
        self._rows: list[dict[str, Any]] = []
        self._log_rows: dict[str, dict[str, Any]] = {}
        self._conn_log: dict[str, dict[str, Any]] = {}    # a tcp_proxy's line, by our end's ip:port
        also = [f'"{target.source_ip}:'] if target.source_ip else []
        self._readers = [LogTail(p, f"{self.id_prefix}-", also=also) for p in target.access_logs]
        self._stop = threading.Event()
        self._conn_ids = itertools.count(1)
        self._seq = itertools.count(0)
        self._t0 = 0.0
        extra = ""
        for k, v in (headers or {}).items():
            extra += f"{k}: {v}\r\n"
        has_host = any(k.lower() == "host" for k in (headers or {}))
        host_line = "" if has_host else f"host: {target.host_header}\r\n"
        conn_line = "" if keepalive else "connection: close\r\n"
        if method in ("POST", "PUT", "PATCH"):
            conn_line += "content-length: 0\r\n"
        # UTF-8, as curl sends what the terminal holds: a VirtualService match written in YAML
        # (UTF-8) then matches a non-ASCII header value byte for byte.
        self._req_head = (f"{method} {target.path} HTTP/1.1\r\n{host_line}user-agent: meshlab-probe\r\n"
                          f"{extra}{conn_line}x-request-id: ").encode("utf-8")
        self._future = _LOOP.submit(self._run())

    # ---- public ------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> None:
        self._future.result(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run (stop it first if it is open-ended) and return the DataFrame."""
        if self.open_ended:
            self.stop()
        try:
            self._future.result(timeout)
        except KeyboardInterrupt:      # a notebook interrupt stops the traffic too
            self.stop()
            raise
        self._join(final=True)
        self.collected = True          # Envoy's lines are in; the log may be trimmed now
        return self._frame()

    def snapshot(self) -> Any:
        """The rows completed so far, joined with whatever Envoy has logged so far."""
        self._join(final=False)
        return self._frame()

    def completed(self, start: int = 0) -> list[dict[str, Any]]:
        """The client rows (`rows.CLIENT_COLUMNS` + `request_id`) of the requests finished so far,
        in the order they finished, from the `start`-th on (what the in-pod prober streams)."""
        return self._rows[start:]

    def __enter__(self) -> "ProbeRun":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        try:
            self._future.result(self.timeout + 5)
        except Exception:
            pass

    # ---- sending -----------------------------------------------------------------------------
    async def _run(self) -> None:
        self._t0 = time.perf_counter()
        await asyncio.gather(*(self._worker() for _ in range(self.concurrency)))

    def _next_seq(self) -> int | None:
        if self._stop.is_set():
            return None
        seq = next(self._seq)
        if self.n is not None and seq >= self.n:
            return None
        if seq >= MAX_REQUESTS:          # an open-ended or duration-bound run: rows are bounded too
            self.attrs["stopped_at_limit"] = MAX_REQUESTS
            return None
        if self.duration is not None and time.perf_counter() - self._t0 >= self.duration:
            return None
        return seq

    async def _connect(self) -> _ClientConn:
        loop = asyncio.get_running_loop()
        conn = _ClientConn(next(self._conn_ids))
        host, port = self.target.connect  # type: ignore[misc]
        local = (self.target.source_ip, 0) if self.target.source_ip else None
        await asyncio.wait_for(loop.create_connection(lambda: conn, host, port, local_addr=local),
                               self.timeout)
        sock = conn.transport.get_extra_info("socket")  # type: ignore[union-attr]
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local = conn.transport.get_extra_info("sockname")  # type: ignore[union-attr]
        if local:
            conn.local = f"{local[0]}:{local[1]}"
        if self.target.original_dst is not None and local:
            dst_ip, dst_port = self.target.original_dst
            conn.transport.write(f"PROXY TCP4 {local[0]} {dst_ip} {local[1]} {dst_port}\r\n".encode())  # type: ignore[union-attr]
        return conn

    async def _worker(self) -> None:
        conn: _ClientConn | None = None
        try:
            while True:
                seq = self._next_seq()
                if seq is None:
                    return
                if self.rate:
                    due = self._t0 + seq / self.rate
                    while not self._stop.is_set() and (wait := due - time.perf_counter()) > 0:
                        await asyncio.sleep(min(wait, 0.1))     # stop() is noticed within 0.1 s
                    if self._stop.is_set():
                        return
                rid = f"{self.id_prefix}-{seq}"
                t = time.perf_counter()
                status, err, hdrs, cid, local = 0, "", None, 0, ""
                if self.target.connect is None:      # the name did not resolve: nothing is sent
                    self._rows.append(self._row(seq, t - self._t0, 0, self.target.error or "dns", rid,
                                                None, 0.0, 0, self.target.proxy))
                    if not self.rate:
                        await asyncio.sleep(0)     # let a duration-bound run see the clock
                    continue
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect()
                    cid, local = conn.cid, conn.local
                    status, hdrs = await conn.request(self._req_head + rid.encode() + b"\r\n\r\n",
                                                      self.timeout)
                except (OSError, asyncio.TimeoutError, ConnectionError) as e:
                    err = _classify(e)
                    if conn is not None:
                        conn.transport.abort() if conn.transport else None  # type: ignore[func-returns-value]
                        conn = None
                lat = (time.perf_counter() - t) * 1000.0
                self._rows.append(self._row(seq, t - self._t0, status, err, rid, hdrs, lat, cid,
                                            self.target.proxy, local))
                if conn is not None and (not self.keepalive or conn.closed
                                         or (hdrs or {}).get("connection", "").lower() == "close"):
                    if conn.transport is not None:
                        conn.transport.close()
                    conn = None
        finally:
            if conn is not None and conn.transport is not None:
                conn.transport.close()

    def _row(self, seq: int, t: float, status: int, err: str, rid: str, hdrs: dict | None,
             lat: float, cid: int, proxy: str, local: str = "") -> dict[str, Any]:
        h = hdrs or {}
        return {"seq": seq, "t": round(t, 6), "status": status, "error": err, "request_id": rid,
                "proxy": proxy or self.target.proxy, "pod": h.get("x-meshlab-pod", ""),
                "version": h.get("x-meshlab-version", ""), "latency_ms": lat, "conn": cid, "local": local}

    # ---- joining with Envoy's access log -----------------------------------------------------
    def _join(self, final: bool) -> None:
        """Collect Envoy's lines for our request ids. At the end, wait for the lines of every
        answered request — Envoy flushes every few ms — but not for lines that will never come
        (a tcp_proxy logs one line per connection, when it closes, naming no request id but our
        end of the connection): stop after 0.5 s without a new line, or 3 s."""
        if not self._readers:
            return
        start = last_new = time.monotonic()
        while True:
            got = 0
            for r in self._readers:
                for entry in r.read_new():
                    rid = entry.get("request_id")
                    if rid and rid != "-":
                        self._log_rows[rid] = entry
                        got += 1
                    elif entry.get("downstream_remote_address"):
                        self._conn_log[entry["downstream_remote_address"]] = entry
                        got += 1
            if not final:
                return
            now = time.monotonic()
            if got:
                last_new = now
            if not _rows.unlogged(self._rows, self._log_rows, self._conn_log) \
                    or now - last_new > 0.5 or now - start > 3.0:
                return
            time.sleep(0.01)

    def _entry(self, row: dict[str, Any]) -> dict[str, Any] | None:
        if self.target.proxy == "none":     # else a sidecar, the ingress gateway or a gateway deployment
            return None
        return self._log_rows.get(row["request_id"]) or (self._conn_log.get(row["local"]) if row.get("local") else None)

    def _frame(self) -> Any:
        return _rows.frame((_rows.join(r, self._entry(r), r["proxy"]) for r in list(self._rows)), self.attrs)


class LogTail:
    """The lines appended to one Envoy access log since it was opened (or last read).

    Only lines holding `"<prefix>` (a probe's request-id prefix), or one of the `also` strings,
    are parsed, all in one ``json.loads`` of a JSON array (tens of thousands of lines per second;
    per-line parsing was the bottleneck); no prefix reads every line. A partial last line (Envoy
    flushes in chunks) waits for the next read; a truncated or replaced file is read again from
    its start."""

    def __init__(self, path: str | os.PathLike[str], prefix: str = "", also: list[str] | None = None) -> None:
        self.path = Path(path)
        self.needles = [n.encode() for n in ([f'"{prefix}'] if prefix else []) + list(also or [])]
        self.partial = b""
        try:
            self.offset = self.path.stat().st_size
        except FileNotFoundError:
            self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self.offset:   # rotated/truncated
                    self.offset, self.partial = 0, b""
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            return []
        self.partial = data[cut + 1:]
        mine = [ln for ln in data[:cut].split(b"\n")
                if ln.strip() and (not self.needles or any(n in ln for n in self.needles))]
        if not mine:
            return []
        try:
            return json.loads(b"[" + b",".join(mine) + b"]")
        except ValueError:
            out = []
            for ln in mine:
                try:
                    out.append(json.loads(ln))
                except ValueError:
                    continue
            return out


def run(target: Target, *, n: int | None = 100, concurrency: int = 1, keepalive: bool = True,
        headers: dict[str, str] | None = None, rate: float | None = None,
        duration: float | None = None, timeout: float = 30.0, seed: int | None = None,
        method: str = "GET") -> ProbeRun:
    """Start a probe against a resolved target; returns at once (``.result()`` waits)."""
    return ProbeRun(target, n=n, concurrency=concurrency, keepalive=keepalive, headers=headers,
                    rate=rate, duration=duration, timeout=timeout, seed=seed, method=method)


def probe_direct(url: str, **kw: Any) -> Any:
    """Probe a plain address (no DNS emulation, no proxy) — handy for testing the app itself."""
    u = parse_url(url)
    return run(Target("none", (u.host, u.port), u.authority, u.path), **kw).result()
