"""The real API server the cluster-backend tests stand on (tests/_apiserver.py), checked against
itself: it is the Kubernetes version kube/go.mod pins, it serves Istio's and the Gateway API's
CRDs, it stores what a learner applies by server-side apply, it refuses what the CRD schemas and
their CEL rules refuse (naming the field), RBAC confines a user to a namespace, and its processes
never outlive the tests.

Each test works in namespaces of its own, so the session's one server is shared safely.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.dynamic.exceptions import DynamicApiError

from _apiserver import (FIELD_MANAGER, GATEWAY_API, GATEWAY_API_CRDS, ISTIO_API, ISTIO_CRDS, REPO,
                        SERVICE_CIDR, USERS, APIServer, PodStatusWriter, apiserver, build, crd_documents,  # noqa: F401
                        eventually, module_dir, start)
from _manifests import SEED_VS_DR, deployment, destination_rule, docs, namespace, service, virtual_service
from _pids import alive, survivors


def _status(e: DynamicApiError) -> dict[str, Any]:
    """The API's Status object carried by an error."""
    return json.loads(e.body)


def _get(server: APIServer, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
    client = server.dynamic()
    return client.get(client.resources.get(api_version=api_version, kind=kind), name=name, namespace=namespace)


def _absent(server: APIServer, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
    try:
        _get(server, api_version, kind, name, namespace)
    except DynamicApiError as e:
        return e.status == 404
    return False


# ------------------------------------------------------------------------------- what is running

def test_reports_the_kubernetes_version_kube_go_mod_pins(apiserver: APIServer) -> None:
    pinned = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", (REPO / "kube" / "go.mod").read_text(), re.M)
    assert pinned, "kube/go.mod does not require k8s.io/kubernetes"
    status, body = apiserver.get("/version")
    assert status == 200
    version = json.loads(body)
    assert version["gitVersion"] == pinned.group(1)
    assert (version["major"], version["minor"]) == tuple(pinned.group(1)[1:].split(".")[:2])


def test_each_kubeconfig_context_authenticates_as_its_user(apiserver: APIServer) -> None:
    from kubernetes import config

    contexts, current = config.list_kube_config_contexts(config_file=str(apiserver.kubeconfig))
    assert {c["name"] for c in contexts} >= set(USERS) and current["name"] == "admin"
    for user, groups in USERS.items():
        client = apiserver.dynamic(user)
        review = client.create(client.resources.get(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"),
                               body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        info = review.status.userInfo
        assert info.username == user
        assert set(groups) <= set(info.groups) and "system:authenticated" in info.groups


def test_serves_the_crds_of_the_pinned_istio_and_gateway_api_modules(apiserver: APIServer) -> None:
    istio = module_dir(ISTIO_API) / ISTIO_CRDS
    gateway_api = sorted((module_dir(GATEWAY_API) / GATEWAY_API_CRDS).glob("*.yaml"))
    assert istio.is_file() and len(gateway_api) >= 5
    expected = {d["metadata"]["name"]: {v["name"] for v in d["spec"]["versions"] if v["served"]}
                for d in crd_documents() if d["kind"] == "CustomResourceDefinition"}
    assert {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
            "httproutes.gateway.networking.k8s.io"} <= set(expected)
    status, body = apiserver.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    served = {i["metadata"]["name"]: {v["name"] for v in i["spec"]["versions"] if v["served"]}
              for i in json.loads(body)["items"]}
    assert status == 200 and served == expected


# ------------------------------------------------------------------------- server-side apply works

def test_server_side_apply_stores_a_workload_and_its_routing(apiserver: APIServer) -> None:
    ns = "ssa-reviews"
    apiserver.apply(docs(
        namespace(ns),
        deployment("reviews", "v1", namespace=ns), deployment("reviews", "v2", namespace=ns),
        service("reviews", namespace=ns),
        destination_rule("reviews", ["v1", "v2"], namespace=ns),
        virtual_service("reviews", ["reviews"], """
            - route:
              - {destination: {host: reviews, subset: v1}, weight: 90}
              - {destination: {host: reviews, subset: v2}, weight: 10}
            """, namespace=ns)))

    svc = _get(apiserver, "v1", "Service", "reviews", ns)
    assert ipaddress.ip_address(svc.spec.clusterIP) in ipaddress.ip_network(SERVICE_CIDR)
    assert [p.targetPort for p in svc.spec.ports] == [9080]          # defaulted by the API server
    assert _get(apiserver, "apps/v1", "Deployment", "reviews-v2", ns).spec.template.metadata.labels.version == "v2"
    vs = _get(apiserver, "networking.istio.io/v1", "VirtualService", "reviews", ns)
    assert [(r.destination.subset, r.weight) for r in vs.spec.http[0].route] == [("v1", 90), ("v2", 10)]
    assert [(m.manager, m.operation) for m in vs.metadata.managedFields] == [(FIELD_MANAGER, "Apply")]
    assert [s.name for s in _get(apiserver, "networking.istio.io/v1", "DestinationRule", "reviews", ns).spec.subsets] \
        == ["v1", "v2"]


def test_the_seed_questions_v1alpha3_objects_are_served_as_v1(apiserver: APIServer) -> None:
    apiserver.apply(docs(namespace("prod"), SEED_VS_DR))
    vs = _get(apiserver, "networking.istio.io/v1", "VirtualService", "reviews-route", "prod")
    assert [r.name for r in vs.spec.http] == ["reviews-v2-routes", "reviews-v1-route"]
    dr = _get(apiserver, "networking.istio.io/v1", "DestinationRule", "reviews-destination", "prod")
    assert dr.spec.host == "reviews.prod.svc.cluster.local"


# ------------------------------------------------------------------------ what the API refuses

def test_crd_schema_refuses_a_weight_given_as_a_string_naming_the_field(apiserver: APIServer) -> None:
    ns = "refuse-schema"
    apiserver.apply(namespace(ns))
    bad = yaml.safe_load(virtual_service("reviews", ["reviews"], """
        - route: [{destination: {host: reviews}, weight: '50'}]""", namespace=ns))

    # Server-side apply: the typed-patch conversion (structured-merge-diff, driven by the CRD's
    # schema) refuses it before validation — with HTTP 500 in Kubernetes 1.36
    # (kubernetes/kubernetes#139253: to become 400). The field is named either way.
    with pytest.raises(DynamicApiError) as ssa:
        apiserver.apply(bad)
    assert ssa.value.status == 500
    assert ".spec.http[0].route[0].weight: expected numeric" in _status(ssa.value)["message"]

    # A plain create (kubectl create) meets the OpenAPI schema itself: 422 Invalid, with the cause.
    client = apiserver.dynamic()
    with pytest.raises(DynamicApiError) as create:
        client.create(client.resources.get(api_version="networking.istio.io/v1", kind="VirtualService"),
                      body=bad, namespace=ns)
    status = _status(create.value)
    assert create.value.status == 422 and status["reason"] == "Invalid"
    # ... plus a cause with no field: the CEL rules were skipped because the schema failed first
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] \
        == [("spec.http[0].route[0].weight", "FieldValueTypeInvalid"), ("<nil>", "FieldValueInvalid")]
    assert "weight in body must be of type integer" in status["message"]
    assert "some validation rules were not checked" in status["details"]["causes"][1]["message"]
    assert _absent(apiserver, "networking.istio.io/v1", "VirtualService", "reviews", ns)


def test_crd_schema_refuses_an_unknown_load_balancer_naming_the_field(apiserver: APIServer) -> None:
    ns = "refuse-enum"
    apiserver.apply(namespace(ns))
    with pytest.raises(DynamicApiError) as e:
        apiserver.apply(destination_rule("reviews", namespace=ns, traffic_policy="{loadBalancer: {simple: FASTEST}}"))
    status = _status(e.value)
    assert e.value.status == 422
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] \
        == [("spec.trafficPolicy.loadBalancer.simple", "FieldValueNotSupported"), ("<nil>", "FieldValueInvalid")]
    assert '"FASTEST"' in status["message"] and '"ROUND_ROBIN"' in status["message"]
    assert _absent(apiserver, "networking.istio.io/v1", "DestinationRule", "reviews", ns)


def test_cel_rule_refuses_a_timeout_under_one_millisecond_naming_the_field(apiserver: APIServer) -> None:
    ns = "refuse-cel"
    apiserver.apply(namespace(ns))
    with pytest.raises(DynamicApiError) as e:
        apiserver.apply(virtual_service("reviews", ["reviews"], """
            - timeout: 0s
              route: [{destination: {host: reviews}}]""", namespace=ns))
    status = _status(e.value)
    assert e.value.status == 422
    # the rule `duration(self) >= duration('1ms')` on spec.http[].timeout (istio.io/api CRD)
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] \
        == [("spec.http[0].timeout", "FieldValueInvalid")]
    assert "must be a valid duration greater than 1ms" in status["message"]
    assert _absent(apiserver, "networking.istio.io/v1", "VirtualService", "reviews", ns)


def test_gateway_api_cel_rule_refuses_a_relative_path_prefix(apiserver: APIServer) -> None:
    ns = "refuse-gwapi"
    apiserver.apply(namespace(ns))
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "reviews", "namespace": ns},
             "spec": {"parentRefs": [{"name": "gw"}],
                      "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/reviews"}}],
                                 "backendRefs": [{"name": "reviews", "port": 9080}]}]}}
    apiserver.apply(route)                                     # the valid one is stored
    route["metadata"]["name"] = "relative"
    route["spec"]["rules"][0]["matches"][0]["path"]["value"] = "reviews"
    with pytest.raises(DynamicApiError) as e:
        apiserver.apply(route)
    status = _status(e.value)
    assert e.value.status == 422
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.rules[0].matches[0].path"]
    assert "must be an absolute path" in status["message"]
    assert _absent(apiserver, "gateway.networking.k8s.io/v1", "HTTPRoute", "relative", ns)


# ------------------------------------------------------------ what kube-controller-manager does

def _items(server: APIServer, api_version: str, kind: str, ns: str, **kw: Any) -> list[Any]:
    client = server.dynamic()
    return client.get(client.resources.get(api_version=api_version, kind=kind), namespace=ns, **kw).items


def test_a_deployment_gets_a_replicaset_and_pending_pods_from_the_real_controllers(apiserver: APIServer) -> None:
    ns = "cm-rollout"
    apiserver.apply(docs(namespace(ns), deployment("reviews", "v1", replicas=2, namespace=ns)))
    rs = eventually("a ReplicaSet", lambda: _items(apiserver, "apps/v1", "ReplicaSet", ns))
    assert [o.kind for o in rs[0].metadata.ownerReferences] == ["Deployment"]
    pods = eventually("two pods", lambda: [p for p in _items(apiserver, "v1", "Pod", ns)] if
                       len(_items(apiserver, "v1", "Pod", ns)) == 2 else None)
    assert {p.metadata.ownerReferences[0].name for p in pods} == {rs[0].metadata.name}
    # no scheduler, no kubelet: the pods stay Pending, unscheduled
    assert {(p.status.phase, p.spec.nodeName) for p in pods} == {("Pending", None)}
    assert {p.spec.serviceAccountName for p in pods} == {"default"}   # the ServiceAccount controller made it


def test_ready_pods_become_endpointslices_with_pod_status_written_by_the_test(apiserver: APIServer) -> None:
    ns = "cm-endpoints"
    apiserver.apply(docs(namespace(ns), deployment("reviews", "v1", replicas=2, namespace=ns),
                         service("reviews", namespace=ns)))
    with PodStatusWriter(apiserver, [ns]) as writer:
        d = eventually("the rollout", lambda: (lambda d: d if (d.status.availableReplicas or 0) == 2 else None)(
            _get(apiserver, "apps/v1", "Deployment", "reviews-v1", ns)))
        assert d.status.readyReplicas == 2 and d.status.updatedReplicas == 2
        pod_ips = {p.status.podIP for p in _items(apiserver, "v1", "Pod", ns)}
        assert len(writer.written) == 2 and len(pod_ips) == 2

        def sliced() -> set[str]:
            slices = _items(apiserver, "discovery.k8s.io/v1", "EndpointSlice", ns,
                            label_selector="kubernetes.io/service-name=reviews")
            return {a for s in slices for e in (s.endpoints or []) if e.conditions.ready for a in e.addresses}
        assert eventually("an EndpointSlice with both pods", lambda: sliced() if sliced() == pod_ips else None)


def test_a_deleted_namespace_is_emptied_and_what_a_deployment_owned_is_collected(apiserver: APIServer) -> None:
    ns = "cm-delete"
    apiserver.apply(docs(namespace(ns), deployment("reviews", "v1", namespace=ns)))
    eventually("a pod", lambda: _items(apiserver, "v1", "Pod", ns))
    client = apiserver.dynamic()
    client.delete(client.resources.get(api_version="apps/v1", kind="Deployment"), name="reviews-v1", namespace=ns)
    eventually("the garbage collector to remove the ReplicaSet and its pods",
                lambda: not _items(apiserver, "apps/v1", "ReplicaSet", ns) and not _items(apiserver, "v1", "Pod", ns))
    apiserver.apply(service("reviews", namespace=ns))
    client.delete(client.resources.get(api_version="v1", kind="Namespace"), name=ns)
    eventually("the namespace controller to empty and remove the namespace",
                lambda: _absent(apiserver, "v1", "Namespace", ns, None), timeout=90)


# ------------------------------------------------------------------------------------------- RBAC

def test_a_role_confines_a_user_to_one_namespace(apiserver: APIServer) -> None:
    user = apiserver.add_user("attendee-1")
    apiserver.apply(docs(namespace("attendee-1"), namespace("attendee-2"), f"""\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: lab, namespace: attendee-1}}
rules:
- apiGroups: ["", apps, networking.istio.io]
  resources: [services, deployments, virtualservices, destinationrules]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: lab, namespace: attendee-1}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: lab}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
"""))
    route = """
        - route: [{destination: {host: reviews}}]"""
    apiserver.apply(virtual_service("reviews", ["reviews"], route, namespace="attendee-1"), context=user)
    assert _get(apiserver, "networking.istio.io/v1", "VirtualService", "reviews", "attendee-1")

    with pytest.raises(DynamicApiError) as e:
        apiserver.apply(virtual_service("reviews", ["reviews"], route, namespace="attendee-2"), context=user)
    status = _status(e.value)
    assert e.value.status == 403 and status["reason"] == "Forbidden"
    assert f'User "{user}" cannot patch resource "virtualservices"' in status["message"]
    assert 'in the namespace "attendee-2"' in status["message"]
    assert _absent(apiserver, "networking.istio.io/v1", "VirtualService", "reviews", "attendee-2")

    client = apiserver.dynamic(user)
    for ns, allowed in (("attendee-1", True), ("attendee-2", False)):
        try:
            client.get(client.resources.get(api_version="v1", kind="Service"), namespace=ns)
            listed = True
        except DynamicApiError as e:
            assert e.status == 403
            listed = False
        assert listed is allowed, ns
    with pytest.raises(DynamicApiError) as e:                   # bob has no binding at all
        apiserver.apply(service("reviews", namespace="attendee-1"), context="bob")
    assert e.value.status == 403


# ------------------------------------------------------------------------ nothing outlives a test

_CHILD = """
import json, pathlib, sys, time
sys.path.insert(0, sys.argv[1])
from _apiserver import start
with start(pathlib.Path(sys.argv[2]), crds=False) as server:
    print(json.dumps([p.pid for p in server.processes.values()]), flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_processes_stop_with_the_server_and_die_with_a_killed_test_process(tmp_path: Path) -> None:
    build()
    with start(tmp_path / "stopped", crds=False) as server:
        pids = [p.pid for p in server.processes.values()]
        assert all(alive(p) for p in pids)
        assert server.get("/readyz")[0] == 200
    assert len(pids) == 3 and not [p for p in pids if alive(p)], "a normal end stops all three"

    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(Path(__file__).parent), str(tmp_path / "killed")],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line, f"the child did not start a server (exit {child.poll()})"
        pids = json.loads(line)
        assert len(pids) == 3 and all(alive(p) for p in pids)
    finally:
        os.killpg(child.pid, signal.SIGKILL)                   # like a test run killed from outside
        child.wait(timeout=10)
    assert survivors(pids) == [], "etcd, kube-apiserver and kube-controller-manager die with their starter"
