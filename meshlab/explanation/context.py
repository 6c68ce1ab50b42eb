"""What explain reads: the lab's objects, pods and live Envoy config — through the Backend protocol only.

A `Context` is built once per `explain()`: an analysis snapshot of the lab's objects with its
pods' live readiness (the same view `meshlab.analyze(lab)` has, with its findings), and each
proxy's `envoy_config()` rows read on demand. Given only objects, it has no live view and the
causes rest on the objects alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..analysis import analyze_snapshot, snapshot_of
from ..backends.base import Backend, ProxyName
from ..errors import ProbeError
from ..names import (
    INGRESS_GATEWAY_LABELS, MESH_GATEWAY, fqdn, gateway_ref, host_subset_of, labels_match, parse_cluster_name,
    to_fqdn,
)
from ..objects import DestinationRule, Gateway, K8sObject, VirtualService
from ..probe import ParsedURL, parse_url


def text(v: Any) -> str:
    """A probe cell as text: None and NaN (an empty DataFrame cell) are ''."""
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v)


class Context:
    """The lab's objects, pods and live Envoy view, read once per explain() through the Backend
    protocol (or only objects, when explain was given objects)."""

    def __init__(self, lab: Any, attrs: dict[str, Any]):
        self.attrs = attrs
        self.backend: Backend | None = None
        if isinstance(lab, (list, tuple)):
            objects, pods = list(lab), None
        else:
            self.backend = getattr(lab, "backend", lab)     # a Lab, or a Backend itself
            objects, pods = self.backend.objects(), self.backend.pods()
        self.snap = snapshot_of(objects, pods)
        self.findings = analyze_snapshot(self.snap)
        self._envoy: dict[tuple[str, str], EnvoyView] = {}

    def envoy(self, proxy: str) -> EnvoyView:
        """The live view of the proxy a row names: the client sidecar, the ingress gateway, or a Gateway
        API gateway deployment (`web-istio`)."""
        if proxy not in ("gateway", "sidecar", "none", ""):
            ns = "default"
        else:
            proxy = "gateway" if proxy == "gateway" else "sidecar"
            ns = (self.attrs.get("namespace") or "default") if proxy == "sidecar" else "default"
        if (proxy, ns) not in self._envoy:
            self._envoy[(proxy, ns)] = EnvoyView(self.backend, proxy, ns)
        return self._envoy[(proxy, ns)]

    def findings_for(self, *codes: str, kind: str | None = None, name: str | None = None) -> list:
        return [f for f in self.findings if f.code in codes and (kind is None or f.kind == kind)
                and (name is None or f.name == name)]

    def pod_by_ip(self, ip: str):
        for p in self.snap.pods:
            if p.ip == ip:
                return p
        return None

    def vs_by_ref(self, ref: str) -> VirtualService | None:
        """`reviews.default` (Envoy route metadata) → the VirtualService."""
        return _by_ref(self.snap.virtual_services, ref)

    def dr_by_ref(self, ref: str) -> DestinationRule | None:
        """`reviews.default` (Envoy cluster metadata) → the DestinationRule."""
        return _by_ref(self.snap.destination_rules, ref)

    def vss_for_host(self, fqdn: str) -> list[VirtualService]:
        out = []
        for vs in self.snap.virtual_services:
            ns = vs.namespace or "default"
            if any(to_fqdn(h, ns) == fqdn or h == "*" for h in vs.spec.hosts):
                out.append(vs)
        return out

    def drs_for_host(self, fqdn: str) -> list[DestinationRule]:
        return [dr for dr in self.snap.destination_rules
                if to_fqdn(dr.spec.host, dr.namespace or "default") == fqdn]

    def url(self) -> ParsedURL | None:
        """The URL the probe asked for (its `attrs`), parsed as the probe parsed it; None without one."""
        try:
            return parse_url(str(self.attrs["url"])) if self.attrs.get("url") else None
        except ProbeError:
            return None

    def url_host(self) -> str:
        url = self.url()
        return url.host if url is not None else ""

    def client_namespace(self) -> str:
        return str(self.attrs.get("namespace") or "default")

    def request_path(self) -> str:
        """The path (and query) the probe sent, `/` without a URL."""
        url = self.url()
        return url.path if url is not None else "/"

    def request_headers(self) -> dict[str, str]:
        """The headers the probe was given (`attrs["headers"]`), names in lower case."""
        return {str(k).lower(): str(v) for k, v in dict(self.attrs.get("headers") or {}).items()}

    def service_host(self) -> str:
        """The FQDN of the Service the probed name resolves to from the client's namespace (cluster
        DNS), or '' when it names none."""
        host = self.url_host()
        svc = self.snap.state.resolve_host(host, self.client_namespace()) if host else None
        return fqdn(svc.name, svc.namespace or "default") if svc is not None else ""

    # ---- gateways ----------------------------------------------------------------------------
    def ingress_gateways(self) -> list[Gateway]:
        """Gateways that select the ingress gateway (`istio: ingressgateway`)."""
        return [g for g in self.snap.gateways
                if g.spec.selector and labels_match(g.spec.selector, INGRESS_GATEWAY_LABELS)]

    def gateway_bindings(self, vs: VirtualService) -> list[Binding]:
        """Each non-`mesh` entry of `vs.spec.gateways`, resolved as istiod resolves it
        (`names.gateway_ref`): the Gateway it binds to, if any, and Gateways of the same name that
        live in another namespace (what a learner probably meant)."""
        ns = vs.namespace or "default"
        out = []
        for i, entry in enumerate(vs.spec.gateways):
            if entry == MESH_GATEWAY:
                continue
            resolved = gateway_ref(entry, ns)
            gw_ns, _, gw_name = resolved.partition("/")
            found = self.snap.gateway_by_key.get((gw_ns, gw_name))
            elsewhere = [] if found is not None else [g for g in self.snap.gateways if g.name == gw_name]
            out.append(Binding(i, entry, resolved, found, elsewhere))
        return out

    def bound_to_ingress(self, vs: VirtualService) -> bool:
        """True when some `gateways` entry of `vs` resolves to a Gateway selecting the ingress gateway."""
        mine = {(g.namespace or "default", g.name) for g in self.ingress_gateways()}
        return any(b.gateway is not None and (b.gateway.namespace or "default", b.gateway.name) in mine
                   for b in self.gateway_bindings(vs))


@dataclass
class Binding:
    """One `spec.gateways[index]` entry of a VirtualService, as istiod resolves it."""

    index: int
    entry: str                       # as written: `public-gw`
    resolved: str                    # `default/public-gw` (istiod's resolveGatewayName)
    gateway: Gateway | None          # the Gateway it binds to, None when there is none
    elsewhere: list[Gateway]         # Gateways of that name in other namespaces (when unbound)


def _by_ref(objects: list[Any], ref: str) -> Any:
    """`name.namespace` (Istio's `istio.config` metadata, shortened) → the object; a name may hold
    dots, a namespace may not."""
    name, _, ns = ref.rpartition(".")
    for o in objects:
        if o.name == name and (o.namespace or "default") == (ns or "default"):
            return o
    return None


class EnvoyView:
    """`backend.envoy_config(proxy)` (istioctl proxy-config style rows, with each endpoint's
    outlier state), read defensively."""

    def __init__(self, backend: Backend | None, proxy: ProxyName, namespace: str):
        self.proxy = proxy
        self._backend, self._namespace = backend, namespace
        self._stats: dict[str, dict[str, int | str]] = {}
        self.available = False
        self.clusters: dict[str, dict[str, Any]] = {}
        self.routes: list[dict[str, Any]] = []
        self.listeners: list[dict[str, Any]] = []
        self.endpoints: dict[str, list[dict[str, Any]]] = {}
        self.outlier_failed: set[tuple[str, str]] = set()
        if backend is None:
            return
        try:
            cfg = backend.envoy_config(proxy, namespace=namespace)
        except Exception:       # no live view (a proxy not started, a cluster not reachable): objects only
            return
        self.available = True
        for c in rows_of(cfg.get("clusters")):
            self.clusters[str(c.get("name", ""))] = c
        self.routes = rows_of(cfg.get("routes"))
        self.listeners = rows_of(cfg.get("listeners"))
        for e in rows_of(cfg.get("endpoints")):
            self.endpoints.setdefault(str(e.get("cluster", "")), []).append(e)
            if str(e.get("outlier_check", "")).upper() == "FAILED":
                self.outlier_failed.add((str(e.get("cluster")), str(e.get("endpoint"))))

    def route_targets(self, route_name: str, host: str = "") -> list[tuple[dict[str, Any], list[str]]]:
        """Route rows named `route_name` (and, when known, serving `host`) with their cluster names."""
        rows = [r for r in self.routes if not route_name or r.get("route_name") == route_name]
        if host:
            def serves(r: dict[str, Any], exact: bool) -> bool:
                domains = [str(d) for d in (r.get("domains") or [])]
                return host in domains if exact else any(d.startswith("*") and host_subset_of(host, d)
                                                         for d in domains)
            rows = ([r for r in rows if serves(r, True)] or [r for r in rows if serves(r, False)] or rows)
        return [(r, clusters_in(str(r.get("destination", "")))) for r in rows]

    def routes_to(self, route_name: str, cluster: str, host: str = "") -> list[dict[str, Any]]:
        """The route rows Envoy could have used for a request logged with `route_name` and
        `cluster`: that name, a destination naming that cluster (when known), and — when `host` is
        known — the virtual host serving it."""
        return [r for r, clusters in self.route_targets(route_name, host)
                if r.get("route_name", "") == route_name and (not cluster or cluster in clusters)]

    def tcp_proxy_cluster(self, port: int | None, host: str = "") -> str:
        """The cluster a `tcp_proxy` listener (`<ClusterIP>_<port>`) on `port` forwards to, the one
        for `host` when several do; '' when no listener on that port is a tcp_proxy."""
        found = [str(row.get("destination", "")).removeprefix("Cluster: ") for row in self.listeners
                 if port is not None and str(row.get("destination", "")).startswith("Cluster: ")
                 and str(row.get("name", "")).endswith(f"_{port}")]
        mine = [c for c in found if (parsed := parse_cluster_name(c)) is not None and parsed.host == host]
        return (mine or found or [""])[0]

    def cluster_missing(self, name: str) -> bool:
        return self.available and name not in self.clusters

    def cluster_stats(self, cluster: str) -> dict[str, int | str]:
        """Envoy's own counters and gauges of one cluster (`cluster.<name>.…` without the prefix):
        `outlier_detection.ejections_enforced_total`, `upstream_rq_pending_overflow`, … — what
        happened to the requests, kept after the moment passed. {} without a live proxy."""
        if cluster in self._stats:
            return self._stats[cluster]
        out: dict[str, int | str] = {}
        if self._backend is not None and cluster:
            try:
                admin = self._backend.envoy(self.proxy, namespace=self._namespace)
                prefix = f"cluster.{cluster}."
                got = admin.stats("^" + re.escape(prefix))
                out = {k[len(prefix):]: v for k, v in got.items() if k.startswith(prefix)}
            except Exception:      # no live proxy (a closed lab, a cluster not reachable)
                out = {}
        self._stats[cluster] = out
        return out

    def localities(self, cluster: str) -> list[tuple[str, int, str]]:
        """(endpoint, failover priority, locality) of a cluster's endpoints, as the proxy has them."""
        return [(str(e.get("endpoint")), int(e.get("priority") or 0), str(e.get("locality") or ""))
                for e in self.endpoints.get(cluster, [])]


def rows_of(x: Any) -> list[dict[str, Any]]:
    if x is None:
        return []
    if hasattr(x, "to_dict"):
        return x.to_dict("records")
    return [dict(r) for r in x]


def clusters_in(destination: str) -> list[str]:
    """`outbound|9080|v1|r…` or `outbound|…|v1|r… 80, outbound|…|v2|r… 20` → cluster names."""
    out = []
    for part in destination.split(","):
        token = part.strip().split(" ")[0]
        if parse_cluster_name(token) is not None:
            out.append(token)
    return out


def ref(obj: K8sObject) -> str:
    return f"{obj.kind} {obj.namespace}/{obj.name}"


def client(proxy: str) -> str:
    """How istioctl names the proxy: the ingress gateway, a gateway deployment, or the client pod."""
    if proxy == "gateway":
        return "deploy/istio-ingressgateway -n istio-system"
    if proxy not in ("sidecar", "none", ""):
        ns, _, name = proxy.rpartition("/")
        return f"deploy/{name} -n {ns or 'default'}"
    return "<client-pod>"
