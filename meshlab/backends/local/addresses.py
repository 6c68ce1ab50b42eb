"""Per-lab loopback address blocks, so two labs never collide — two kernels, two Unix users, two
TMPDIRs, two containers sharing a network namespace.

**The lease.** A lab leases one ``127.A.0.0/16`` block (A in 2..254) by binding the abstract UNIX
socket ``@meshlab-lease/127.A`` and keeping it for its lifetime. Why that and not a lock file:
the abstract socket namespace is scoped to the network namespace, exactly the scope of the
loopback addresses it hands out, whoever the user and whatever their TMPDIR (per-user temp
folders, systemd's PrivateTmp); it is owned by no file, so there are no permissions to get wrong
and no path another user can plant a symlink on; and the kernel releases the name the moment
its holder closes it or dies (unix(7), "Abstract sockets"). Linux only, like the rest of the
local backend (it needs all of 127/8 on loopback).

**The second line of defence.** A lab's processes die with it (`meshlab._processes`: PDEATHSIG
via util-linux's `setpriv`, plus a stdin watchdog for pods and kube-proxy). Without `setpriv`,
a SIGKILLed kernel leaves its Envoys running on the block it no longer leases. So a lab that
gets a block first looks at it: every process carrying a dead lab's marker for this block
(`MESHLAB_LAB=127.A/<owner pid>/<owner start time>` in its environment, set by
`lab_marker`) that runs as this user is killed; if anything else still listens on an address of
the block (another user's orphans, or a program that is not meshlab's), the block is skipped.

**Not a lab at all.** A process that is no lab may take an address of the block later (a learner's
own server on 127.A.1.1:9080), or hold a port on every address (0.0.0.0:9080): the lease cannot
see it coming. So `pod_ip` tries to bind the ports the pod will listen on before it gives an
address out, passes over one where that fails, and says which process-held ports stopped it when
no address is left.

Inside the block the layout is fixed:

- ``127.A.0.1``  the client sidecar Envoy (listeners), i.e. the ``sleep`` pod's address
- ``127.A.0.2``  the ingress gateway Envoy
- ``127.A.0.3+`` extra client sidecars (probes from other namespaces)
- ``127.A.1.x``  pods (then 127.A.3.x, 127.A.4.x ... when 254 are not enough)
- ``127.A.2.x``  Service ClusterIPs (an address is free again when its Service is deleted)
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable

from ..._processes import own_pids
from ...errors import AddressBlockExhausted, LabError

_FIRST_BLOCK, _LAST_BLOCK = 2, 254
_POD_OCTETS = [1] + list(range(3, 255))   # 127.A.2.x is for ClusterIPs
#: Pod addresses one block holds (127.A.1.x and 127.A.3.x … 127.A.254.x, 254 each).
POD_ADDRESSES = len(_POD_OCTETS) * 254
#: The environment variable that marks a lab's processes (see `lab_marker`).
MARKER = "MESHLAB_LAB"
_LEASE_PREFIX = b"\0meshlab-lease/127."
# netlink sock_diag (linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h)
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, _NLM_F_DUMP = 4, 20, 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE, _TCP_LISTEN = 2, 3, 10


# ------------------------------------------------------------------------------------ processes

def start_time(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid it
    names one process for good, even after the pid is reused. None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == b"Z":          # a zombie runs nothing and holds nothing
        return None
    return int(fields[19])


def owner_alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


def lab_marker(block: int) -> str:
    """The value of `MARKER` for the processes of this process's lab on `block`."""
    return f"127.{block}/{os.getpid()}/{start_time(os.getpid())}"


def _parse_marker(value: bytes) -> tuple[int, int, int] | None:
    try:
        prefix, pid, started = value.decode().split("/")
        return int(prefix.removeprefix("127.")), int(pid), int(started)
    except ValueError:
        return None


def _marker_of(pid: int) -> tuple[int, int, int] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:                # another user's process, or gone
        return None
    for item in env.split(b"\0"):
        if item.startswith(MARKER.encode() + b"="):
            return _parse_marker(item.split(b"=", 1)[1])
    return None


def orphans(block: int) -> list[int]:
    """This user's processes left behind on `block` by a lab whose owner is dead."""
    found = []
    for pid in own_pids():
        mark = _marker_of(pid)
        if mark is not None and mark[0] == block and not owner_alive(mark[1], mark[2]):
            found.append(pid)
    return found


def _listening() -> list[tuple[str, int]]:
    """(ip, port) of every listening IPv4 TCP socket in this network namespace.

    Asked of the kernel through netlink sock_diag (linux/inet_diag.h: an inet_diag_req_v2 for TCP
    sockets in state LISTEN), which answers with just those: reading /proc/net/tcp instead means
    formatting and parsing every socket of the host, tens of milliseconds with the thousands in
    TIME_WAIT a busy workshop host has. /proc/net/tcp stays the fallback."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as s:
            req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN) + bytes(48)
            s.send(struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
                   + req)
            out: list[tuple[str, int]] = []
            while True:
                data, off = s.recv(1 << 16), 0
                while off < len(data):
                    length, kind = struct.unpack_from("=IH", data, off)
                    if kind == _NLMSG_DONE:
                        return out
                    if kind == _NLMSG_ERROR or length < 16:
                        raise OSError("sock_diag refused the request")
                    port, = struct.unpack_from("!H", data, off + 20)          # inet_diag_msg.id.idiag_sport
                    out.append((socket.inet_ntoa(data[off + 24:off + 28]), port))   # .idiag_src[0]
                    off += (length + 3) & ~3
    except OSError:
        pass
    out = []
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if len(parts) > 3 and parts[3] == "0A":
                    addr, port = parts[1].split(":")
                    out.append((socket.inet_ntoa(bytes.fromhex(addr)[::-1]), int(port, 16)))
    except OSError:
        pass
    return out


def _listening_in_block(block: int) -> list[str]:
    """ip:port of every listening TCP socket on 127.A.x.y in this network namespace."""
    prefix = f"127.{block}."
    return [f"{ip}:{port}" for ip, port in _listening() if ip.startswith(prefix)]


def _reclaim(block: int) -> bool:
    """Make `block` usable: kill the processes a dead lab left on it; False if something else
    still listens there."""
    dead = orphans(block)
    for pid in dead:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5.0
    while True:
        busy = _listening_in_block(block)
        if not busy or time.monotonic() > deadline or not dead:
            return not busy
        time.sleep(0.02)                 # the kernel closes a killed process's sockets


def _unbindable(ip: str, ports: list[int]) -> list[tuple[int, str]]:
    """(port, reason) for each TCP port a pod could not bind on `ip` now. A probe bind, closed at
    once, made as the pod's app binds (SO_REUSEADDR: a closed connection's TIME_WAIT does not count,
    a socket someone else has bound or listens on does)."""
    held = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError as e:
                held.append((port, e.strerror or str(e)))
    return held


#: An address no lab is given (blocks are 127.2-254): a port that cannot be bound here either is
#: held on every address (a server on 0.0.0.0 or [::]), so trying the rest of a block is futile.
_NO_LABS_ADDRESS = "127.255.255.254"


# ------------------------------------------------------------------------------------ the lease

class AddressLease:
    """A leased ``127.A.0.0/16`` block plus allocators for pod IPs and ClusterIPs inside it.

    `block` asks for one block (tests); otherwise the first free one of 2..254. Raises
    AddressBlockExhausted when none is free (each skipped block is named with its reason).
    `reclaimed` lists the pids of a dead lab's processes this lease killed (the second line of
    defence at work).
    """

    def __init__(self, block: int | None = None) -> None:
        if not sys.platform.startswith("linux"):
            raise LabError("the local backend needs Linux (a whole 127.0.0.0/8 on loopback, abstract "
                           "UNIX sockets); use the kind backend elsewhere")
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.reclaimed: list[int] = []
        candidates = [block] if block is not None else list(range(_FIRST_BLOCK, _LAST_BLOCK + 1))
        skipped: list[str] = []
        for a in candidates:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            try:
                sock.bind(_LEASE_PREFIX + str(a).encode())
            except OSError as e:
                sock.close()
                if e.errno != errno.EADDRINUSE:
                    raise LabError(f"cannot lease 127.{a}.0.0/16: {e.strerror}") from None
                continue                                  # another lab holds it
            dead = orphans(a)
            if dead or _listening_in_block(a):
                if not _reclaim(a):
                    sock.close()
                    skipped.append(f"127.{a}.0.0/16 (something that is not a lab of yours listens on "
                                   f"{', '.join(_listening_in_block(a)[:3])})")
                    continue
                self.reclaimed = dead
            self._sock, self.block = sock, a
            break
        else:
            why = "; skipped " + "; ".join(skipped[:3]) if skipped else ""
            raise AddressBlockExhausted(
                f"no free 127.A.0.0/16 block (A={candidates[0]}..{candidates[-1]}): every one is leased by "
                f"another lab on this host{why}. Close a lab you no longer use (lab.close())")
        self._pod_next: dict[int, int] = {}
        self._pods_free: list[str] = []
        self._pod_cursor = 0
        self._svc_ips: dict[object, str] = {}
        self._proxy_next = 3

    # fixed addresses -------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"127.{self.block}"

    @property
    def sidecar_ip(self) -> str:
        return f"127.{self.block}.0.1"

    @property
    def gateway_ip(self) -> str:
        return f"127.{self.block}.0.2"

    @property
    def marker(self) -> str:
        """`MESHLAB_LAB`'s value for this lab's processes (how a later lab recognises them)."""
        return lab_marker(self.block)

    # allocators ------------------------------------------------------------------------------
    def proxy_ip(self) -> str:
        """An address for one more client sidecar (127.A.0.3, .4, ...)."""
        with self._lock:
            if self._proxy_next > 254:
                raise AddressBlockExhausted("more than 252 extra client proxies in one lab")
            ip = f"127.{self.block}.0.{self._proxy_next}"
            self._proxy_next += 1
            return ip

    def pod_ip(self, ports: Iterable[int] = ()) -> str:
        """A pod address (127.A.1.x first; freed ones are reused last) on which each TCP port of
        `ports` can be bound now. The lease keeps other labs off the block, but not a process that
        is no lab (a learner's own server on 127.A.1.1:9080): an address where one of `ports` is
        held is passed over, and tried again only after every other one.

        Raises AddressBlockExhausted when no address is left, naming the addresses and ports that
        were held, or at once when a port is held on every address (something listens on
        0.0.0.0:PORT or [::]:PORT)."""
        wanted = sorted(set(ports))
        with self._lock:
            passed: list[str] = []
            held: list[str] = []
            try:
                while (ip := self._next_pod_ip()) is not None:
                    busy = _unbindable(ip, wanted)
                    if not busy:
                        return ip
                    passed.append(ip)
                    held += [f"{ip}:{port} ({why})" for port, why in busy]
                    everywhere = _unbindable(_NO_LABS_ADDRESS, [port for port, _ in busy])
                    if everywhere:
                        port, why = everywhere[0]
                        raise AddressBlockExhausted(
                            f"no pod can listen on port {port}: it cannot be bound on any address of this host "
                            f"({held[0]}; {_NO_LABS_ADDRESS}:{port} ({why})): a process that is not this lab listens "
                            f"on 0.0.0.0:{port} or [::]:{port}. Stop it or move it to another port, then apply again")
            finally:
                self._pods_free += passed                # tried again, last
            if held:
                shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
                raise AddressBlockExhausted(
                    f"no pod address left in 127.{self.block}.0.0/16 where port(s) {', '.join(map(str, wanted))} "
                    f"can be bound: processes that are not this lab hold {shown}")
            raise AddressBlockExhausted(f"no pod address left in this lab's block ({POD_ADDRESSES} in use)")

    def _next_pod_ip(self) -> str | None:
        """The next address never given out, else the oldest freed one; None when neither is left."""
        while self._pod_cursor < len(_POD_OCTETS):
            third = _POD_OCTETS[self._pod_cursor]
            last = self._pod_next.get(third, 1)
            if last <= 254:
                self._pod_next[third] = last + 1
                return f"127.{self.block}.{third}.{last}"
            self._pod_cursor += 1
        return self._pods_free.pop(0) if self._pods_free else None

    def release_pod_ip(self, ip: str) -> None:
        with self._lock:
            if ip not in self._pods_free:
                self._pods_free.append(ip)

    def cluster_ip(self, owner: object = None) -> str:
        """The ClusterIP (127.A.2.x) of the Service `owner` (e.g. its (namespace, name)): the
        lowest free one, or the one it already has. At most 254 Services at once."""
        with self._lock:
            if owner is not None and owner in self._svc_ips:
                return self._svc_ips[owner]
            used = set(self._svc_ips.values())
            ip = next((f"127.{self.block}.2.{d}" for d in range(1, 255) if f"127.{self.block}.2.{d}" not in used),
                      None)
            if ip is None:
                raise AddressBlockExhausted("more than 254 Services in one lab: 127.A.2.1-254 are all taken "
                                            "(delete Services you no longer use)")
            self._svc_ips[owner if owner is not None else object()] = ip
            return ip

    def release_cluster_ip(self, owner: object) -> None:
        """The Service `owner` was deleted: its ClusterIP is free again."""
        with self._lock:
            self._svc_ips.pop(owner, None)

    @property
    def passthrough_cidr(self) -> str:
        """The CIDR a connection's original destination must be in for a lab's Envoy to keep it:
        the lab's own block (`envoy.xds.original_dst_guard`). A sidecar's own addresses are in it
        but cannot make it dial itself without end: only `virtualOutbound` (15001) is bound, and a
        connection passed through to it again carries no PROXY header, so Envoy closes it."""
        return f"127.{self.block}.0.0/16"

    def owns(self, ip: str) -> bool:
        return ip.startswith(f"127.{self.block}.")

    # lifetime --------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._sock is not None

    def release(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> "AddressLease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"AddressLease(127.{getattr(self, 'block', '?')}.0.0/16, held={self.held})"
