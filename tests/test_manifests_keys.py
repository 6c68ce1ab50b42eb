"""An object is its API group, kind, namespace and name (`K8sObject.key`), as on an API server.

Istio's `networking.istio.io` Gateway and the Gateway API's `gateway.networking.k8s.io` Gateway share
the kind `Gateway`: a learner who did chapter 2 (an Istio Gateway `web`) and then chapter 9 (a Gateway
API Gateway `web`) holds both, and each must stay itself — loaded, stored, deleted, analysed and
routed as its own object. Two versions of one group are one object, as kubectl sees them.
"""

from __future__ import annotations

import pytest

from _manifests import deployment, docs, gateway, service, virtual_service
from meshlab import Lab, analyze, load
from meshlab.objects import Gateway, KubernetesGateway, ObjectKey, UnmodelledObject
from meshlab.state import ClusterState

ISTIO_GW = gateway("web", ["istio.example.com"])
K8S_GW = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: "k8s.example.com"}]
"""
ISTIO_VS = virtual_service("istio", ["istio.example.com"], "- route: [{destination: {host: reviews-v1}}]",
                           gateways=["web"])
K8S_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: k8s, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [k8s.example.com]
  rules: [{backendRefs: [{name: reviews-v2, port: 9080}]}]
"""

# names the Istio Gateway `web`: no parent Istio's Gateway API controller takes, so attached to nothing
ISTIO_PARENT_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: istio-parent, namespace: default}
spec:
  parentRefs: [{group: networking.istio.io, kind: Gateway, name: web}]
  hostnames: [other.example.com]
  rules: [{backendRefs: [{name: reviews-v1, port: 9080}]}]
"""


def per_version_service(version: str) -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: reviews-{version}, namespace: default}}\n"
            f"spec:\n  selector: {{app: reviews, version: {version}}}\n  ports: [{{name: http, port: 9080}}]\n")


STATE = docs(deployment("reviews", "v1"), deployment("reviews", "v2"), service("reviews"),
             per_version_service("v1"), per_version_service("v2"), ISTIO_GW, K8S_GW, ISTIO_VS, K8S_ROUTE,
             ISTIO_PARENT_ROUTE)


def test_the_key_is_group_kind_namespace_name_for_every_object():
    istio_gw, k8s_gw, svc = load(docs(ISTIO_GW, K8S_GW, service("reviews")))
    assert istio_gw.key == ObjectKey("networking.istio.io", "Gateway", "default", "web")
    assert k8s_gw.key == ObjectKey("gateway.networking.k8s.io", "Gateway", "default", "web")
    assert svc.key == ("", "Service", "default", "reviews")
    assert Gateway.key_of("web") == istio_gw.key and KubernetesGateway.key_of("web") == k8s_gw.key


def test_two_versions_of_one_group_are_one_object_given_twice():
    v1beta1 = K8S_GW.replace("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1")
    objs = load(docs(K8S_GW, v1beta1, ISTIO_GW))
    assert [o.api_version for o in objs] == ["gateway.networking.k8s.io/v1beta1", "networking.istio.io/v1"]
    (w,) = objs.warnings           # the Istio Gateway of the same name is not 'given again'
    assert w.object == "Gateway default/web" and w.line == 1
    assert "given again at <string>:8 as gateway.networking.k8s.io/v1beta1 (another version" in w.message


def test_a_cluster_state_keeps_both_gateways_and_finds_and_deletes_each():
    state = ClusterState()
    state.apply(load(docs(ISTIO_GW, K8S_GW)))
    assert state.get(Gateway, "web").spec.servers[0].hosts == ["istio.example.com"]
    assert state.get(KubernetesGateway, "web").spec.listeners[0].hostname == "k8s.example.com"
    changes = state.delete(load(K8S_GW))
    assert [(c.op, c.kind, c.name) for c in changes] == [("deleted", "Gateway", "web")]
    assert state.get(KubernetesGateway, "web") is None and state.get(Gateway, "web") is not None


def test_unmodelled_kinds_of_two_groups_are_two_objects():
    ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
    a = "apiVersion: a.example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\n"
    b = "apiVersion: b.example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\n"
    objs = load(docs(ns, a, b))
    assert not objs.warnings and all(isinstance(o, UnmodelledObject) for o in objs[1:])
    state = ClusterState()
    state.apply(objs)
    assert sorted(o.api_version for o in state.all() if o.kind == "Widget") == ["a.example.com/v1", "b.example.com/v1"]
    assert objs[1].key == ("a.example.com", "Widget", "shop", "w")
    # deleting the namespace deletes both, each announced as its kind
    changes = state.delete(load(ns))
    assert sorted((c.kind, c.namespace, c.name) for c in changes) == [
        ("Namespace", "", "shop"), ("Widget", "shop", "w"), ("Widget", "shop", "w")]
    assert not [o for o in state.all() if o.kind == "Widget"]


def test_analysis_suppression_is_the_annotated_objects_own():
    """istioctl filters a message by the annotations of the very object it is about
    (pkg/config/analysis/local/istiod_analyze.go filterMessages)."""
    programmed_false = ("status:\n  conditions:\n  - {type: Programmed, status: 'False', reason: Invalid, "
                        "message: broken, lastTransitionTime: '2026-01-01T00:00:00Z'}\n")
    suppress = "metadata: {name: web, namespace: default, annotations: {galley.istio.io/analyze-suppress: IST0171}}"
    k8s_with_status = K8S_GW + programmed_false
    # the Istio Gateway's annotation does not silence the Gateway API Gateway of the same name
    istio_suppressing = ISTIO_GW.replace("metadata: {name: web}", suppress)
    assert suppress in istio_suppressing
    assert [f.code for f in analyze(docs(istio_suppressing, k8s_with_status)) if f.code == "IST0171"] == ["IST0171"]
    # its own annotation does
    k8s_suppressing = k8s_with_status.replace("metadata: {name: web, namespace: default}", suppress)
    assert suppress in k8s_suppressing
    assert [f.code for f in analyze(docs(ISTIO_GW, k8s_suppressing)) if f.code == "IST0171"] == []
    found = [f for f in analyze(docs(ISTIO_GW, k8s_with_status)) if f.code == "IST0171"]
    assert [(f.group, f.kind, f.name) for f in found] == [("gateway.networking.k8s.io", "Gateway", "web")]


def test_analysis_of_both_gateways_reports_neither_as_missing():
    found = analyze(STATE)
    assert not [f for f in found if f.level == "Error"], [str(f) for f in found]


@pytest.mark.slow
def test_a_lab_holding_both_gateways_routes_through_each():
    with Lab(seed=7) as lab:
        lab.apply(STATE)
        assert sorted(o.api_version for o in lab.objects() if o.kind == "Gateway") == [
            "gateway.networking.k8s.io/v1", "networking.istio.io/v1"]
        istio = lab.probe("http://istio.example.com/", via="gateway", n=4, seed=1)
        k8s = lab.probe("http://k8s.example.com/", via="web-istio", n=4, seed=1)
        assert istio["status"].tolist() == [200] * 4 and set(istio["version"]) == {"v1"}
        assert k8s["status"].tolist() == [200] * 4 and set(k8s["version"]) == {"v2"}
        # a route naming the Istio Gateway is not attached to the Gateway API Gateway of that name
        other = lab.probe("http://other.example.com/", via="web-istio", n=2, seed=1)
        assert other["status"].tolist() == [404, 404]
        assert lab.explain(other).codes == ["NR.no-httproute-for-host"]
        # deleting one leaves the other serving
        lab.delete(K8S_GW)
        assert [o.api_version for o in lab.objects() if o.kind == "Gateway"] == ["networking.istio.io/v1"]
        assert lab.probe("http://istio.example.com/", via="gateway", n=2, seed=1)["status"].tolist() == [200, 200]
        with pytest.raises(Exception, match="no gateway deployment 'web-istio'"):
            lab.probe("http://k8s.example.com/", via="web-istio", n=1)
