"""ClusterState derives pods, endpoints and DNS the way Kubernetes does."""

from __future__ import annotations

import itertools

import pytest

from meshlab.errors import ApplyError
from meshlab.manifests import load
from meshlab.objects import Deployment, Service, VirtualService
from meshlab.state import ClusterState

from _manifests import deployment, docs, service

APP = docs(
    deployment("web", "v1", replicas=2, port=8080, port_name="http-web", container="web"),
    deployment("web", "v2", port=9090, port_name="http-web", container="web"),
    service("web", 80, target_port="http-web"),
)


@pytest.fixture
def state() -> ClusterState:
    ips = itertools.count(1)
    s = ClusterState(pod_ip=lambda p: f"127.50.1.{next(ips)}", cluster_ip=lambda svc: "127.50.2.1")
    s.apply(load(APP))
    return s


def test_deployments_make_replicas_pods_with_template_labels(state: ClusterState) -> None:
    pods = state.pods("default")
    assert sorted(p.owner for p in pods) == ["web-v1", "web-v1", "web-v2"]
    assert all(p.name.startswith(p.owner + "-") for p in pods)
    assert {p.version for p in pods} == {"v1", "v2"}
    assert len({p.ip for p in pods}) == 3


def test_pod_names_are_stable_across_reapply(state: ClusterState) -> None:
    before = sorted(p.name for p in state.pods())
    state.apply(load(APP))
    assert sorted(p.name for p in state.pods()) == before


def test_named_target_port_resolves_per_pod(state: ClusterState) -> None:
    svc = state.get(Service, "web")
    assert svc is not None
    ports = {(e.pod.split("-")[1], e.port) for e in state.endpoints(svc, svc.spec.ports[0])}
    assert ports == {("v1", 8080), ("v2", 9090)}


def test_unready_pods_leave_the_endpoints_and_come_back(state: ClusterState) -> None:
    svc = state.get(Service, "web")
    pod = state.pods()[0]
    events = []
    state.subscribe(events.append)
    state.set_pod(pod.name, ready=False)
    assert pod.name not in {e.pod for e in state.endpoints(svc, svc.spec.ports[0])}
    assert events and events[-1][0].kind == "Pod"
    state.set_pod(pod.name, ready=True)
    assert pod.name in {e.pod for e in state.endpoints(svc, svc.spec.ports[0])}


def test_scaling_down_removes_pods(state: ClusterState) -> None:
    scaled = APP.replace("replicas: 2", "replicas: 0")
    changes = state.apply(load(scaled))
    assert [p.owner for p in state.pods()] == ["web-v2"]
    assert sum(1 for c in changes if c.kind == "Pod" and c.op == "deleted") == 2


def test_dns_search_path_depends_on_client_namespace(state: ClusterState) -> None:
    assert state.resolve_host("web", "default").name == "web"
    assert state.resolve_host("web", "other") is None
    assert state.resolve_host("web.default").name == "web"
    assert state.resolve_host("web.default.svc.cluster.local").name == "web"
    assert state.resolve_host("nope") is None


def test_unknown_namespace_is_refused_and_nothing_applied(state: ClusterState) -> None:
    before = len(state.all())
    objs = load("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec: {hosts: [web]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: prod}
spec: {ports: [{port: 80}]}
""")
    with pytest.raises(ApplyError, match='namespaces "prod" not found'):
        state.apply(objs)
    assert len(state.all()) == before


PROD_WITH_SERVICE_B = """
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: prod}
spec: {ports: [{port: 80}]}
"""


def test_namespace_in_same_apply_is_accepted_and_deleting_it_removes_contents(state: ClusterState) -> None:
    state.apply(load(PROD_WITH_SERVICE_B))
    assert state.resolve_host("b.prod").name == "b"
    state.delete(load("{apiVersion: v1, kind: Namespace, metadata: {name: prod}}"))
    assert state.resolve_host("b.prod") is None


def test_list_is_in_creation_order_and_update_keeps_it(state: ClusterState) -> None:
    vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %s}\nspec: {hosts: [web]}\n"
    state.apply(load(vs % "zz"))
    state.apply(load(vs % "aa"))
    state.apply(load(vs % "zz"))          # an update keeps the original creation time
    assert [v.name for v in state.list(VirtualService)] == ["zz", "aa"]


def test_objects_applied_together_are_equally_old_so_names_order_them(state: ClusterState) -> None:
    """istiod sorts configs by creation time, then name (one `kubectl apply` stamps them within a
    second); a manifest's own creationTimestamp is kept."""
    vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %s}\nspec: {hosts: [web]}\n"
    state.apply(load(docs(vs % "zz", vs % "mm")))
    state.apply(load(vs % "aa"))
    assert [v.name for v in state.list(VirtualService)] == ["mm", "zz", "aa"]
    old = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
           "metadata: {name: yy, creationTimestamp: '2020-05-01T00:00:00Z'}\nspec: {hosts: [web]}\n")
    state.apply(load(old))
    assert [v.name for v in state.list(VirtualService)] == ["yy", "mm", "zz", "aa"]


def test_to_objects_is_what_an_api_server_serves(state: ClusterState) -> None:
    web_v2 = next(p for p in state.pods() if p.owner == "web-v2")
    state.set_pod(web_v2.name, ready=False)
    objs = state.to_objects(ingress_gateway=("10.0.0.2", "10.0.1.2"))
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    assert "Deployment" not in by_kind, "Deployments are exported as the Pods they made"
    web = next(o for o in by_kind["Service"] if o["metadata"]["name"] == "web")
    assert web["spec"]["clusterIP"] == "127.50.2.1" and web["metadata"]["creationTimestamp"].endswith("Z")
    pods = {o["metadata"]["name"]: o for o in by_kind["Pod"]}
    assert pods[web_v2.name]["status"]["podIP"] == web_v2.ip
    assert pods[web_v2.name]["status"]["conditions"] == [{"type": "Ready", "status": "False"}]
    # one slice per resolved targetPort (web-v1 names 8080 http-web, web-v2 9090), not-ready kept as such
    slices = [o for o in by_kind["EndpointSlice"] if o["metadata"]["labels"]["kubernetes.io/service-name"] == "web"]
    ports = sorted(sl["ports"][0]["port"] for sl in slices)
    assert ports == [8080, 9090]
    v2 = next(sl for sl in slices if sl["ports"][0]["port"] == 9090)
    assert v2["endpoints"] == [{"addresses": [web_v2.ip], "conditions": {"ready": False, "serving": False,
                                                                         "terminating": False},
                                "targetRef": {"kind": "Pod", "name": web_v2.name, "namespace": "default"}}]
    gateway = next(o for o in by_kind["Service"] if o["metadata"]["name"] == "istio-ingressgateway")
    assert gateway["metadata"]["annotations"] == {"networking.istio.io/exportTo": "~"}
    assert {(p["port"], p["targetPort"]) for p in gateway["spec"]["ports"]} >= {(80, 8080), (443, 8443)}


def test_recording_replays_the_applies_in_order(state: ClusterState) -> None:
    rec = state.recording()
    assert [[o["kind"] for o in step] for step in rec["applies"]] == [["Deployment", "Deployment", "Service"]]
    again = ClusterState(pod_ip=lambda p: "127.50.1.9", cluster_ip=lambda svc: "127.50.2.9")
    for step in rec["applies"]:
        again.apply(load(step))
    assert sorted(p.name for p in again.pods()) == sorted(p.name for p in state.pods())


def test_subset_pods_filter_by_labels(state: ClusterState) -> None:
    svc = state.get(Service, "web")
    assert {p.version for p in state.subset_pods(svc, {"version": "v2"})} == {"v2"}
    assert state.subset_pods(svc, {"version": "v9"}) == []


def test_a_deleted_service_forgets_its_cluster_ip_also_with_its_namespace() -> None:
    """Deleting a Service, itself or with its namespace, drops its ClusterIP and says "deleted"
    (the local backend frees the address on that change); a new one of that name gets a new one."""
    ips = itertools.count(1)
    s = ClusterState(cluster_ip=lambda svc: f"127.50.2.{next(ips)}")
    s.apply(load(PROD_WITH_SERVICE_B))
    assert s.cluster_ip(s.get(Service, "b", "prod")) == "127.50.2.1"
    changes = s.delete(load("{apiVersion: v1, kind: Namespace, metadata: {name: prod}}"))
    assert ("deleted", "Service", "prod", "b") in {(c.op, c.kind, c.namespace, c.name) for c in changes}
    s.apply(load("{apiVersion: v1, kind: Namespace, metadata: {name: prod}}"))
    s.apply(load("{apiVersion: v1, kind: Service, metadata: {name: b, namespace: prod}, spec: {ports: [{port: 80}]}}"))
    assert s.cluster_ip(s.get(Service, "b", "prod")) == "127.50.2.2"


def test_deleting_a_service_frees_its_cluster_ip_and_a_new_one_gets_another():
    """A deleted Service's ClusterIP leaves with it (keys carry the API group since main's
    ObjectKey: the check on the key's kind must read `kind`, not the first field)."""
    ips = itertools.count(1)
    st = ClusterState(cluster_ip=lambda s: f"127.66.2.{next(ips)}")
    st.apply(load(service("web", 80)))
    web = st.get(Service, "web", "default")
    assert st.cluster_ip(web) == "127.66.2.1"
    st.delete(load(service("web", 80)))
    assert st.get(Service, "web", "default") is None and st.cluster_ip(web) is None
    st.apply(load(service("web", 80)))
    assert st.cluster_ip(st.get(Service, "web", "default")) == "127.66.2.2"


def test_a_pods_creation_time_is_its_deployments():
    """The exported Pod (what the oracle and an API server see) was created with its Deployment,
    not at the lab's epoch: looked up under the Deployment's key, API group included."""
    st = ClusterState(pod_ip=lambda p: "127.66.1.1", cluster_ip=lambda s: "127.66.2.1")
    st.apply(load(service("web", 80)))
    st.apply(load(deployment("web", "v1", replicas=1, port=8080)))
    created = st.created(st.get(Deployment, "web-v1", "default"))
    assert created > st.created(st.get(Service, "web", "default"))       # applied second, one tick later
    pods = [o for o in st.to_objects() if o["kind"] == "Pod"]
    assert pods and all(p["metadata"]["creationTimestamp"] == created.strftime("%Y-%m-%dT%H:%M:%SZ") for p in pods)
