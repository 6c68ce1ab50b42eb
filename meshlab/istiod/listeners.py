"""Sidecar outbound and ingress-gateway listeners.

Sidecar: one HTTP listener per Service port that speaks HTTP (`0.0.0.0_<port>`, route config
`"<port>"`), bound to the sidecar's own loopback address instead of Istio's iptables capture.
Non-HTTP ports, decided here and surfaced as warnings:

* **auto** (unnamed or unconventional port name): Istio sniffs the protocol; the local probe always
  speaks HTTP, which sniffing would route through the HTTP chain, so the port joins the shared
  `0.0.0.0_<port>` listener (Istio would use `<ClusterIP>_<port>` and route config `<host>:<port>`).
* **TCP family** (tcp, tls, https, mongo, …): a `<ClusterIP>_<port>` listener with `tcp_proxy` to
  `outbound|<port>||<host>` when exactly one Service uses that port and no HTTP Service does
  (locally the address cannot say which Service was meant); otherwise left out with a warning.

Gateway: each Gateway server selecting the proxy opens `0.0.0.0_<target port>` (80→8080,
443→8443 as Istio's default ingress Service maps them) with route config `http.<target port>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._ports import host_port
from ..names import HTTP_FAMILY, TCP_FAMILY, UNSUPPORTED, cluster_name, protocol_from_name
from ..objects import Gateway, Server
from .registry import Registry
from .registry import where as where_obj

HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
       "HttpConnectionManager")
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
#: Istio's default ingress gateway Service: port → targetPort.
GATEWAY_TARGET_PORTS = {80: 8080, 443: 8443}
#: Ports the proxy itself uses on its address (admin).
RESERVED_PORTS = {15000}


@dataclass
class RouteTarget:
    """One route configuration to generate: its name, the listener port, gateway servers."""

    name: str
    port: int                       # the port routes see (service port; gateway server port)
    servers: list[tuple[Gateway, Server]] = field(default_factory=list)


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
    return {
        "name": name,
        "address": {"socket_address": {"address": ip, "port_value": port}},
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": filters}],
    }


def build_listeners(reg: Registry) -> tuple[list[dict[str, Any]], list[RouteTarget]]:
    if reg.proxy.kind == "gateway":
        return _gateway_listeners(reg)
    return _sidecar_listeners(reg)


def _sidecar_listeners(reg: Registry) -> tuple[list[dict[str, Any]], list[RouteTarget]]:
    ip = reg.proxy.ip
    http_ports: set[int] = set()
    tcp_users: dict[int, list[tuple[str, str, str]]] = {}
    for svc in reg.services:
        for p in svc.ports:
            if p.port in RESERVED_PORTS:
                reg.warnings.append(f"{svc.hostname}: port {p.port} is the local Envoy's admin port; "
                                    "the sidecar cannot listen on it")
                continue
            if p.protocol in HTTP_FAMILY:
                http_ports.add(p.port)
            elif p.protocol == UNSUPPORTED:
                http_ports.add(p.port)
                if svc.is_k8s:
                    reg.warnings.append(
                        f"{where_obj(svc.obj)} port {p.port}"
                        f"{' (' + repr(p.name) + ')' if p.name else ''}: no protocol in the port "
                        "name, so Istio sniffs it (auto); the local sidecar handles it as HTTP. "
                        "Name it 'http' (or set appProtocol) to state the intent")
            elif p.protocol in TCP_FAMILY:
                tcp_users.setdefault(p.port, []).append(
                    (svc.hostname, svc.cluster_ip or ip, p.protocol))
    listeners, targets = [], []
    real_ports = http_ports | set(tcp_users)
    for port in sorted(http_ports):
        if host_port(port) != port and host_port(port) in real_ports:
            reg.warnings.append(f"port {port} cannot be bound here and its stand-in "
                                f"{host_port(port)} is a Service port too; left out")
            continue
        name = f"0.0.0.0_{port}"
        listeners.append(_listener(name, ip, host_port(port), [
            http_connection_manager(f"outbound_{name}", str(port), gateway=False)]))
        targets.append(RouteTarget(str(port), port))
    for port, users in sorted(tcp_users.items()):
        if port in http_ports or len(users) > 1:
            for host, _, proto in users:
                reg.warnings.append(
                    f"{host}: {proto} port {port} shares the port with another Service; without "
                    "iptables the local sidecar cannot tell them apart, so no TCP listener is built")
            continue
        host, cip, _ = users[0]
        cluster = cluster_name(port, None, host)
        listeners.append(_listener(f"{cip}_{port}", ip, host_port(port), [{
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": TCP_PROXY, "stat_prefix": cluster, "cluster": cluster}}]))
    return listeners, targets


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
