"""kube-proxy emulation for clients without a sidecar: ClusterIP:port → a random ready pod.

iptables semantics (istio-semantics.md §6): the backend is picked uniformly at random **once per
new TCP connection** and every later byte of that connection goes to the same pod, so HTTP
keep-alive sticks to one pod. ``sessionAffinity: ClientIP`` pins a client IP to its first pod for
``timeoutSeconds``. A Service port with no ready endpoint has no listener at all, so a connect
is refused at once (kube-proxy's REJECT rule). No retries, no L7 awareness.

It runs as a child process (its own GIL, so proxying does not compete with the probe or a
notebook; and it dies with the parent): the parent writes JSON lines on the child's stdin
(``KubeProxy.update``) and the child answers one ack line once listeners match the new table,
so a change is live when ``update`` returns. EOF on stdin (parent gone) ends the child.

This file is standard-library only at import time, because the child runs it as a script.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any


_HIGH_WATER = 1 << 20


@dataclass
class ServicePortRule:
    """One ClusterIP:port and the pod endpoints behind it (what one KUBE-SVC chain holds)."""

    service: str            # "namespace/name:port" — for messages
    ip: str
    port: int
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    affinity: bool = False   # sessionAffinity: ClientIP
    affinity_timeout: float = 10800.0

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "ip": self.ip, "port": self.port,
                "endpoints": [list(e) for e in self.endpoints],
                "affinity": self.affinity, "affinity_timeout": self.affinity_timeout}


# ---------------------------------------------------------------------------------------------
# child side: the proxy itself
# ---------------------------------------------------------------------------------------------

class _Pipe(asyncio.Protocol):
    """One direction-agnostic end of a spliced connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is not None and peer.transport is not None and peer.transport.can_write_eof():
            peer.transport.write_eof()
            if peer.eof:
                peer.transport.close()
                if self.transport is not None:
                    self.transport.close()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


def _reset(transport: asyncio.Transport) -> None:
    """Close with RST (what the client sees when DNAT hits a port nobody listens on)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class _Proxy:
    def __init__(self, seed: int | None) -> None:
        self.rng = random.Random(seed)
        self.rules: dict[tuple[str, int], dict[str, Any]] = {}
        self.servers: dict[tuple[str, int], asyncio.AbstractServer] = {}
        self.sticky: dict[tuple[str, int, str], tuple[tuple[str, int], float]] = {}

    def pick(self, key: tuple[str, int], client_ip: str) -> tuple[str, int] | None:
        rule = self.rules.get(key)
        if not rule or not rule["endpoints"]:
            return None
        eps = rule["endpoints"]
        if rule["affinity"]:
            now = time.monotonic()
            hit = self.sticky.get((key[0], key[1], client_ip))
            if hit is not None and hit[1] > now and hit[0] in eps:
                self.sticky[(key[0], key[1], client_ip)] = (hit[0], now + rule["affinity_timeout"])
                return hit[0]
            ep = self.rng.choice(eps)
            self.sticky[(key[0], key[1], client_ip)] = (ep, now + rule["affinity_timeout"])
            return ep
        return self.rng.choice(eps)

    def accept(self, key: tuple[str, int]) -> _Pipe:
        proxy = self

        class _Downstream(_Pipe):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                transport.pause_reading()  # type: ignore[attr-defined]
                client_ip = transport.get_extra_info("peername")[0]
                ep = proxy.pick(key, client_ip)
                if ep is None:
                    _reset(transport)  # type: ignore[arg-type]
                    return
                asyncio.ensure_future(self._connect(ep))

            async def _connect(self, ep: tuple[str, int]) -> None:
                loop = asyncio.get_running_loop()
                up = _Pipe()
                try:
                    await loop.create_connection(lambda: up, ep[0], ep[1])
                except OSError:
                    if self.transport is not None:
                        _reset(self.transport)
                    return
                if self.transport is None:  # client went away meanwhile
                    if up.transport is not None:
                        up.transport.close()
                    return
                up.peer, self.peer = self, up
                for chunk in self.pending:
                    up.transport.write(chunk)  # type: ignore[union-attr]
                self.pending.clear()
                self.transport.resume_reading()

        return _Downstream()

    async def apply(self, table: list[dict[str, Any]]) -> list[str]:
        """Make listeners match the table. Returns problems (e.g. an address already in use)."""
        loop = asyncio.get_running_loop()
        problems: list[str] = []
        new: dict[tuple[str, int], dict[str, Any]] = {}
        for r in table:
            r = dict(r)
            r["endpoints"] = [tuple(e) for e in r["endpoints"]]
            new[(r["ip"], int(r["port"]))] = r
        self.rules = new
        for key in list(self.servers):
            if key not in new or not new[key]["endpoints"]:
                self.servers.pop(key).close()   # no ready endpoint: refuse new connections
        for key, r in new.items():
            if r["endpoints"] and key not in self.servers:
                try:
                    self.servers[key] = await loop.create_server(
                        lambda k=key: self.accept(k), key[0], key[1], reuse_address=True, backlog=1024)
                except OSError as e:
                    problems.append(f"{r['service']} {key[0]}:{key[1]}: {e.strerror or e}")
        live = {(k[0], k[1]) for k in new}
        for sk in [s for s in self.sticky if (s[0], s[1]) not in live]:
            del self.sticky[sk]
        return problems


async def _child(seed: int | None) -> None:
    loop = asyncio.get_running_loop()
    proxy = _Proxy(seed)
    stop = loop.create_future()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    async def _commands() -> None:
        while True:
            line = await reader.readline()
            if not line:          # parent gone
                break
            msg = json.loads(line)
            if "seed" in msg:      # restart the random choices (a seeded probe is reproducible)
                proxy.rng = random.Random(msg["seed"])
                proxy.sticky.clear()
            problems = await proxy.apply(msg["services"]) if "services" in msg else []
            sys.stdout.write(json.dumps({"ack": msg.get("seq"), "problems": problems}) + "\n")
            sys.stdout.flush()
        stop.done() or stop.set_result(None)

    task = asyncio.ensure_future(_commands())
    await stop
    task.cancel()
    for s in proxy.servers.values():
        s.close()


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------

class KubeProxy:
    """Handle on the kube-proxy child process of one lab."""

    def __init__(self, seed: int | None = None, log_path: str | os.PathLike | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.seed = seed
        self.log_path = log_path
        self.env = env                      # the child's whole environment (None: this process's)
        self.rules: list[ServicePortRule] = []
        self._proc = None
        self._seq = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        import subprocess

        from .pods import spawn
        argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--child"]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        err: Any = subprocess.DEVNULL
        if self.log_path:
            err = open(self.log_path, "ab")
        try:
            self._proc = spawn(argv, stdout=subprocess.PIPE, stderr=err, env=self.env)
        finally:
            if err is not subprocess.DEVNULL:
                err.close()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def update(self, rules: list[ServicePortRule], timeout: float = 10.0) -> None:
        """Replace the whole table; returns once the child's listeners match it."""
        self._send({"services": [r.to_json() for r in rules]})
        self.rules = list(rules)

    def reseed(self, seed: int) -> None:
        """Restart the per-connection random choices from `seed` (and forget ClientIP affinity)."""
        self._send({"seed": int(seed)})

    def _send(self, body: dict[str, Any]) -> None:
        from ...errors import KubeProxyError   # here, not at the top: the child runs this file as a script
        with self._lock:
            if not self.alive:
                raise KubeProxyError("kube-proxy process is not running")
            self._seq += 1
            msg = {"seq": self._seq, **body}
            p = self._proc
            p.stdin.write((json.dumps(msg) + "\n").encode())  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
            line = p.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise KubeProxyError("kube-proxy process exited")
            ack = json.loads(line)
            if ack.get("problems"):
                raise KubeProxyError("kube-proxy: " + "; ".join(ack["problems"]))

    def close(self) -> None:
        p, self._proc = self._proc, None
        if p is None:
            return
        try:
            p.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            p.wait(timeout=1.0)
        except Exception:
            p.kill()
            p.wait()
        if p.stdout:
            p.stdout.close()


def _main(argv: list[str]) -> int:
    seed = None
    if "--seed" in argv:
        seed = int(argv[argv.index("--seed") + 1])
    try:
        asyncio.run(_child(seed))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
