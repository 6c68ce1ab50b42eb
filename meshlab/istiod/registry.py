"""What one proxy can see: Services and ServiceEntries as Istio's service registry holds them,
plus the VirtualServices and DestinationRules that apply to that proxy.

Why a registry: istiod first turns Kubernetes objects into one list of services (hostname,
ports with a protocol, endpoints), filters by `exportTo`, and only then generates clusters,
listeners and routes; doing the same keeps those three generators small and consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..gateway_api import GATEWAY_NAME_LABEL, Converted, GatewayAPI, uses_gateway_semantics
from ..names import (
    ISTIO_NAMESPACE, exported_to, fqdn, host_subset_of, is_ip, is_wildcard, labels_match, port_protocol,
    protocol_from_name, to_fqdn,
)
from ..objects import (
    DestinationRule, Gateway, K8sObject, Service, ServiceEntry, Subset, TrafficPolicy,
    VirtualService,
)

if TYPE_CHECKING:
    from ..state import ClusterState

ROOT_NAMESPACE = ISTIO_NAMESPACE     # meshConfig.rootNamespace: Istio's default


@dataclass(frozen=True)
class ProxyIdentity:
    """Which proxy the config is for: what istiod knows about the workload it is pushing to."""

    kind: Literal["sidecar", "gateway"]
    namespace: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    ip: str = "127.0.0.1"
    name: str = ""  # pod name (informative only)
    locality: str = ""  # where it runs, `region/zone/subzone` (its node's topology labels)
    node: str = ""      # its node's name

    def __post_init__(self) -> None:
        if not self.ip.startswith("127."):
            raise ValueError(f"proxy address must be on loopback, not {self.ip}")

    @property
    def topology_labels(self) -> dict[str, str]:
        """Its labels as istiod sees them: with its locality and node added (ads.go setTopologyLabels)."""
        from .loadbalancer import topology_labels
        return topology_labels(self.labels, self.locality, self.node)


@dataclass
class PortInfo:
    port: int
    name: str | None
    protocol: str                     # Istio's protocol name (meshlab.names): HTTP, TCP, UnsupportedProtocol…
    target: int | str | None = None


@dataclass
class EndpointInfo:
    ip: str
    port: int
    labels: dict[str, str]
    pod: str = ""
    namespace: str = ""
    locality: str = ""     # `region/zone/subzone`
    node: str = ""


@dataclass
class ServiceInfo:
    """One hostname in the registry (a Kubernetes Service or one host of a ServiceEntry)."""

    hostname: str
    namespace: str
    name: str
    obj: K8sObject
    ports: list[PortInfo]
    cluster_ip: str | None = None
    addresses: list[str] = field(default_factory=list)
    resolution: str = "EDS"           # EDS | NONE (original destination)
    external: bool = False

    @property
    def is_k8s(self) -> bool:
        return isinstance(self.obj, Service)

    def port(self, number: int) -> PortInfo | None:
        return next((p for p in self.ports if p.port == number), None)


@dataclass
class MergedDR:
    """The DestinationRule(s) that apply to one host for this proxy, merged as istiod merges."""

    host: str
    namespace: str
    traffic_policy: TrafficPolicy | None
    subsets: list[Subset]
    rules: list[DestinationRule]

    @property
    def config_path(self) -> str:
        first = self.rules[0]
        return f"/apis/networking.istio.io/v1/namespaces/{first.namespace}/destination-rule/{first.name}"


def where(obj: K8sObject) -> str:
    """How a warning names an object: `VirtualService default/reviews (bookinfo.yaml:12)`."""
    return obj.ref + (f" ({obj.source})" if obj.source else "")


class Registry:
    """Services, VirtualServices and DestinationRules visible to one proxy."""

    def __init__(self, state: ClusterState, proxy: ProxyIdentity, warnings: list[str]) -> None:
        self.state = state
        self.proxy = proxy
        self.warnings = warnings
        self.services: list[ServiceInfo] = []
        self._endpoint_cache: dict[tuple[str, int], list[EndpointInfo]] = {}
        self._dr_cache: dict[str, MergedDR | None] = {}
        #: the Gateway API objects, converted as istiod's controller converts them (meshlab.gateway_api)
        self.gateway_api: Converted = GatewayAPI(state).convert()
        self.warnings.extend(self.gateway_api.warnings)
        self._collect_services()
        self.by_host: dict[str, ServiceInfo] = {}
        for s in self.services:
            self.by_host.setdefault(s.hostname, s)

    # ---- services ----------------------------------------------------------------------------
    def _collect_services(self) -> None:
        client_ns = self.proxy.namespace
        for svc in self.state.services():
            ns = svc.namespace or "default"
            export = [e.strip() for e in svc.metadata.annotations.get(
                "networking.istio.io/exportTo", "").split(",") if e.strip()]
            if not exported_to(export, ns, client_ns):
                continue
            if svc.spec.type == "ExternalName":
                self.warnings.append(f"{where(svc)}: type ExternalName is not modelled "
                                     "by the local backend (no cluster built)")
                continue
            ports = [PortInfo(p.port, p.name, port_protocol(p.port, p.name, p.protocol, p.app_protocol),
                              p.target_port if p.target_port is not None else p.port)
                     for p in svc.spec.ports]
            self.services.append(ServiceInfo(
                hostname=fqdn(svc.name, ns), namespace=ns, name=svc.name, obj=svc,
                ports=ports, cluster_ip=None if svc.spec.headless else self.state.cluster_ip(svc),
                # istiod: a headless Service has Passthrough resolution → ORIGINAL_DST clusters
                resolution="NONE" if svc.spec.headless else "EDS"))
        for se in self.state.service_entries():
            ns = se.namespace or "default"
            if not exported_to(se.spec.export_to, ns, client_ns):
                continue
            # a declared protocol is parsed as Istio parses it; without one meshlab reads the name
            ports = [PortInfo(p.number, p.name,
                              protocol_from_name(p.protocol) if p.protocol else port_protocol(p.number, p.name),
                              p.target_port or p.number) for p in se.spec.ports]
            resolution = se.spec.resolution or "NONE"
            for host in se.spec.hosts:
                self.services.append(ServiceInfo(
                    hostname=host, namespace=ns, name=se.name, obj=se, ports=ports,
                    addresses=list(se.spec.addresses),
                    resolution="NONE" if resolution == "NONE" else "EDS",
                    external=(se.spec.location or "MESH_EXTERNAL") == "MESH_EXTERNAL"))
        # istiod orders services by creation time; hostname keeps the output stable across runs
        self.services.sort(key=lambda s: (s.hostname, s.namespace))

    def endpoints(self, svc: ServiceInfo, port: PortInfo) -> list[EndpointInfo]:
        key = (svc.hostname, port.port)
        if key in self._endpoint_cache:
            return self._endpoint_cache[key]
        out: list[EndpointInfo] = []
        if isinstance(svc.obj, Service):
            sp = svc.obj.port(port.port)
            if sp is not None:
                for ep in self.state.endpoints(svc.obj, sp):
                    if ep.ip:
                        out.append(EndpointInfo(ep.ip, ep.port, dict(ep.labels), ep.pod, ep.namespace,
                                                ep.locality, ep.node))
        elif isinstance(svc.obj, ServiceEntry):
            out = self._service_entry_endpoints(svc, svc.obj, port)
        self._endpoint_cache[key] = out
        return out

    def _service_entry_endpoints(self, svc: ServiceInfo, se: ServiceEntry,
                                 port: PortInfo) -> list[EndpointInfo]:
        out: list[EndpointInfo] = []
        target = port.target if isinstance(port.target, int) else port.port
        if se.spec.workload_selector is not None:
            for pod in self.state.pods_selected(se.spec.workload_selector.match_labels, svc.namespace):
                if pod.ip and pod.ready and pod.phase == "Running":
                    out.append(EndpointInfo(pod.ip, target, dict(pod.labels), pod.name, pod.namespace,
                                            pod.locality, pod.node or ""))
            return out
        if svc.resolution == "NONE":
            return out
        for ep in se.spec.endpoints:
            addr = str(ep.get("address", ""))
            ep_ports = ep.get("ports") or {}
            number = ep_ports.get(port.name or "", target) if isinstance(ep_ports, dict) else target
            if is_ip(addr) and addr.startswith("127."):
                out.append(EndpointInfo(addr, int(number), dict(ep.get("labels") or {}),
                                        locality=str(ep.get("locality") or "")))
            else:
                self.warnings.append(
                    f"{where(se)}: endpoint {addr or '?'} is not a "
                    "loopback address; the local lab cannot reach it, so it is left out")
        if not se.spec.endpoints and (se.spec.resolution or "NONE") in ("DNS", "DNS_ROUND_ROBIN"):
            self.warnings.append(
                f"{where(se)}: DNS resolution of {svc.hostname} is not "
                "available in the local lab (loopback only); its cluster has no endpoints")
        return out

    def service_for(self, host: str) -> ServiceInfo | None:
        """Exact registry hostname, else a wildcard ServiceEntry host that covers it."""
        s = self.by_host.get(host)
        if s is not None:
            return s
        for cand in self.services:
            if is_wildcard(cand.hostname) and host_subset_of(host, cand.hostname):
                return cand
        return None

    # ---- virtual services --------------------------------------------------------------------
    def virtual_services(self) -> list[VirtualService]:
        """VSs visible to the proxy's namespace, oldest first; namespace-private ones first.

        The VirtualServices istiod generates from HTTPRoutes (`meshlab.gateway_api`) join them in
        creation order; those in the proxy's own namespace come first, the consumer's override
        (push_context.go: gateway-semantics VirtualServices of the proxy's namespace first)."""
        client_ns = self.proxy.namespace
        own, private, public = [], [], []
        ordered = [((self.state.created(vs), vs.name), vs) for vs in self.state.virtual_services()]
        ordered += self.gateway_api.virtual_services
        for _, vs in sorted(ordered, key=lambda t: t[0]):
            ns = vs.namespace or "default"
            if not exported_to(vs.spec.export_to, ns, client_ns):
                continue
            if uses_gateway_semantics(vs) and ns == client_ns:
                own.append(vs)
            elif vs.spec.export_to and all(e in (".", client_ns) for e in vs.spec.export_to):
                private.append(vs)
            else:
                public.append(vs)
        return own + private + public

    def vs_hosts(self, vs: VirtualService) -> list[str]:
        """The VirtualService's hosts as istiod matches them: lower-cased (DNS names are not case
        sensitive; core/httproute.go and gateway.go lower-case them), short names made FQDNs."""
        return [to_fqdn(h.lower(), vs.namespace or "default") for h in vs.spec.hosts]

    # ---- gateways ----------------------------------------------------------------------------
    def gateways_for_proxy(self) -> list[Gateway]:
        """Gateway objects whose selector matches this (gateway) proxy's labels; for the Envoy Istio
        deploys for a Gateway API Gateway (pods labelled gateway.networking.k8s.io/gateway-name), the
        Istio Gateways generated from that Gateway's listeners."""
        deployed_for = self.proxy.labels.get(GATEWAY_NAME_LABEL)
        if deployed_for is not None:
            return [gw for gw in self.gateway_api.gateways
                    if (owner := self.gateway_api.gateway_owner.get((gw.namespace or "", gw.name))) is not None
                    and owner.name == deployed_for and (owner.namespace or "default") == self.proxy.namespace]
        out = []
        for gw in self.state.gateways():
            sel = gw.spec.selector
            if sel and labels_match(sel, self.proxy.labels):
                out.append(gw)
            elif not sel:
                self.warnings.append(f"{where(gw)}: empty selector selects "
                                     "every gateway pod; the lab's ingress gateway uses it")
                out.append(gw)
        return out

    # ---- destination rules -------------------------------------------------------------------
    def destination_rule(self, hostname: str) -> MergedDR | None:
        if hostname in self._dr_cache:
            return self._dr_cache[hostname]
        result = self._lookup_dr(hostname)
        self._dr_cache[hostname] = result
        return result

    def _lookup_dr(self, hostname: str) -> MergedDR | None:
        client_ns = self.proxy.namespace
        svc = self.by_host.get(hostname)
        order = [client_ns]
        if svc is not None and svc.namespace not in order:
            order.append(svc.namespace)
        if ROOT_NAMESPACE not in order:
            order.append(ROOT_NAMESPACE)
        for ns in order:
            cands: list[tuple[str, DestinationRule]] = []
            for dr in self.state.destination_rules(ns):
                if not exported_to(dr.spec.export_to, ns, client_ns):
                    continue
                if dr.spec.workload_selector is not None:
                    sel = dr.spec.workload_selector.match_labels
                    if ns != client_ns or not labels_match(sel, self.proxy.labels):
                        continue
                h = to_fqdn(dr.spec.host, ns)
                if host_subset_of(hostname, h):
                    cands.append((h, dr))
            if not cands:
                continue
            # most specific host wins: exact before wildcards, longer wildcard before shorter
            def specificity(h: str) -> tuple[int, int]:
                return (0 if not is_wildcard(h) else 1, -len(h))
            best = min(specificity(h) for h, _ in cands)
            rules = [dr for h, dr in cands if specificity(h) == best]
            tp = next((dr.spec.traffic_policy for dr in rules if dr.spec.traffic_policy), None)
            subsets: list[Subset] = []
            seen = set()
            for dr in rules:
                for s in dr.spec.subsets:
                    if s.name not in seen:
                        seen.add(s.name)
                        subsets.append(s)
            return MergedDR(hostname, ns, tp, subsets, rules)
        return None
