"""istioctl's analyzers of workloads and their place in the mesh: IST0102, IST0103, IST0116, IST0137,
and IST0135 for the deprecated `sidecar.istio.io/inject` annotation.

Sources, in istio/istio pkg/config/analysis/analyzers: injection/injection.go (namespace not
enabled for injection, pod without its sidecar), deployment/services.go (one Deployment behind
Services that disagree on a port's protocol, or map one targetPort from different ports),
util/in_mesh.go (what "in the mesh" means for a Deployment).

Namespaces are taken as the objects say: a Namespace given without `istio-injection` or
`istio.io/rev` gets IST0102, as istioctl reports it. Where no Namespace object is given, `default`
is the course's (labelled `istio-injection=enabled` by `meshlab up`; part of
`snapshot.default_istio_install`) and others are not injected. Pods meshlab derives from a
Deployment in an injected namespace are taken as injected (the webhook adds the sidecar when they
are created); only Pod objects given as such are checked for a missing sidecar.

IST0143 (LocalhostListener) is in Istio's message table but no analyzer of the linked release
reports it (no file under pkg/config/analysis/analyzers creates it; it was a check of a running
proxy's listeners), and a pod spec cannot say that an app binds to localhost: meshlab does not
report it either.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..names import ISTIO_NAMESPACE, labels_match
from ..objects import Deployment, Namespace, Pod
from .mlb_codes import level_of
from .snapshot import Finding, Snapshot, finding, go_list, go_quote

INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
SIDECAR_INJECT = "sidecar.istio.io/inject"
PROXY_CONTAINER = "istio-proxy"
WAYPOINT_MANAGED = ("gateway.istio.io/managed", "istio.io-mesh-controller")


def namespace_injected(s: Snapshot, namespace: str) -> bool | None:
    """istio-injection=enabled on the Namespace object (None: no such object, or no label)."""
    ns = s.namespace_objects.get(namespace)
    if ns is None or INJECTION_LABEL not in ns.labels:
        return None
    return ns.labels[INJECTION_LABEL] == "enabled"


def _has_proxy(containers: list[Any]) -> bool:
    return any(c.name == PROXY_CONTAINER and c.image for c in containers)


def in_mesh(s: Snapshot, namespace: str, labels: dict[str, str], annotations: dict[str, str],
            containers: list[Any]) -> bool:
    """util/in_mesh.go inMesh: an istio-proxy container; else the pod's sidecar.istio.io/inject
    label, then annotation ("true"); else the Namespace's istio-injection label."""
    if _has_proxy(containers):
        return True
    for meta in (labels, annotations):
        if SIDECAR_INJECT in meta:
            return meta[SIDECAR_INJECT] == "true"
    return bool(namespace_injected(s, namespace))


# ------------------------------------------------------------------------------ IST0102, IST0103

def injection(s: Snapshot) -> Iterator[Finding]:
    """IST0102 for a Namespace not enabled for injection; IST0103 for a Pod of an injected
    namespace without its istio-proxy container (unless it opts out or uses the host network)."""
    injected: set[str] = set()
    for ns in s.state.list(Namespace):
        if ns.name == ISTIO_NAMESPACE or not s.is_given(ns):
            if namespace_injected(s, ns.name):
                injected.add(ns.name)
            continue
        labels = ns.labels
        if labels.get(DATAPLANE_MODE_LABEL) == "ambient":
            continue
        value = labels.get(INJECTION_LABEL, "")
        if value == "" and REVISION_LABEL not in labels:
            yield finding(ns, "IST0102",
                          f"The namespace is not enabled for Istio injection. Run 'kubectl label namespace {ns.name} "
                          f"istio-injection=enabled' to enable it, or 'kubectl label namespace {ns.name} "
                          "istio-injection=disabled' to explicitly mark it as not needing injection.",
                          f"Label it `istio-injection: enabled` so its pods get a sidecar (meshlab's course "
                          f"namespaces are), or `disabled` if {ns.name} stays outside the mesh.", "metadata.labels")
            continue
        if value == "enabled":
            injected.add(ns.name)
    for pod in s.state.list(Pod):
        ns = pod.namespace or "default"
        if ns not in injected:
            continue
        inject = pod.metadata.labels.get(SIDECAR_INJECT, pod.metadata.annotations.get(SIDECAR_INJECT, ""))
        if inject.lower() == "false" or (pod.spec.model_extra or {}).get("hostNetwork"):
            continue
        if not _has_proxy([*pod.spec.containers, *(pod.spec.init_containers or [])]):
            yield finding(pod, "IST0103", f"The pod {ns}/{pod.name} is missing the Istio proxy. This can often be "
                          "resolved by restarting or redeploying the workload.",
                          "A pod created before its namespace was labelled has no sidecar: delete it (its "
                          "Deployment makes a new one, with the sidecar).", "spec.containers")


# ------------------------------------------------------------------------------ IST0116, IST0137

def deployment_services(s: Snapshot) -> Iterator[Finding]:
    """deployment/services.go: for each Deployment in the mesh (not a waypoint), the Services of its
    namespace whose selector matches its pod template: IST0116 when they give one port different
    protocols, IST0137 when one targetPort is reached from different ports."""
    by_ns: dict[str, list[Any]] = {}
    for svc in s.services:
        if svc.spec.selector:
            by_ns.setdefault(svc.namespace or "default", []).append(svc)
    for dep in s.state.list(Deployment):
        tmpl = dep.spec.template
        if dep.labels.get(WAYPOINT_MANAGED[0]) == WAYPOINT_MANAGED[1]:
            continue
        ns = dep.namespace or "default"
        containers = list(tmpl.spec.containers)
        if not in_mesh(s, ns, tmpl.metadata.labels, tmpl.metadata.annotations, containers):
            continue
        matching = [svc for svc in by_ns.get(ns, []) if labels_match(svc.spec.selector, tmpl.metadata.labels)]
        protocols: dict[int, dict[str, list[str]]] = {}
        target_ports: dict[str, dict[int, str]] = {}
        for svc in matching:
            name = f"{ns}/{svc.name}"
            for p in svc.spec.ports:
                protocols.setdefault(p.port, {}).setdefault(p.protocol or "TCP", []).append(name)
                tp = str(p.target_port) if p.target_port not in (None, 0, "") else str(p.port)
                target_ports.setdefault(tp, {})[p.port] = name
        for port, by_protocol in protocols.items():
            if len(by_protocol) > 1:
                names = sorted(n for group in by_protocol.values() for n in group)
                yield finding(dep, "IST0116", f"This deployment {dep.name} is associated with multiple services "
                              f"using port {port} but different protocols: {go_list(names)}",
                              f"Give port {port} one protocol in every Service that selects these pods; the "
                              "sidecar builds one listener per port.", "spec.template.metadata.labels")
        for tp, by_port in target_ports.items():
            if len(by_port) > 1:
                yield finding(dep, "IST0137", f"This deployment {dep.name} is associated with multiple services "
                              f"{go_list(sorted(by_port.values()))} using targetPort {go_quote(tp)} but different "
                              f"ports: {go_list(sorted(by_port))}.",
                              f"Reach targetPort {tp} through one port number in every Service that selects these "
                              "pods: the sidecar's inbound side keys its config by port.",
                              "spec.template.metadata.labels")


# ---------------------------------------------------------------------------------------- IST0135

def deprecated_inject_annotation(s: Snapshot) -> Iterator[Finding]:
    """annotations/annotations.go, for the one deprecated annotation a traffic lab meets:
    `sidecar.istio.io/inject` as an annotation (Istio reads the label of that name now), on a
    Namespace, Service, Pod or Deployment's own metadata — and on each Pod a Deployment makes
    from a template carrying it, as a live cluster's Pods carry it (named as meshlab names them).
    Not when the label is there too. (Istio's analyzer also checks every other istio.io
    annotation against istio.io/api's table: IST0108, IST0136, IST0155 … — not reproduced.)"""
    def flagged(labels: dict[str, str], annotations: dict[str, str]) -> bool:
        return SIDECAR_INJECT in annotations and SIDECAR_INJECT not in labels

    message = (f"Annotation {go_quote(SIDECAR_INJECT)} has been deprecated in favor of the {go_quote(SIDECAR_INJECT)} "
               "label and may not work in future Istio versions.")
    fix = f"Write `{SIDECAR_INJECT}` under metadata.labels instead of metadata.annotations."
    for obj in s.state.all():
        if obj.kind in ("Namespace", "Service", "Pod", "Deployment") and s.is_given(obj) \
                and flagged(obj.labels, obj.metadata.annotations):
            yield finding(obj, "IST0135", message, fix, "metadata.annotations")
    for dep in s.state.list(Deployment):
        tmpl = dep.spec.template.metadata
        if not flagged(tmpl.labels, tmpl.annotations):
            continue
        for pod in s.pods_by_ns.get(dep.namespace or "default", []):
            if pod.owner == dep.name:
                src = dep.source
                yield Finding("IST0135", level_of("IST0135"), "Pod", pod.namespace, pod.name, message, fix,
                              "metadata.annotations", str(src) if src else "")


RULES = (injection, deployment_services, deprecated_inject_annotation)
