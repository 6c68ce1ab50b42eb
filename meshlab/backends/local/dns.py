"""Cluster DNS for the local lab, and where a request goes from there.

A pod resolves `reviews`, `reviews.prod`, … with its search path (`meshlab.names.cluster_dns`);
there is no Service for the name → NXDOMAIN (`dns` on every row, nothing is sent). A Service's
name answers its ClusterIP (kube-proxy's loopback address here); a headless Service's answers its
ready pod IPs. Then the path the request takes (`via`): straight to that address (`none`, as an
app without a sidecar), into the client's sidecar Envoy (`sidecar`: to its virtualOutbound
listener, the dialled address in a PROXY protocol header, as iptables would redirect it there),
or to the ingress gateway (`gateway`).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..._ports import host_port
from ...errors import LabError, ProbeError
from ...istiod.listeners import VIRTUAL_OUTBOUND_PORT, gateway_listen_port
from ...probe import Target, parse_url
from ...state import ClusterState
from .reconcile import Reconciler

if TYPE_CHECKING:
    from ...objects import Service
    from ..base import Via


class ClusterDNS:
    """Names and addresses of one lab, as a client pod in it sees them."""

    def __init__(self, state: ClusterState, reconciler: Reconciler, client_ip: str, seed: int | None) -> None:
        self.state, self.reconciler, self.client_ip = state, reconciler, client_ip
        self._rng = random.Random(seed)

    def lookup(self, host: str, namespace: str) -> Service | None:
        """The Service `host` names from a pod in `namespace`: a name on the search path, or an IP
        literal that is a ClusterIP. None is NXDOMAIN."""
        svc = self.state.resolve_host(host, namespace)
        if svc is not None:
            return svc
        for s in self.state.services():
            if host in (self.state.cluster_ip(s), self.reconciler.vip(s)):
                return s
        return None

    def target(self, url: str, *, via: Via = "sidecar", namespace: str = "default") -> Target:
        """Where a request for `url` from a client in `namespace` goes, by the path `via` takes."""
        if not isinstance(via, str) or not via:
            raise ProbeError(f"via must be 'sidecar', 'none', 'gateway' or a gateway deployment's name, not {via!r}")
        u = parse_url(url)
        if via not in ("sidecar", "none", "gateway"):
            # a Gateway API gateway: the Envoy Istio deployed as `<gateway>-istio`, `[namespace/]name`
            ns, _, name = via.rpartition("/")
            gw = self.reconciler.gateway_deployment(name, ns or None)
            return Target(via, (gw.identity.ip, host_port(u.port)), u.authority, u.path, None,
                          [gw.envoy.access_log_path])
        if via != "gateway" and namespace not in self.state.namespaces():
            # the client pod would have to live somewhere: kubectl says `namespaces "x" not found`
            raise LabError(f'namespace "{namespace}" does not exist in this lab (namespaces: '
                           f'{", ".join(sorted(self.state.namespaces()))}); apply a Namespace first')
        if via == "gateway":
            gw = self.reconciler.gateway()
            return Target("gateway", (gw.identity.ip, gateway_listen_port(u.port)), u.authority, u.path, None,
                          [gw.envoy.access_log_path])
        client_ip = self.client_ip if via == "none" or namespace == "default" else None
        svc = self.lookup(u.host, namespace)
        if svc is None or svc.spec.type == "ExternalName":
            # NXDOMAIN (an ExternalName is a CNAME to a name outside the lab: no answer either)
            return Target(via, None, u.authority, u.path, error="dns")
        vip = self.reconciler.vip(svc)
        if vip is None:   # headless: DNS answers the ready pod IPs
            eps = [e for p in svc.spec.ports for e in self.state.endpoints(svc, p) if e.ip]
            if not eps:
                return Target(via, None, u.authority, u.path, error="dns")
            address = self._rng.choice(eps).ip or ""
        else:
            address = vip
        if via == "none":
            return Target("none", (address, host_port(u.port)), u.authority, u.path, client_ip)
        # Through the client's sidecar: the connection goes to its virtualOutbound listener with
        # the address the app dialled (what iptables would keep) in a PROXY protocol header.
        proxy = self.reconciler.client(namespace)
        dialled = self.state.cluster_ip(svc) or address
        return Target("sidecar", (proxy.identity.ip, VIRTUAL_OUTBOUND_PORT), u.authority, u.path, proxy.identity.ip,
                      [proxy.envoy.access_log_path], original_dst=(dialled, host_port(u.port)))
