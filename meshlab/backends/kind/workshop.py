"""A workshop on one shared cluster: what an attendee's namespace and RBAC must be for their lab.

Why generated, not a YAML file to copy: the rules must be exactly what `Lab(backend="cluster",
context=…, namespace=…)` calls (backends/kind/backend.py), no more, so they live next to it and
a test runs a whole lab as a user holding only them. `meshlab workshop-rbac --namespace alice
--user alice` prints them for the organiser to `kubectl apply`.

What an attendee gets, and why:
- their Namespace, labelled `istio-injection=enabled` (made by the organiser: an attendee may
  not create or even read Namespaces, which are cluster-scoped);
- a Role in it (`meshlab-attendee`): the kinds a lab applies, reads back and deletes (Services,
  Pods, Deployments, Istio's VirtualServices, DestinationRules, Gateways, ServiceEntries), plus
  `pods/exec` (the probe's client pod runs the prober; a pod's knobs; its sidecar's Envoy config)
  and `pods/log` (the client sidecar's access log, joined with the probe's rows);
- a Role in istio-system (`meshlab-gateway-logs`): get/list pods and get `pods/log`, so a probe
  `via="gateway"` can read the shared ingress gateway's access log. That log also carries the
  other attendees' requests through the gateway (their paths and hosts, not their objects); the
  lab itself keeps only its own rows (joined by request id).

Not granted: anything cluster-scoped, and `pods/exec` in istio-system — exec into the shared
ingress gateway would let an attendee run any command in it (stop it for everyone), so
`lab.envoy_config("gateway")` is refused by RBAC on a workshop cluster and the organiser shows it.
"""

from __future__ import annotations

from typing import Any

from ...names import ISTIO_NAMESPACE
from .config import INJECTION_LABEL

ROLE = "meshlab-attendee"
GATEWAY_LOGS_ROLE = "meshlab-gateway-logs"
#: Everything a lab does to its own objects (server-side apply is a `patch`, and a `create` when
#: the object is new; `kubectl` and the probe need get/list/watch).
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def _subject(user: str | None, group: str | None) -> dict[str, str]:
    if (user is None) == (group is None):
        raise ValueError("name exactly one of user or group")
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User" if user else "Group", "name": user or group or ""}


def attendee_manifests(namespace: str, *, user: str | None = None, group: str | None = None) -> list[dict[str, Any]]:
    """The Namespace, Role and RoleBinding of one attendee (and their binding to the gateway-log
    Role in istio-system, which is included once per attendee so each output applies on its own)."""
    subject = _subject(user, group)
    who = (user or group or "").replace(":", "-")
    rules = [
        {"apiGroups": [""], "resources": ["services", "pods"], "verbs": list(VERBS)},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": list(VERBS)},
        {"apiGroups": ["networking.istio.io"],
         "resources": ["virtualservices", "destinationrules", "gateways", "serviceentries"], "verbs": list(VERBS)},
        {"apiGroups": ["gateway.networking.k8s.io"],                       # chapter 9
         "resources": ["gateways", "httproutes", "grpcroutes", "referencegrants"], "verbs": list(VERBS)},
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": {INJECTION_LABEL[0]: INJECTION_LABEL[1]}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": ROLE, "namespace": namespace}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": ROLE, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
         "subjects": [subject]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": GATEWAY_LOGS_ROLE, "namespace": ISTIO_NAMESPACE},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                   {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": f"{GATEWAY_LOGS_ROLE}-{namespace}-{who}", "namespace": ISTIO_NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATEWAY_LOGS_ROLE},
         "subjects": [subject]},
    ]


__all__ = ["attendee_manifests", "ROLE", "GATEWAY_LOGS_ROLE"]
