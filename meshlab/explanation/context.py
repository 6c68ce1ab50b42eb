"""What explain reads: the lab's objects, pods and live Envoy config — through the Backend protocol only.

A `Context` is built once per `explain()`: an analysis snapshot of the lab's objects with its
pods' live readiness (the same view `meshlab.analyze(lab)` has, with its findings), and each
proxy's `envoy_config()` rows read on demand. Given only objects, it has no live view and the
causes rest on the objects alone.
"""

from __future__ import annotations

from typing import Any

from ..analysis import analyze_snapshot, snapshot_of
from ..backends.base import Backend, ProxyName
from ..errors import ProbeError
from ..names import host_subset_of, parse_cluster_name, to_fqdn
from ..objects import DestinationRule, K8sObject, VirtualService
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
        name, _, ns = ref.partition(".")
        for vs in self.snap.virtual_services:
            if vs.name == name and (vs.namespace or "default") == (ns or "default"):
                return vs
        return None

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


class EnvoyView:
    """`backend.envoy_config(proxy)` (istioctl proxy-config style rows, with each endpoint's
    outlier state), read defensively."""

    def __init__(self, backend: Backend | None, proxy: ProxyName, namespace: str):
        self.proxy = proxy
        self.available = False
        self.clusters: dict[str, dict[str, Any]] = {}
        self.routes: list[dict[str, Any]] = []
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

    def cluster_missing(self, name: str) -> bool:
        return self.available and name not in self.clusters


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
    return "deploy/istio-ingressgateway -n istio-system" if proxy == "gateway" else "<client-pod>"
