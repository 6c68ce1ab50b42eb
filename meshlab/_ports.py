"""Where a lab socket really binds for a Kubernetes or Istio port number (low-port aliases).

Names never change (`outbound|80||web…`, listener `0.0.0.0_80`, Host `web:80`); only the loopback
socket moves when this process may not bind a privileged port (Binder runs as a normal user):
then port P < 1024 binds `LOW_PORT_ALIAS + P` (80 → 10080). Pods, kube-proxy, the Envoy
listeners, EDS endpoints and the probe all use this one rule, so whatever binds or dials a lab
address agrees — just as a real sidecar's listeners do not bind their ports either (iptables
sends the traffic to 15001).
"""

from __future__ import annotations

import os

#: A privileged port P that cannot be bound here binds LOW_PORT_ALIAS + P instead.
LOW_PORT_ALIAS = 10000


def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def can_bind(port: int) -> bool:
    """May this process bind `port`? (`MESHLAB_ALIAS_LOW_PORTS=1` forces "no" below 1024.)"""
    if os.environ.get("MESHLAB_ALIAS_LOW_PORTS") == "1":
        return port >= 1024
    return port >= _unprivileged_port_start() or os.geteuid() == 0


def host_port(port: int) -> int:
    """The port a lab socket uses for the Kubernetes/Istio port `port`: itself, or its alias."""
    return port if can_bind(port) else LOW_PORT_ALIAS + port
