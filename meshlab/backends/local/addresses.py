"""Per-lab loopback address blocks, so two labs (even in two kernels) never collide.

Each lab leases one ``127.A.0.0/16`` block (A in 2..254) by holding an exclusive ``flock`` on a
lock file in a shared temp directory. The kernel drops the lock when the holder closes it or
dies, so a crashed kernel never leaks its block. Inside the block the layout is fixed:

- ``127.A.0.1``  the client sidecar Envoy (listeners + admin), i.e. the ``sleep`` pod's address
- ``127.A.0.2``  the ingress gateway Envoy
- ``127.A.0.3+`` extra client sidecars (probes from other namespaces)
- ``127.A.1.x``  pods (then 127.A.3.x, 127.A.4.x ... when 254 are not enough)
- ``127.A.2.x``  Service ClusterIPs
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from pathlib import Path

from ...errors import AddressBlockExhausted

_FIRST_BLOCK, _LAST_BLOCK = 2, 254
_POD_OCTETS = [1] + list(range(3, 255))   # 127.A.2.x is for ClusterIPs


def _lock_dir() -> Path:
    d = Path(os.environ.get("MESHLAB_LOCK_DIR") or Path(tempfile.gettempdir()) / "meshlab-leases")
    d.mkdir(parents=True, exist_ok=True)
    try:
        d.chmod(0o1777)   # shared between users, like /tmp itself
    except OSError:
        pass
    return d


class AddressLease:
    """A leased ``127.A.0.0/16`` block plus allocators for pod IPs and ClusterIPs inside it."""

    def __init__(self, block: int | None = None) -> None:
        self._fd: int | None = None
        self._lock = threading.Lock()
        candidates = [block] if block is not None else range(_FIRST_BLOCK, _LAST_BLOCK + 1)
        d = _lock_dir()
        for a in candidates:
            fd = os.open(d / f"127.{a}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            os.set_inheritable(fd, False)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd, self.block = fd, a
            break
        else:
            raise AddressBlockExhausted(
                f"no free 127.A.0.0/16 block in {d} (A={candidates[0]}..{candidates[-1]} all leased)")
        self._pod_next: dict[int, int] = {}
        self._pods_free: list[str] = []
        self._pod_cursor = 0
        self._svc_next = 1
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

    # allocators ------------------------------------------------------------------------------
    def proxy_ip(self) -> str:
        """An address for one more client sidecar (127.A.0.3, .4, ...)."""
        with self._lock:
            if self._proxy_next > 254:
                raise AddressBlockExhausted("more than 252 extra client proxies in one lab")
            ip = f"127.{self.block}.0.{self._proxy_next}"
            self._proxy_next += 1
            return ip

    def pod_ip(self) -> str:
        """A fresh pod address (127.A.1.x first). Freed addresses are reused last."""
        with self._lock:
            while self._pod_cursor < len(_POD_OCTETS):
                third = _POD_OCTETS[self._pod_cursor]
                last = self._pod_next.get(third, 1)
                if last <= 254:
                    self._pod_next[third] = last + 1
                    return f"127.{self.block}.{third}.{last}"
                self._pod_cursor += 1
            if self._pods_free:
                return self._pods_free.pop(0)
            raise AddressBlockExhausted("no pod address left in this lab's block")

    def release_pod_ip(self, ip: str) -> None:
        with self._lock:
            if ip not in self._pods_free:
                self._pods_free.append(ip)

    def cluster_ip(self) -> str:
        """A fresh Service ClusterIP (127.A.2.x)."""
        with self._lock:
            if self._svc_next > 254:
                raise AddressBlockExhausted("more than 254 Services in one lab")
            ip = f"127.{self.block}.2.{self._svc_next}"
            self._svc_next += 1
            return ip

    def owns(self, ip: str) -> bool:
        return ip.startswith(f"127.{self.block}.")

    # lifetime --------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                finally:
                    os.close(self._fd)
                    self._fd = None

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
