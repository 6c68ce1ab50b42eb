"""What every analyzer rule needs: the `Finding` type and an indexed snapshot of one cluster.

Why a snapshot: istioctl's analyzers look things up by host, by subset and by label over and over.
Building those indexes once (host → Service/ServiceEntry per visibility scope, label → pods) keeps
every rule linear in the number of objects, so 1,000 Services and 5,000 pods analyze in well under
a second.

The semantics follow istioctl's analyzers (pkg/config/analysis/analyzers in istio/istio), which do
*not* always match what istiod does when it generates Envoy config; where they differ, analyzers
here side with istioctl and meshlab's own `MLB` rules point out what Envoy will actually do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..names import (
    INGRESS_GATEWAY, INGRESS_GATEWAY_LABELS, ISTIO_NAMESPACE, MESH_GATEWAY, labels_match, service_of, split_fqdn,
    to_fqdn,
)
from ..objects import (
    DestinationRule, Gateway, K8sObject, KubernetesGateway, Namespace, ObjectKey, Service, ServiceEntry,
    UnmodelledObject, VirtualService,
)
from ..state import ClusterState, PodInfo
from .codes import Level
from .mlb_codes import MESHLAB, Page, documentation_url, level_of, page


EXPORT_ALL = "*"
EXPORT_LOCAL = "."
#: istioctl's live-cluster source does not read Services, Pods, Deployments or Namespaces there.
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
SUPPRESS_ANNOTATION = "galley.istio.io/analyze-suppress"


@dataclass(frozen=True)
class Finding:
    """One problem found in the configuration, shaped like an `istioctl analyze` message.

    `code` is Istio's (`IST0101`) where Istio has a rule for it, else meshlab's own (`MLB0001`).
    `fix` says what to change; `field` points into the object (`spec.http[0].route[1].destination`);
    `page` explains the code at length (Markdown; `meshlab explain-code CODE` prints the same).
    `group` is the object's API group: istioctl prints only kind and name (`origin`), so an Istio
    Gateway and a Gateway API Gateway of one name print alike, but they are two objects (`key`).
    """

    code: str
    level: Level
    kind: str
    namespace: str
    name: str
    message: str
    fix: str = ""
    field: str = ""
    source: str = ""
    group: str = ""

    @property
    def key(self) -> ObjectKey:
        """The object the finding is about, as `K8sObject.key` names it."""
        return ObjectKey(self.group, self.kind, self.namespace, self.name)

    @property
    def origin(self) -> str:
        """How istioctl names the resource: `VirtualService default/reviews`."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def __str__(self) -> str:
        return f"{self.level} [{self.code}] ({self.origin}) {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "level": self.level, "kind": self.kind, "namespace": self.namespace,
                "name": self.name, "message": self.message, "fix": self.fix, "field": self.field,
                "origin": self.origin, "source": self.source,
                "documentation_url": documentation_url(self.code), "page": self.page_command}

    @property
    def page(self) -> Page:
        """The page that explains this finding's code (Markdown; Jupyter renders it): for an MLB
        code meshlab's own, for an IST code a pointer to istio.io's."""
        return page(self.code)

    @property
    def page_command(self) -> str:
        """The command that prints the page of an MLB code (`meshlab explain-code MLB0003`), else ""."""
        return f"meshlab explain-code {self.code}" if self.code in MESHLAB else ""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """How IPython/Jupyter shows a finding: istioctl's line, the fix, and how to read the page."""
        p.text(str(self))
        if self.fix:
            p.text(f"\n    fix: {self.fix}")
        if self.page_command:
            p.text(f"\n    page: .page (or `{self.page_command}`)")


def finding(obj: K8sObject, code: str, message: str, fix: str = "", field: str = "") -> Finding:
    """A finding about `obj`, at the level `codes.py` gives `code`."""
    src = obj.source
    return Finding(code, level_of(code), obj.kind, (obj.namespace or "") if obj.NAMESPACED else "", obj.name,
                   message, fix, field, str(src) if src else "", obj.group)


def go_quote(s: str) -> str:
    """Go's %q for the strings istioctl quotes (close enough: JSON string escaping)."""
    return json.dumps(s)


def go_list(items: Iterable[Any]) -> str:
    """Go's %v of a slice: `[a b c]`."""
    return "[" + " ".join(str(i) for i in items) + "]"


# ------------------------------------------------------------------------------------------- hosts

def resource_name_from_host(default_ns: str, host: str) -> tuple[str, str]:
    """istioctl's GetResourceNameFromHost: (namespace, name) used to key DestinationRule subsets."""
    parts = split_fqdn(host)
    if parts is not None:
        return parts[1], parts[0]
    return default_ns, host


# ---------------------------------------------------------------------------------------- registry

@dataclass
class Registered:
    """A Service or ServiceEntry as istioctl's analyzers see it: hosts, ports, workload labels."""

    obj: K8sObject
    ports: list[tuple[int, str, str]]            # (number, name, protocol)
    workload_labels: dict[str, str] = field(default_factory=dict)


def _service_visibility(svc: Service) -> list[str]:
    anno = svc.metadata.annotations.get("networking.istio.io/exportTo", "")
    if not anno:
        return [EXPORT_ALL]
    ns = svc.namespace or "default"
    return [ns if part.strip() == EXPORT_LOCAL else part.strip() for part in anno.split(",")]


def default_istio_install() -> list[K8sObject]:
    """What a cluster with Istio's default profile already holds: istiod and the ingress gateway,
    and the namespaces `meshlab up` makes (default, labelled for sidecar injection).

    `istioctl analyze` against a live cluster sees these, so a Gateway selecting
    `istio: ingressgateway` on port 8080 (Bookinfo's) is fine there; analyzing "exactly the
    learner's objects" without them would report every Gateway's selector as not found.
    """
    from ..manifests import load
    return load([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NAMESPACE}},
        # the course's namespace, labelled for injection by `meshlab up` (backends/kind/config.py)
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": INGRESS_GATEWAY, "namespace": ISTIO_NAMESPACE, "labels": dict(INGRESS_GATEWAY_LABELS)},
         "spec": {"type": "LoadBalancer", "selector": dict(INGRESS_GATEWAY_LABELS),
                  "ports": [{"name": "status-port", "port": 15021, "targetPort": 15021},
                            {"name": "http2", "port": 80, "targetPort": 8080},
                            {"name": "https", "port": 443, "targetPort": 8443}]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": f"{INGRESS_GATEWAY}-5c9b8d7f6-q4x2m", "namespace": ISTIO_NAMESPACE,
                      "labels": dict(INGRESS_GATEWAY_LABELS)},
         "spec": {"containers": [{"name": "istio-proxy", "ports": [{"containerPort": 8080}, {"containerPort": 8443},
                                                                   {"containerPort": 15021}]}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "istiod", "namespace": ISTIO_NAMESPACE, "labels": {"app": "istiod", "istio": "pilot"}},
         "spec": {"selector": {"app": "istiod", "istio": "pilot"},
                  "ports": [{"name": "grpc-xds", "port": 15010}, {"name": "https-dns", "port": 15012},
                            {"name": "https-webhook", "port": 443, "targetPort": 15017},
                            {"name": "http-monitoring", "port": 15014}]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "istiod-6d8f9c7b5-k2p8w", "namespace": ISTIO_NAMESPACE,
                      "labels": {"app": "istiod", "istio": "pilot"}},
         "spec": {"containers": [{"name": "discovery"}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kubernetes", "namespace": "default",
                      "labels": {"component": "apiserver", "provider": "kubernetes"}},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443}]}},
    ])


class Snapshot:
    """One cluster's objects and pods, indexed the way the analyzers look them up."""

    def __init__(self, state: ClusterState, synthetic: set[ObjectKey] | None = None,
                 given: set[ObjectKey] | None = None):
        self.state = state
        self.synthetic = synthetic or set()
        #: the keys of the objects analyzed as given (None: all of the state's)
        self.given = given
        self.services: list[Service] = [s for s in state.list(Service) if s.namespace not in IGNORED_NAMESPACES]
        self.virtual_services: list[VirtualService] = state.list(VirtualService)
        self.destination_rules: list[DestinationRule] = state.list(DestinationRule)
        self.gateways: list[Gateway] = state.list(Gateway)
        self.service_entries: list[ServiceEntry] = state.list(ServiceEntry)
        self.k8s_gateways: list[KubernetesGateway] = state.list(KubernetesGateway)
        self.sidecars = [o for o in state.list(UnmodelledObject)
                         if o.kind == "Sidecar" and o.api_version.startswith("networking.istio.io/")]
        self.namespace_objects = {n.name: n for n in state.list(Namespace)}
        self.namespaces: set[str] = set(state.namespaces()) | {o.namespace or "" for o in state.all() if o.NAMESPACED}
        self.pods: list[PodInfo] = [p for p in state.pods() if p.namespace not in IGNORED_NAMESPACES]
        self.service_by_key = {(s.namespace or "", s.name): s for s in self.services}
        self.gateway_by_key = {(g.namespace or "", g.name): g for g in self.gateways}
        self._pods_by_label: dict[tuple[str, str], list[PodInfo]] = {}
        self.pods_by_ns: dict[str, list[PodInfo]] = {}
        for p in self.pods:
            self.pods_by_ns.setdefault(p.namespace, []).append(p)
            for kv in p.labels.items():
                self._pods_by_label.setdefault(kv, []).append(p)
        self._registry: dict[tuple[str, str], Registered] = {}
        self._wildcards: list[tuple[str, str, Registered]] = []
        self._build_registry()

    # ---------------------------------------------------------------------------- registry
    def _register(self, scope: str, fqdn: str, reg: Registered) -> None:
        key = (scope, fqdn)
        if fqdn.startswith("*") and key not in self._registry:
            self._wildcards.append((scope, fqdn, reg))
        self._registry[key] = reg

    def _build_registry(self) -> None:
        """istioctl's InitServiceEntryHostMap: ServiceEntry hosts per exportTo scope, then Services."""
        for se in self.service_entries:
            ns = se.namespace or "default"
            reg = Registered(se, [(p.number, p.name or "", p.protocol or "") for p in se.spec.ports],
                             dict(se.spec.workload_selector.match_labels) if se.spec.workload_selector else {})
            export = se.spec.export_to
            for h in se.spec.hosts:
                fq = to_fqdn(h, ns)
                if not export or EXPORT_ALL in export:
                    self._register(EXPORT_ALL, fq, reg)
                    continue
                for e in export:
                    self._register(ns if e == EXPORT_LOCAL else e, fq, reg)
        for svc in self.services:
            ns = svc.namespace or "default"
            reg = Registered(svc, [(p.port, p.name or "", p.protocol) for p in svc.spec.ports])
            fq = to_fqdn(svc.name, ns)
            for scope in _service_visibility(svc):
                self._register(scope, fq, reg)

    def destination_host(self, source_ns: str, export_to: list[str], host: str) -> Registered | None:
        """istioctl's GetDestinationHost: the Service/ServiceEntry a VS/DR in `source_ns` reaches.

        Note istioctl looks the host up in the scopes named by the *referencing* resource's
        exportTo (its own namespace when unset), then wildcard ServiceEntry hosts.
        """
        fq = to_fqdn(host, source_ns)
        reg = self._registry.get((EXPORT_ALL, fq))
        if reg is not None:
            return reg
        scopes = [source_ns] if not export_to else [source_ns if e == EXPORT_LOCAL else e for e in export_to]
        for scope in scopes:
            reg = self._registry.get((scope, fq))
            if reg is not None:
                return reg
        bare = host[1:] if host.startswith("*") else host
        for scope, se_host, reg in self._wildcards:
            if scope != EXPORT_ALL and scope != source_ns:
                continue
            if bare.endswith(se_host[1:]):
                return reg
        return None

    def service_for_host(self, host: str, namespace: str) -> Service | None:
        """The k8s Service a (possibly short) host names, with Istio's expansion rules."""
        parts = service_of(to_fqdn(host, namespace))
        return None if parts is None else self.service_by_key.get((parts[1], parts[0]))

    # ---------------------------------------------------------------------------- pods
    def pods_with_labels(self, selector: dict[str, str], namespace: str | None = None) -> Iterator[PodInfo]:
        """Pods carrying all `selector` labels (any namespace unless given); uses the label index."""
        if not selector:
            yield from (self.pods if namespace is None else self.pods_by_ns.get(namespace, []))
            return
        postings = [self._pods_by_label.get(kv, []) for kv in selector.items()]
        for p in min(postings, key=len):
            if (namespace is None or p.namespace == namespace) and labels_match(selector, p.labels):
                yield p

    def service_pods(self, svc: Service) -> list[PodInfo]:
        """Pods a Service selects (its namespace; a Service without selector selects none)."""
        if svc.spec.selector is None:
            return []
        return list(self.pods_with_labels(svc.spec.selector, svc.namespace or "default"))

    def is_synthetic(self, f: Finding) -> bool:
        return f.key in self.synthetic

    def is_synthetic_obj(self, obj: K8sObject) -> bool:
        return obj.key in self.synthetic

    def is_given(self, obj: K8sObject) -> bool:
        """Whether `obj` is one of the objects given (not the install's, nor a namespace the state
        makes by itself: default, kube-system, ...)."""
        return obj.key in self.given if self.given is not None else not self.is_synthetic_obj(obj)


# ----------------------------------------------------------------------------------- destinations

@dataclass(frozen=True)
class RouteDest:
    """One destination a VirtualService names, with where it sits in the object."""

    section: str              # "http", "tcp", "tls", "http.mirror", "http.mirrors"
    rule: int
    index: int
    host: str
    subset: str
    port: int | None
    field: str


def _dest_from_dict(d: dict[str, Any]) -> tuple[str, str, int | None]:
    port = (d.get("port") or {}).get("number")
    return str(d.get("host", "")), str(d.get("subset") or ""), int(port) if port is not None else None


def route_destinations(vs: VirtualService) -> list[RouteDest]:
    """Route destinations in istioctl's order: tcp, tls, then http."""
    out: list[RouteDest] = []
    for section, rules in (("tcp", vs.spec.tcp), ("tls", vs.spec.tls)):
        for i, rule in enumerate(rules):
            for j, rd in enumerate(rule.get("route") or []):
                host, subset, port = _dest_from_dict((rd or {}).get("destination") or {})
                out.append(RouteDest(section, i, j, host, subset, port, f"spec.{section}[{i}].route[{j}].destination"))
    for i, rule in enumerate(vs.spec.http):
        for j, rd in enumerate(rule.route or []):
            d = rd.destination
            out.append(RouteDest("http", i, j, d.host, d.subset or "", d.port.number if d.port else None,
                                 f"spec.http[{i}].route[{j}].destination"))
    return out


def mirror_destinations(vs: VirtualService) -> list[RouteDest]:
    out: list[RouteDest] = []
    for i, rule in enumerate(vs.spec.http):
        if rule.mirror is not None:
            m = rule.mirror
            out.append(RouteDest("http.mirror", i, 0, m.host, m.subset or "", m.port.number if m.port else None,
                                 f"spec.http[{i}].mirror"))
        for j, mp in enumerate(rule.mirrors or []):
            m = mp.destination
            out.append(RouteDest("http.mirrors", i, j, m.host, m.subset or "", m.port.number if m.port else None,
                                 f"spec.http[{i}].mirrors[{j}].destination"))
    return out


def applies_to_mesh(vs: VirtualService) -> bool:
    return not vs.spec.gateways or MESH_GATEWAY in vs.spec.gateways


def rule_name(rule_name_: str | None, index: int) -> str:
    """How Istio's validation names a rule: `"name"` or `#index`."""
    return go_quote(rule_name_) if rule_name_ else f"#{index}"
