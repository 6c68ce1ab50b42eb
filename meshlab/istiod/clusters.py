"""Services + DestinationRules → Envoy clusters and their EDS endpoints, as istiod builds them.

Every Service port gets `outbound|<port>||<host>`; every subset of the (merged) DestinationRule
adds `outbound|<port>|<subset>|<host>` for every port — and no other subset clusters exist, which
is exactly why a VirtualService naming an undefined subset gets 503 NC. Istio's defaults are
written out where Envoy's differ (LEAST_REQUEST, 2^32−1 circuit breakers, 10 s connect timeout),
and traffic policies follow Istio's precedence: subset port-level > subset > port-level >
top-level, each port-level entry replacing whole blocks (no field merge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._ports import host_port  # pods on privileged ports listen where the lab may bind
from ..names import HTTP_FAMILY, UNSUPPORTED, cluster_name, duration_seconds, labels_match, proto_duration
from ..objects import (
    ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection, Service, Subset, TrafficPolicy,
)
from . import loadbalancer
from .registry import MergedDR, PortInfo, Registry, ServiceInfo
from .registry import where as where_obj

MAX_U32 = 4294967295
DEFAULT_CONNECT_TIMEOUT = "10s"
UPSTREAM_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_HTTP_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass
class Policy:
    """The four blocks of a traffic policy after precedence is applied (None = Istio default)."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: dict[str, Any] | None = None


def _port_level(tp: TrafficPolicy | None, port: int) -> Any:
    if tp is None or not tp.port_level_settings:
        return None
    return next((p for p in tp.port_level_settings if p.port and p.port.number == port), None)


#: The four blocks of a traffic policy, as (attribute, the field name a learner writes).
POLICY_BLOCKS: tuple[tuple[str, str], ...] = (
    ("load_balancer", "loadBalancer"), ("connection_pool", "connectionPool"),
    ("outlier_detection", "outlierDetection"), ("tls", "tls"),
)


def policy_sources(traffic_policy: TrafficPolicy | None, subsets: Sequence[Subset], port: int,
                   subset: str | None) -> dict[str, tuple[str, Any]]:
    """Where each block of a DestinationRule's policy comes from for the cluster of (port, subset).

    Returns {`loadBalancer` | `connectionPool` | `outlierDetection` | `tls`: (field path in the
    DestinationRule, the block)}; ("", None) for a block left at Istio's default. Istio's precedence
    (util.MergeSubsetTrafficPolicy and model.MergeTrafficPolicy, pilot/pkg/networking/util/util.go
    and pilot/pkg/model/destination_rule.go): a `portLevelSettings` entry for the port replaces all
    four blocks of its level, even those it leaves unset; a subset's policy then replaces each block
    it sets (its own port-level entry, again, all four). Blocks are replaced, never field-merged.
    """
    out: dict[str, tuple[str, Any]] = {camel: ("", None) for _, camel in POLICY_BLOCKS}

    def take(policy: Any, path: str, wholesale: bool) -> None:
        for attr, camel in POLICY_BLOCKS:
            block = getattr(policy, attr)
            if block is not None:
                out[camel] = (f"{path}.{camel}", block)
            elif wholesale:
                out[camel] = ("", None)

    levels = [(traffic_policy, "spec.trafficPolicy")]
    if subset is not None:
        sub = next((s for s in subsets if s.name == subset), None)
        levels.append((sub.traffic_policy if sub else None, f"spec.subsets[name={subset}].trafficPolicy"))
    for policy, path in levels:
        if policy is None:
            continue
        pl = _port_level(policy, port)
        if pl is not None:
            take(pl, f"{path}.portLevelSettings[port={port}]", True)
        else:
            take(policy, path, False)
    return out


def effective_policy(dr: MergedDR | None, port: int, subset: str | None) -> Policy:
    """The four blocks after Istio's precedence (`policy_sources`); None = Istio's default."""
    if dr is None:
        return Policy()
    src = policy_sources(dr.traffic_policy, dr.subsets, port, subset)
    return Policy(*(src[camel][1] for _, camel in POLICY_BLOCKS))


def duration(value: str, where: str = "duration") -> str:
    """A Go duration from the object (`1m30s`) → Envoy's protobuf JSON duration (`90s`); a value
    no loader let through raises ValueError naming `where` (the caller turns it into a warning)."""
    try:
        return proto_duration(value)
    except ValueError as e:
        raise ValueError(f"{where}: {value!r}: {e}") from None


def _lb(cluster: dict[str, Any], lb: LoadBalancerSettings | None, where: str,
        warnings: list[str]) -> None:
    if lb is None or (lb.simple in (None, "UNSPECIFIED") and lb.consistent_hash is None):
        cluster["lb_policy"] = "LEAST_REQUEST"  # Istio's default since 1.14 (Envoy's: ROUND_ROBIN)
    elif lb.consistent_hash is not None:
        ch = lb.consistent_hash
        if ch.maglev is not None:
            cluster["lb_policy"] = "MAGLEV"
            if ch.maglev.get("tableSize"):
                cluster["maglev_lb_config"] = {"table_size": int(ch.maglev["tableSize"])}
        elif ch.ring_hash is not None:      # ringHash: {} keeps Envoy's own ring size
            cluster["lb_policy"] = "RING_HASH"
            if ch.ring_hash.get("minimumRingSize"):
                cluster["ring_hash_lb_config"] = {"minimum_ring_size": str(int(ch.ring_hash["minimumRingSize"]))}
        else:                                # the deprecated minimumRingSize, 1024 when unset
            cluster["lb_policy"] = "RING_HASH"
            cluster["ring_hash_lb_config"] = {"minimum_ring_size": str(int(ch.minimum_ring_size or 1024))}
    elif lb.simple in ("LEAST_CONN", "LEAST_REQUEST"):
        cluster["lb_policy"] = "LEAST_REQUEST"
    elif lb.simple == "ROUND_ROBIN":
        cluster["lb_policy"] = "ROUND_ROBIN"
    elif lb.simple == "RANDOM":
        cluster["lb_policy"] = "RANDOM"
    elif lb.simple == "PASSTHROUGH":
        cluster["type"] = "ORIGINAL_DST"
        cluster["lb_policy"] = "CLUSTER_PROVIDED"
        cluster.pop("eds_cluster_config", None)
    warm = lb.warmup_duration_secs if lb is not None else None
    if lb is not None and lb.warmup and lb.warmup.get("duration"):
        warm = lb.warmup["duration"]
    if warm and cluster["lb_policy"] in ("ROUND_ROBIN", "LEAST_REQUEST"):
        key = "round_robin_lb_config" if cluster["lb_policy"] == "ROUND_ROBIN" else "least_request_lb_config"
        cluster[key] = {"slow_start_config": {
            "slow_start_window": duration(warm, f"{where} warmupDurationSecs"),
            "aggression": {"default_value": 1.0, "runtime_key": "meshlab.slow_start_aggression"},
            "min_weight_percent": {"value": 10}}}


def _pool(cluster: dict[str, Any], pool: ConnectionPoolSettings | None, http_opts: dict[str, Any],
          where: str, warnings: list[str]) -> None:
    tcp = pool.tcp if pool else None
    http = pool.http if pool else None
    thresholds = {
        "max_connections": (tcp.max_connections if tcp and tcp.max_connections else MAX_U32),
        "max_pending_requests": (http.http1_max_pending_requests
                                 if http and http.http1_max_pending_requests else MAX_U32),
        "max_requests": (http.http2_max_requests if http and http.http2_max_requests else MAX_U32),
        "max_retries": (http.max_retries if http and http.max_retries else MAX_U32),
        # no track_remaining: istiod leaves it off (features.DisableTrackRemainingMetrics, default true)
    }
    cluster["circuit_breakers"] = {"thresholds": [thresholds]}
    cluster["connect_timeout"] = duration(tcp.connect_timeout, f"{where} tcp.connectTimeout") \
        if tcp and tcp.connect_timeout else DEFAULT_CONNECT_TIMEOUT
    common: dict[str, Any] = {}
    idle = (http.idle_timeout if http and http.idle_timeout else None) or (tcp.idle_timeout if tcp else None)
    if idle:
        common["idle_timeout"] = duration(idle, f"{where} idleTimeout")
    if http and http.max_requests_per_connection:
        common["max_requests_per_connection"] = http.max_requests_per_connection
    if tcp and tcp.max_connection_duration:
        common["max_connection_duration"] = duration(tcp.max_connection_duration,
                                                     f"{where} tcp.maxConnectionDuration")
    if common:
        http_opts["common_http_protocol_options"] = common
    if tcp and tcp.tcp_keepalive:
        ka: dict[str, Any] = {}
        if tcp.tcp_keepalive.get("probes"):
            ka["keepalive_probes"] = int(tcp.tcp_keepalive["probes"])
        for src, dst in (("time", "keepalive_time"), ("interval", "keepalive_interval")):
            if tcp.tcp_keepalive.get(src):
                ka[dst] = max(1, round(duration_seconds(str(tcp.tcp_keepalive[src]))))
        cluster["upstream_connection_options"] = {"tcp_keepalive": ka}
    if http and http.h2_upgrade_policy == "UPGRADE":
        http_opts["explicit_http_config"] = {"http2_protocol_options": {}}
    if http and http.use_client_protocol:
        http_opts["use_downstream_protocol_config"] = {"http_protocol_options": {},
                                                       "http2_protocol_options": {}}
    if http and http.max_concurrent_streams:
        opts = http_opts.setdefault("explicit_http_config", {"http2_protocol_options": {}})
        if "http2_protocol_options" in opts:
            opts["http2_protocol_options"]["max_concurrent_streams"] = http.max_concurrent_streams


def _outlier(cluster: dict[str, Any], od: OutlierDetection | None, where: str,
             warnings: list[str]) -> None:
    if od is None:
        return  # no block → no outlier detection at all (and Envoy's 50 % panic threshold stays)
    if od.consecutive_errors is not None and od.consecutive5xx_errors is None:
        warnings.append(f"{where}: outlierDetection.consecutiveErrors is deprecated and istiod "
                        "ignores it (Envoy's default of 5 consecutive 5xx applies); use "
                        "consecutive5xxErrors")
    out: dict[str, Any] = {"enforcing_success_rate": 0}
    if od.consecutive5xx_errors is not None:
        out["consecutive_5xx"] = od.consecutive5xx_errors
        out["enforcing_consecutive_5xx"] = 100 if od.consecutive5xx_errors > 0 else 0
    if od.consecutive_gateway_errors is not None:
        out["consecutive_gateway_failure"] = od.consecutive_gateway_errors
        out["enforcing_consecutive_gateway_failure"] = 100 if od.consecutive_gateway_errors > 0 else 0
    if od.interval:
        out["interval"] = duration(od.interval, f"{where} outlierDetection.interval")
    if od.base_ejection_time:
        out["base_ejection_time"] = duration(od.base_ejection_time,
                                             f"{where} outlierDetection.baseEjectionTime")
    if od.max_ejection_percent:
        out["max_ejection_percent"] = od.max_ejection_percent
    if od.split_external_local_origin_errors:
        out["split_external_local_origin_errors"] = True
        if od.consecutive_local_origin_failures:
            out["consecutive_local_origin_failure"] = od.consecutive_local_origin_failures
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    cluster["outlier_detection"] = out
    # Istio turns panic mode off (threshold = minHealthPercent, default 0) once a block exists.
    cluster.setdefault("common_lb_config", {})["healthy_panic_threshold"] = {
        "value": float(od.min_health_percent or 0)}


def _metadata(svc: ServiceInfo, dr: MergedDR | None, subset: str | None) -> dict[str, Any]:
    istio: dict[str, Any] = {"services": [{"host": svc.hostname, "name": svc.name,
                                           "namespace": svc.namespace}]}
    if dr is not None:
        istio["config"] = dr.config_path
    if subset:
        istio["subset"] = subset
    return {"filter_metadata": {"istio": istio}}


def build_cluster(reg: Registry, svc: ServiceInfo, port: PortInfo, subset: str | None,
                  dr: MergedDR | None) -> dict[str, Any]:
    name = cluster_name(port.port, subset, svc.hostname)
    where = where_obj(dr.rules[0]) if dr else svc.hostname
    pol = effective_policy(dr, port.port, subset)
    cluster: dict[str, Any] = {"name": name, "type": "EDS",
                               "eds_cluster_config": {"service_name": name}}
    if svc.resolution == "NONE":  # headless Service / ServiceEntry resolution NONE
        cluster = {"name": name, "type": "ORIGINAL_DST"}
    http_opts: dict[str, Any] = {}
    try:
        _pool(cluster, pol.connection_pool, http_opts, where, reg.warnings)
        if cluster["type"] == "ORIGINAL_DST":
            cluster["lb_policy"] = "CLUSTER_PROVIDED"
        else:
            _lb(cluster, pol.load_balancer, where, reg.warnings)
        _outlier(cluster, pol.outlier_detection, where, reg.warnings)
        if cluster["type"] != "ORIGINAL_DST":
            loadbalancer.apply_to_cluster(cluster, locality_setting(reg, svc, pol, where))
    except ValueError as e:
        reg.warnings.append(f"{e} — left at Istio's default")
    if pol.tls and pol.tls.get("mode") not in (None, "DISABLE", "ISTIO_MUTUAL"):
        reg.warnings.append(f"{where}: tls mode {pol.tls.get('mode')} is not modelled locally "
                            "(the local lab runs plaintext)")
    if port.protocol in ("HTTP2", "GRPC", "GRPC-Web") and "use_downstream_protocol_config" not in http_opts:
        http_opts.setdefault("explicit_http_config", {"http2_protocol_options": {}})
    elif port.protocol == UNSUPPORTED and "explicit_http_config" not in http_opts:
        # Istio: sniffed ports use the downstream's protocol upstream
        http_opts.setdefault("use_downstream_protocol_config",
                             {"http_protocol_options": {}, "http2_protocol_options": {}})
    if http_opts and (port.protocol in HTTP_FAMILY or port.protocol == UNSUPPORTED):
        if "explicit_http_config" not in http_opts and "use_downstream_protocol_config" not in http_opts:
            http_opts["explicit_http_config"] = {"http_protocol_options": {}}
        cluster["typed_extension_protocol_options"] = {
            UPSTREAM_HTTP_OPTIONS: {"@type": _HTTP_OPTIONS_TYPE, **http_opts}}
    cluster["metadata"] = _metadata(svc, dr, subset)
    return cluster


def locality_setting(reg: Registry, svc: ServiceInfo, pol: Policy,
                     where: str) -> loadbalancer.LocalitySetting | None:
    """The locality setting in effect for a cluster of `svc` with policy `pol`."""
    obj = svc.obj
    td, annotations = "", {}
    if isinstance(obj, Service):
        td, annotations = obj.spec.traffic_distribution or "", dict(obj.metadata.annotations)
    return loadbalancer.effective_setting(pol.load_balancer, td, annotations, where, reg.warnings)


def _cla(reg: Registry, svc: ServiceInfo, port: PortInfo, name: str, subset: str | None,
         dr: MergedDR | None) -> dict[str, Any]:
    """The ClusterLoadAssignment istiod sends for one cluster to this proxy: the endpoints (those
    whose labels, topology labels included, carry the subset's), grouped by locality, with
    priorities or weights relative to the proxy (`loadbalancer`)."""
    labels = next((s.labels for s in dr.subsets if s.name == subset), None) if subset and dr else None
    found = []
    for ep in reg.endpoints(svc, port):
        ep_labels = loadbalancer.topology_labels(ep.labels, ep.locality, ep.node)
        if labels and not labels_match(labels, ep_labels):
            continue
        found.append((ep.locality, {
            "endpoint": {"address": {"socket_address": {"address": ep.ip, "port_value": host_port(ep.port)}}},
            "health_status": "HEALTHY",
            "metadata": {"filter_metadata": {"meshlab": {"pod": ep.pod, "namespace": ep.namespace,
                                                          "version": ep.labels.get("version", "")}}},
            "load_balancing_weight": 1,
        }, ep_labels))
    if not found:
        return {"cluster_name": name, "endpoints": []}
    groups = loadbalancer.group_by_locality(found)
    pol = effective_policy(dr, port.port, subset)
    where = where_obj(dr.rules[0]) if dr else svc.hostname
    setting = locality_setting(reg, svc, pol, where)
    proxy = reg.proxy
    groups = loadbalancer.apply_to_load_assignment(groups, setting, proxy.locality, proxy.topology_labels,
                                                   pol.outlier_detection is not None)
    return {"cluster_name": name, "endpoints": [g.to_envoy() for g in groups]}


def passthrough_clusters() -> list[dict[str, Any]]:
    """BlackHoleCluster and PassthroughCluster (the original destination, as the connection
    arrived: the PROXY protocol header locally, SO_ORIGINAL_DST under iptables)."""
    return [
        {"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
         "lb_policy": "ROUND_ROBIN", "load_assignment": {"cluster_name": "BlackHoleCluster"}},
        {"name": "PassthroughCluster", "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
         "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
         "circuit_breakers": {"thresholds": [{
             "max_connections": MAX_U32, "max_pending_requests": MAX_U32,
             "max_requests": MAX_U32, "max_retries": MAX_U32}]}},
    ]


def build_clusters(reg: Registry) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """All outbound clusters for the proxy plus the ClusterLoadAssignment of each EDS cluster."""
    clusters: list[dict[str, Any]] = []
    endpoints: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for svc in reg.services:
        dr = reg.destination_rule(svc.hostname)
        if dr is not None:
            for rule in dr.rules:
                tp = rule.spec.traffic_policy
                if tp is not None and (tp.tunnel or tp.proxy_protocol or tp.retry_budget):
                    reg.warnings.append(f"{where_obj(rule)}: "
                                        "tunnel/proxyProtocol/retryBudget are not modelled locally")
        for port in svc.ports:
            if port.protocol == "UDP":
                continue
            for subset in [None] + [s.name for s in (dr.subsets if dr else [])]:
                c = build_cluster(reg, svc, port, subset, dr)
                if c["name"] in seen:
                    continue
                seen.add(c["name"])
                clusters.append(c)
                if c["type"] == "EDS":
                    endpoints[c["name"]] = _cla(reg, svc, port, c["name"], subset, dr)
    # every proxy has BlackHoleCluster; sidecars also PassthroughCluster (core/cluster.go)
    clusters += [c for c in passthrough_clusters() if reg.proxy.kind == "sidecar" or c["name"] == "BlackHoleCluster"]
    return clusters, endpoints
