"""Sidecar outbound and ingress-gateway listeners, named and matched as istiod builds them.

Sidecar (pilot/pkg/networking/core/listener.go): the app's connections reach `virtualOutbound`
(port 15001), which hands each one to the listener bound — not to a port of its own
(`bind_to_port: false`) — to the connection's original destination: `<address>_<port>` exactly,
else `0.0.0.0_<port>`, else it stays and its catch-all chain passes it through:

* HTTP ports: one `0.0.0.0_<port>` per port, shared by every Service on it; its HTTP chain
  (application protocols http/1.1, h2c, found by the HTTP inspector) routes by Host with route
  configuration `"<port>"`; anything else takes `PassthroughFilterChain`.
* TCP ports (tcp, tls, https, mongo, …): `<ClusterIP>_<port>` with `tcp_proxy` to
  `outbound|<port>||<host>`; a headless Service gets one per endpoint (`<pod IP>_<port>`), a
  ServiceEntry without addresses `0.0.0.0_<port>`.
* Ports without a protocol (sniffed): `<ClusterIP>_<port>`, whose HTTP chain uses route
  configuration `<host>:<port>` (one virtual host, domain `*`: the destination address, not the
  Host header, decides) and whose default chain is `tcp_proxy` to the Service's cluster.

Where Istio's iptables REDIRECT and SO_ORIGINAL_DST tell Envoy the original destination, the
local lab's client sends it in a PROXY protocol header (the probe writes one on each connection
to `<sidecar IP>:15001`); Envoy's `proxy_protocol` listener filter restores it as the
connection's local address, and `use_original_dst` then picks the listener exactly as above.
Listener addresses keep Istio's names; only a port the lab may not bind moves, in the address,
to 10000 + port (`meshlab._ports.host_port`), as the probe's PROXY header does too.

Gateway: each Gateway server selecting the proxy opens `0.0.0.0_<target port>` (80→8080,
443→8443 as Istio's default ingress Service maps them) with route config `http.<target port>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._ports import host_port
from ..names import HTTP_FAMILY, INGRESS_GATEWAY_PORTS, TCP_FAMILY, UNSUPPORTED, cluster_name, protocol_from_name
from ..objects import Gateway, Server
from .registry import Registry, ServiceInfo
from .registry import where as where_obj

HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
       "HttpConnectionManager")
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
#: Istio's default ingress gateway Service: port → targetPort.
GATEWAY_TARGET_PORTS = INGRESS_GATEWAY_PORTS
#: Ports the proxy itself uses on its address (admin).
RESERVED_PORTS = {15000}
#: Istio's virtual outbound listener: where iptables sends every outbound connection.
VIRTUAL_OUTBOUND_PORT = 15001
_LISTENER = "type.googleapis.com/envoy.extensions.filters.listener."
#: What Istio's HTTP chains match (core/listener.go plaintextHTTPALPNs): the HTTP inspector's finds.
PLAINTEXT_HTTP_ALPNS = ["http/1.1", "h2c"]


@dataclass
class RouteTarget:
    """One route configuration to generate: its name, the listener port, gateway servers, and
    for a sniffed port's own route configuration the one service it routes."""

    name: str
    port: int                       # the port routes see (service port; gateway server port)
    servers: list[tuple[Gateway, Server]] = field(default_factory=list)
    service: ServiceInfo | None = None


def gateway_listen_port(service_port: int, target_port: int | None = None) -> int:
    """Where the gateway listens for a port of Istio's default ingress gateway Service.

    A Gateway server port that is a port of that Service (80, 443) becomes its targetPort (8080,
    8443), any other number is taken as the container port itself — as istiod resolves it. A client
    sending to the gateway on port 80 therefore reaches the listener on 8080. A privileged port
    the lab may not bind is moved as every lab socket is (`meshlab._ports.host_port`).
    """
    port = target_port or GATEWAY_TARGET_PORTS.get(service_port, service_port)
    return host_port(port)


def http_filters() -> list[dict[str, Any]]:
    """Istio's HCM chain, minus telemetry: fault (always present), cors, router."""
    return [
        {"name": "envoy.filters.http.fault",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
        {"name": "envoy.filters.http.cors",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
        {"name": "envoy.filters.http.router",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
    ]


def http_connection_manager(stat_prefix: str, route_config: str, *, gateway: bool) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM,
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            "rds": {"route_config_name": route_config},
            "http_filters": http_filters(),
            "stream_idle_timeout": "0s",          # Istio: off (Envoy's default is 5 min)
            "normalize_path": True,
            "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
            "use_remote_address": gateway,
            "generate_request_id": True,
            # the client's x-request-id is kept: the probe joins its rows to the access log on it
            "preserve_external_request_id": True,
            "upgrade_configs": [{"upgrade_type": "websocket"}],
            "server_name": "istio-envoy",
        },
    }


def _listener(name: str, ip: str, port: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """A listener bound to ip:port with one filter chain (the gateway's)."""
    return {
        "name": name,
        "address": {"socket_address": {"address": ip, "port_value": port}},
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": filters}],
    }


def tcp_proxy(cluster: str) -> dict[str, Any]:
    return {"name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": TCP_PROXY, "stat_prefix": cluster, "cluster": cluster}}


def _http_inspector() -> dict[str, Any]:
    return {"name": "envoy.filters.listener.http_inspector",
            "typed_config": {"@type": _LISTENER + "http_inspector.v3.HttpInspector"}}


def _captured(name: str, address: str, port: int, chains: list[dict[str, Any]],
              default: dict[str, Any] | None = None, sniff: bool = False) -> dict[str, Any]:
    """A listener that binds nothing: virtualOutbound hands it the connections to address:port."""
    lis: dict[str, Any] = {
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": host_port(port)}},
        "bind_to_port": False,
        "traffic_direction": "OUTBOUND",
        "filter_chains": chains,
    }
    if default is not None:
        lis["default_filter_chain"] = default
    if sniff:
        lis["listener_filters"] = [_http_inspector()]
        lis["listener_filters_timeout"] = "0s"          # Istio: protocolDetectionTimeout 0
        lis["continue_on_listener_filters_timeout"] = True
    return lis


def _http_chain(stat_prefix: str, route_config: str) -> dict[str, Any]:
    return {"filter_chain_match": {"transport_protocol": "raw_buffer",
                                   "application_protocols": list(PLAINTEXT_HTTP_ALPNS)},
            "filters": [http_connection_manager(stat_prefix, route_config, gateway=False)]}


def virtual_outbound(ip: str) -> dict[str, Any]:
    """Istio's `virtualOutbound` on the sidecar's own address, with the PROXY protocol standing in
    for iptables' SO_ORIGINAL_DST (see the module docstring)."""
    return {
        "name": "virtualOutbound",
        "address": {"socket_address": {"address": ip, "port_value": VIRTUAL_OUTBOUND_PORT}},
        "use_original_dst": True,
        "traffic_direction": "OUTBOUND",
        "listener_filters": [{"name": "envoy.filters.listener.proxy_protocol",
                              "typed_config": {"@type": _LISTENER + "proxy_protocol.v3.ProxyProtocol"}}],
        "filter_chains": [
            {"name": "virtualOutbound-blackhole", "filter_chain_match": {"destination_port": VIRTUAL_OUTBOUND_PORT},
             "filters": [tcp_proxy("BlackHoleCluster")]},
            {"name": "virtualOutbound-catchall-tcp", "filters": [tcp_proxy("PassthroughCluster")]},
        ],
    }


def build_listeners(reg: Registry) -> tuple[list[dict[str, Any]], list[RouteTarget]]:
    if reg.proxy.kind == "gateway":
        return _gateway_listeners(reg)
    return _sidecar_listeners(reg)


def _sidecar_listeners(reg: Registry) -> tuple[list[dict[str, Any]], list[RouteTarget]]:
    """Outbound listeners of a sidecar (the module docstring says which and why)."""
    http_ports: set[int] = set()
    by_name: dict[str, dict[str, Any]] = {}
    targets: list[RouteTarget] = []
    for svc in reg.services:
        for p in svc.ports:
            if p.protocol == "UDP":
                continue
            if p.protocol in HTTP_FAMILY:
                http_ports.add(p.port)
                continue
            cluster = cluster_name(p.port, None, svc.hostname)
            if p.protocol == UNSUPPORTED and svc.cluster_ip:
                name = f"{svc.cluster_ip}_{p.port}"
                rc = f"{svc.hostname}:{p.port}"
                by_name.setdefault(name, _captured(name, svc.cluster_ip, p.port,
                                                   [_http_chain(f"outbound_{name}", rc)],
                                                   default={"filters": [tcp_proxy(cluster)]}, sniff=True))
                targets.append(RouteTarget(rc, p.port, service=svc))
                continue
            if p.protocol == UNSUPPORTED:           # sniffed, no address: the shared HTTP listener
                http_ports.add(p.port)
                continue
            if p.protocol not in TCP_FAMILY:
                continue
            for addr in _tcp_addresses(reg, svc, p):
                name = f"{addr}_{p.port}"
                if name in by_name:
                    reg.warnings.append(f"{svc.hostname}: listener {name} is already built for another "
                                        "Service; istiod keeps the first")
                    continue
                by_name[name] = _captured(name, addr, p.port, [{"filters": [tcp_proxy(cluster)]}])
    listeners = [virtual_outbound(reg.proxy.ip)]
    for port in sorted(http_ports):
        name = f"0.0.0.0_{port}"
        if name in by_name:                          # a TCP Service without address on an HTTP port
            reg.warnings.append(f"port {port}: an HTTP listener and {by_name[name]['name']} conflict; "
                                "istiod keeps the HTTP one")
        by_name[name] = _captured(name, "0.0.0.0", port, [_http_chain(f"outbound_{name}", str(port))],
                                  default={"name": "PassthroughFilterChain",
                                           "filters": [tcp_proxy("PassthroughCluster")]}, sniff=True)
        targets.append(RouteTarget(str(port), port))
    listeners += [by_name[n] for n in sorted(by_name)]
    return listeners, sorted(targets, key=lambda t: t.name)


def _tcp_addresses(reg: Registry, svc: ServiceInfo, port: Any) -> list[str]:
    """Where a TCP port's listener sits: the ClusterIP (or ServiceEntry addresses); a headless
    Service's endpoints one by one; else 0.0.0.0."""
    if svc.cluster_ip:
        return [svc.cluster_ip]
    if svc.addresses:
        return [a for a in svc.addresses if "/" not in a] or ["0.0.0.0"]
    if svc.is_k8s and svc.resolution == "NONE":
        return sorted({ep.ip for ep in reg.endpoints(svc, port)})
    return ["0.0.0.0"]


def _gateway_listeners(reg: Registry) -> tuple[list[dict[str, Any]], list[RouteTarget]]:
    by_port: dict[int, list[tuple[Gateway, Server]]] = {}
    for gw in reg.gateways_for_proxy():
        for server in gw.spec.servers:
            proto = server.port.protocol.upper()
            where = f"{where_obj(gw)} server port {server.port.number}"
            if protocol_from_name(proto) in HTTP_FAMILY:
                target = server.port.target_port or GATEWAY_TARGET_PORTS.get(server.port.number,
                                                                              server.port.number)
                by_port.setdefault(target, []).append((gw, server))
            else:
                reg.warnings.append(f"{where}: protocol {proto} is not modelled by the local "
                                    "gateway (no certificates, HTTP only); the server is left out")
    listeners, targets = [], []
    for target, servers in sorted(by_port.items()):
        port = servers[0][1].port.number
        if target in RESERVED_PORTS:
            reg.warnings.append(f"gateway port {port}: target port {target} is the admin port")
            continue
        name = f"0.0.0.0_{target}"
        rc = f"http.{target}"
        listeners.append(_listener(name, reg.proxy.ip, host_port(target), [
            http_connection_manager(f"outbound_{name}", rc, gateway=True)]))
        targets.append(RouteTarget(rc, port, servers))
    return listeners, targets
