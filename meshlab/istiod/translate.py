"""Build the Envoy configuration istiod would send to one proxy (a client sidecar or the gateway).

Usage::

    from meshlab.istiod.translate import ProxyIdentity, build_config
    sidecar = ProxyIdentity(kind="sidecar", namespace="default", labels={"app": "sleep"},
                            ip="127.5.0.1")
    gateway = ProxyIdentity(kind="gateway", namespace="istio-system",
                            labels={"istio": "ingressgateway", "app": "istio-ingressgateway"},
                            ip="127.5.0.2")
    cfg = build_config(state, sidecar)     # a meshlab.envoy.ProxyConfig
    cfg.listeners, cfg.clusters, cfg.routes["9080"], cfg.endpoints["outbound|9080|v1|reviews..."]
    cfg.warnings                           # what the local backend cannot honour, in words

How local addressing maps to Istio's (a lab owns 127.A.0.0/16):

* A sidecar's outbound HTTP listener for Service port P is `0.0.0.0_P` (Istio's name), bound to
  `<sidecar ip>:P` — the app talks to its sidecar directly instead of being redirected by
  iptables, and the Host header picks the virtual host exactly as in Istio. Route config `"P"`.
* The gateway binds `<gateway ip>:<target port>`; Istio's default ingress gateway Service maps
  80→8080 and 443→8443, so a `port: 80` Gateway server becomes listener `0.0.0.0_8080` with route
  config `http.8080`.
* Where this process may not bind a port below 1024 (Binder's unprivileged user), only the
  socket moves to 10000 + port (`meshlab._ports.host_port`); names stay Istio's.
* Clusters are EDS; endpoints are pod IP:targetPort of ready pods (127.A.1.x).
* Ports whose protocol is not HTTP: see `listeners.py` (auto → treated as HTTP with a warning;
  TCP → a tcp_proxy listener if the port is free on the sidecar address).
* Istio's PassthroughCluster (ALLOW_ANY) and DR `PASSTHROUGH` are ORIGINAL_DST clusters; locally
  there is no iptables original destination, so Envoy takes it from the
  `x-envoy-original-dst-host` request header (what the app dialled, set by the probe).
"""

from __future__ import annotations

from ..envoy.xds import ProxyConfig
from ..state import ClusterState
from .clusters import build_clusters
from .listeners import build_listeners
from .registry import ProxyIdentity, Registry
from .routes import build_routes


def build_config(state: ClusterState, proxy: ProxyIdentity) -> ProxyConfig:
    """Listeners, clusters, routes and endpoints for `proxy`, as istiod would compute them."""
    warnings: list[str] = []
    reg = Registry(state, proxy, warnings)
    clusters, endpoints = build_clusters(reg)
    listeners, route_ports = build_listeners(reg)
    routes = build_routes(reg, route_ports)
    return ProxyConfig(listeners=listeners, clusters=clusters, routes=routes, endpoints=endpoints,
                       warnings=list(dict.fromkeys(warnings)))


__all__ = ["ProxyConfig", "ProxyIdentity", "build_config"]
