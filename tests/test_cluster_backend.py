"""`Lab(backend="cluster")` and the kind backend's API code paths, against a real API server.

The server (tests/_apiserver.py) is a real kube-apiserver with Istio's and the Gateway API's CRDs,
RBAC on, and the real Deployment, ReplicaSet, EndpointSlice, Namespace, ServiceAccount and
garbage-collector controllers. Pods never run here (no scheduler, no kubelet, no containers):
where the backend waits for a rollout, `PodStatusWriter` reports the pods running and ready through
the API, as a kubelet would, and each such test says so in its name. The probe, pod knobs and the
proxies' Envoy config need real pods and Envoy: the `kind`-marked integration test covers them on a
machine with Docker (tests/test_kind_integration.py).

Each test works in namespaces of its own; the session's one server is shared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from _apiserver import REPO, APIServer, PodStatusWriter, apiserver, eventually  # noqa: F401
from meshlab import Lab, load
from meshlab.backends.kind.config import MANAGED_BY, NODE_LABEL
from meshlab.backends.kind.workloads import ORIGINAL_IMAGES
from meshlab.errors import ApplyError, ContextError, KubeError, ManifestError
from meshlab.objects import Source, UnmodelledObject

MANIFESTS = REPO / "notebooks" / "manifests"
#: Every chapter's manifests: the workload folder, then each file on its own (03-subsets holds two
#: versions of one VirtualService, applied one after the other, as the chapters do).
CHAPTERS = [MANIFESTS / "01-service", *sorted(p for p in MANIFESTS.rglob("*.yaml") if "01-service" not in p.parts)]
KINDS = {"Service": "v1", "Deployment": "apps/v1", "Pod": "v1", "VirtualService": "networking.istio.io/v1",
         "DestinationRule": "networking.istio.io/v1", "Gateway": "networking.istio.io/v1"}


def _lab(server: APIServer, namespace: str, *, context: str = "admin", **kw: Any) -> Lab:
    return Lab(backend="cluster", context=context, namespace=namespace, kubeconfig=str(server.kubeconfig),
               settle_s=0.0, poll_s=0.1, timeout=60, progress=lambda line: None, **kw)


def _namespace(server: APIServer, name: str) -> None:
    server.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{istio-injection: enabled}}}}\n")


def _items(server: APIServer, kind: str, ns: str, *, api_version: str | None = None, **kw: Any) -> list[Any]:
    client = server.dynamic()
    api = api_version or KINDS.get(kind) or {"ReplicaSet": "apps/v1", "EndpointSlice": "discovery.k8s.io/v1"}[kind]
    return list(client.get(client.resources.get(api_version=api, kind=kind), namespace=ns, **kw).items)


def _unchecked(path: Path) -> list[UnmodelledObject]:
    """The documents of `path` as objects meshlab's loader never checked — what reaches the API
    server when meshlab does not model a kind, built here for modelled kinds too (each keeps its
    file and line, as load() records them)."""
    out = []
    text = path.read_text()
    line = 1
    for chunk in text.split("\n---\n"):
        doc = yaml.safe_load(chunk)
        if doc:
            doc.setdefault("metadata", {}).setdefault("namespace", "default")
            obj = UnmodelledObject.model_validate(doc)
            start = line + next(i for i, ln in enumerate(chunk.splitlines()) if ln.startswith("apiVersion"))
            out.append(obj.with_source(Source(str(path), start)))
        line += chunk.count("\n") + 2
    return out


# ------------------------------------------------------------------------ every chapter's manifests

def test_every_chapters_manifests_are_applied_read_back_and_removed_with_pods_reported_running(
        apiserver: APIServer) -> None:
    ns = "lab-chapters"
    _namespace(apiserver, ns)
    expected = set()
    with PodStatusWriter(apiserver, [ns]), _lab(apiserver, ns) as lab:
        for path in CHAPTERS:
            lab.apply(path)
            expected |= {(o.kind, o.name) for o in load(path)}

        # everything is the lab's own: labelled, server-side applied by the field manager "meshlab"
        live = {kind: _items(apiserver, kind, ns) for kind in ("Service", "Deployment", "VirtualService",
                                                              "DestinationRule", "Gateway")}
        gateway_api = {kind: _items(apiserver, kind, ns, api_version="gateway.networking.k8s.io/v1")
                       for kind in ("Gateway", "HTTPRoute")}     # chapter 9 (the Gateway API's Gateway too)
        assert {(k, o.metadata.name) for objs in (live, gateway_api) for k, os in objs.items() for o in os} == expected
        for objs in live.values():
            for o in objs:
                assert o.metadata.labels[MANAGED_BY[0]] == MANAGED_BY[1], o.metadata.name
                assert ("meshlab", "Apply") in {(m.manager, m.operation) for m in o.metadata.managedFields}

        # the real controllers made ReplicaSets and pods running meshlab's demo app
        deployments = {d.metadata.name for d in live["Deployment"]}
        assert {o.metadata.ownerReferences[0].name for o in _items(apiserver, "ReplicaSet", ns)} == deployments
        # later chapters change a Deployment's template (chapter 7's env): its old pods are deleted,
        # and with no kubelet here to confirm, they stay Terminating; count the current ones
        replicas = sum(d.spec.replicas for d in live["Deployment"])
        pods = eventually("each Deployment's current pods", lambda: (lambda current: current if len(current) == replicas
                                                                      else None)(
            [p for p in _items(apiserver, "Pod", ns) if not p.metadata.deletionTimestamp]))
        assert replicas >= 3
        lab_image = lab.backend.image      # type: ignore[attr-defined]
        assert {c.image for p in pods for c in p.spec.containers} == {lab_image}
        images = {f"{c.name}={c.image}" for o in load(MANIFESTS / "01-service") if o.kind == "Deployment"
                  for c in o.spec.template.spec.containers}
        assert {p.metadata.annotations[ORIGINAL_IMAGES] for p in pods} == images     # what the manifest named

        # the EndpointSlice controller lists the ready pods behind the Service
        ips = {p.status.podIP for p in pods if p.metadata.labels.get("app") == "reviews"}
        slices = eventually("the EndpointSlices of reviews", lambda: {
            a for s in _items(apiserver, "EndpointSlice", ns, label_selector="kubernetes.io/service-name=reviews")
            for e in (s.endpoints or []) if e.conditions.ready for a in e.addresses} or None)
        assert slices == ips and len(ips) >= 2

        # read back through the lab: the learner's objects (not the pods a Deployment made)
        assert {(o.kind, o.name) for o in lab.objects()} == expected
        frame = lab.pods()
        terminating = {p.status.podIP for p in _items(apiserver, "Pod", ns) if p.metadata.deletionTimestamp}
        assert set(frame["ip"]) >= ips and set(frame["ip"]) - {p.status.podIP for p in pods} <= terminating  # as kubectl lists them
        assert frame["ready"].all() and set(frame["namespace"]) == {ns}

        lab.delete(MANIFESTS / "04-503" / "gateway.yaml")
        assert not _items(apiserver, "Gateway", ns)
        assert "reviews-gateway" not in {v.metadata.name for v in _items(apiserver, "VirtualService", ns)}
    # close(): every object the lab applied is gone; the garbage collector deletes the pods (a pod on a
    # node is deleted gracefully: it stays, marked, until its kubelet confirms — there is none here)
    for kind in ("Service", "Deployment", "VirtualService", "DestinationRule", "Gateway"):
        assert not _items(apiserver, kind, ns), kind
    eventually("the garbage collector to delete the pods",
                lambda: all(p.metadata.deletionTimestamp for p in _items(apiserver, "Pod", ns)))


def test_only_objects_meshlab_labelled_are_ever_deleted_with_pods_reported_running(apiserver: APIServer) -> None:
    ns = "lab-owned"
    _namespace(apiserver, ns)
    apiserver.apply(f"apiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: {ns}}}\n"
                    "spec: {selector: {app: old}, ports: [{port: 9080}]}\n")       # someone else's
    with PodStatusWriter(apiserver, [ns]), _lab(apiserver, ns) as lab:
        lab.apply(MANIFESTS / "01-service")
        lab.backend._ensure_client("default", sidecar=True)     # type: ignore[attr-defined]  # the probe's pod
        assert "meshlab-client" in {p.metadata.name for p in _items(apiserver, "Pod", ns)}
        svc = _items(apiserver, "Service", ns)[0]
        assert svc.spec.selector.app == "reviews"                   # updated by the apply …
        assert MANAGED_BY[0] not in (svc.metadata.labels or {})     # … but never claimed
        with pytest.raises(ApplyError, match="Service lab-owned/reviews was not created by meshlab"):
            lab.delete(MANIFESTS / "01-service" / "reviews-service.yaml")
    assert [s.metadata.name for s in _items(apiserver, "Service", ns)] == ["reviews"]   # close() left it
    assert not _items(apiserver, "Deployment", ns)                                     # and took its own
    assert all(p.metadata.deletionTimestamp for p in _items(apiserver, "Pod", ns))     # the client pod too


def test_apply_dry_runs_everything_first_then_applies_in_the_order_asked_with_pods_reported_running(
        apiserver: APIServer) -> None:
    """What the lab asked the API server, in order, read from its audit log: every object's dry run
    before the first change; `order=` applies the kinds it lists one step at a time, after the rest."""
    ns = "lab-order"
    _namespace(apiserver, ns)
    apiserver.add_user("orderly", ("system:masters",))
    since = len(apiserver.audit("orderly"))
    with PodStatusWriter(apiserver, [ns]), _lab(apiserver, ns, context="orderly") as lab:
        lab.apply([MANIFESTS / "01-service", MANIFESTS / "03-subsets" / "destinationrule-subsets.yaml",
                   MANIFESTS / "03-subsets" / "virtualservice-80-20.yaml"], order=["VirtualService", "DestinationRule"])
    patches = [(("dry" if "dryRun=All" in e["requestURI"] else "real"), e["objectRef"]["resource"])
               for e in apiserver.audit("orderly")[since:] if e["verb"] == "patch"]
    assert [r for kind, r in patches if kind == "dry"] and patches.index(next(p for p in patches if p[0] == "real")) \
        == len([p for p in patches if p[0] == "dry"])                     # all dry runs, then the changes
    real = [r for kind, r in patches if kind == "real"]
    assert real[-2:] == ["virtualservices", "destinationrules"]            # the listed kinds last, in that order
    assert set(real[:-2]) == {"services", "deployments"}
    assert all("fieldValidation=Strict" in e["requestURI"] for e in apiserver.audit("orderly")[since:]
               if e["verb"] == "patch")


def test_the_kind_backend_refuses_a_namespace_that_does_not_exist_and_changes_nothing(apiserver: APIServer,
                                                                                     tmp_path: Path) -> None:
    from kubernetes import client as k8s

    from meshlab.backends.kind import KindBackend

    path = tmp_path / "elsewhere.yaml"
    path.write_text((MANIFESTS / "01-service" / "reviews-service.yaml").read_text()
                    .replace("namespace: default", "namespace: nowhere", 1))

    kubeconfig = str(apiserver.kubeconfig)
    nodes = k8s.CoreV1Api(apiserver.api_client())
    apiserver.apply("apiVersion: v1\nkind: Node\nmetadata: {name: not-meshlabs}\n")
    try:
        with pytest.raises(ContextError, match=f"{NODE_LABEL[0]}={NODE_LABEL[1]}"):   # no node says meshlab made it
            KindBackend(context="admin", kubeconfig=kubeconfig, settle_s=0, poll_s=0.1)
        apiserver.apply(f"apiVersion: v1\nkind: Node\nmetadata: {{name: labelled-by-up, "
                        f"labels: {{{NODE_LABEL[0]}: {NODE_LABEL[1]}}}}}\n")      # what kind-config.yaml labels
        backend = KindBackend(context="admin", kubeconfig=kubeconfig, settle_s=0, poll_s=0.1)
        with pytest.raises(ApplyError, match='Service nowhere/reviews: namespaces "nowhere" not found'):
            backend.apply(load(path))
    finally:
        for name in ("not-meshlabs", "labelled-by-up"):
            nodes.delete_node(name)
    assert not [e for e in apiserver.audit("admin") if e.get("objectRef", {}).get("namespace") == "nowhere"
                and e["verb"] == "patch"]


# ------------------------------------------------------------------------------- the context guard

def test_the_context_is_never_the_current_one_unless_named_and_the_kubeconfig_is_never_written(
        apiserver: APIServer) -> None:
    before = apiserver.kubeconfig.read_bytes()
    assert yaml.safe_load(before)["current-context"] == "admin"
    kubeconfig = str(apiserver.kubeconfig)
    with pytest.raises(ContextError, match="needs the context named explicitly"):
        Lab(backend="cluster", namespace="guard", kubeconfig=kubeconfig)
    with pytest.raises(ContextError, match="no kube context 'nope'.*known: admin, alice, bob"):
        Lab(backend="cluster", context="nope", namespace="guard", kubeconfig=kubeconfig)
    with pytest.raises(ContextError, match="no kube context 'kind-meshlab'.*meshlab up"):
        Lab(backend="kind", kubeconfig=kubeconfig)      # the current context (admin) is never a fallback

    _namespace(apiserver, "guard")
    since = len(apiserver.audit("bob"))
    with _lab(apiserver, "guard", context="bob") as lab:       # bob, named: bob's rights, not the admin's
        with pytest.raises(ApplyError, match='User "bob" cannot patch resource "services"'):
            lab.apply(MANIFESTS / "01-service" / "reviews-service.yaml")
    assert [e["objectRef"]["resource"] for e in apiserver.audit("bob")[since:]] == ["services"]
    assert not _items(apiserver, "Service", "guard")
    assert apiserver.kubeconfig.read_bytes() == before


# -------------------------------------------------------------- API refusals, as the learner sees them

def test_a_field_the_api_server_refuses_is_the_same_problem_load_reports(apiserver: APIServer, tmp_path: Path) -> None:
    """The same bad file: meshlab.load refuses it (the local backend's error); passed to the cluster
    backend unchecked, the API server refuses it — and the learner reads the same file, line,
    object and field."""
    _namespace(apiserver, "refusals")
    cases = {
        # a string for an integer: server-side apply fails converting it (HTTP 500, typed patch)
        "weight.yaml": ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
                        "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n"
                        "      weight: \"80\"\n", "spec.http[0].route[0].weight", "expected numeric"),
        # an enum value the CRD schema does not list (422; its "CEL rules skipped" cause is dropped)
        "enum.yaml": ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
                      "spec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n",
                      "spec.trafficPolicy.loadBalancer.simple", 'supported values: "UNSPECIFIED"'),
        # a CEL rule of the CRD: durations of at least 1ms
        "cel.yaml": ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: cel}\n"
                     "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n"
                     "    timeout: 0s\n", "spec.http[0].timeout", "greater than 1ms"),
        # the API server's strict field validation: an unknown field
        "unknown.yaml": ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: typo}\n"
                         "spec:\n  host: reviews\n  subset:\n  - name: v1\n", "spec.subset", "unknown field"),
    }
    with _lab(apiserver, "refusals") as lab:
        for name, (text, field, words) in cases.items():
            path = tmp_path / name
            path.write_text(text)
            with pytest.raises(ManifestError) as local:
                load(path)
            mine = next(p for p in local.value.problems if p.field == field)
            with pytest.raises(ManifestError) as cluster:
                lab.backend.apply(_unchecked(path))
            theirs = cluster.value.problems
            assert [(p.file, p.line, p.object, p.field) for p in theirs] == [(mine.file, mine.line, mine.object, field)], name
            assert words in theirs[0].message and "refused by the API server" in theirs[0].message, theirs[0]
            assert "<nil>" not in str(cluster.value)
            for p in theirs:
                assert "\n" not in str(p) and "Traceback" not in str(p)
    assert not _items(apiserver, "VirtualService", "refusals") and not _items(apiserver, "DestinationRule", "refusals")


def test_a_kind_meshlab_does_not_model_is_refused_by_its_schema_and_cel_rules_naming_file_line_and_field(
        apiserver: APIServer, tmp_path: Path) -> None:
    _namespace(apiserver, "refusals-unmodelled")
    path = tmp_path / "policy.yaml"
    path.write_text("# an AuthorizationPolicy: meshlab keeps it as it is (a note), the API server checks it\n"
                    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny\n"
                    "spec:\n  selector:\n    matchLabels: {app: '*'}\n  action: DENYY\n")
    objs = load(path)
    assert [type(o) for o in objs] == [UnmodelledObject] and objs.notes
    with _lab(apiserver, "refusals-unmodelled") as lab, pytest.raises(ManifestError) as e:
        lab.apply(path)
    got = {p.field: p for p in e.value.problems}
    assert set(got) == {"spec.action"}        # the enum first; CEL rules run once the schema passes
    assert (got["spec.action"].file, got["spec.action"].line) == (str(path), 9)
    assert got["spec.action"].object == "AuthorizationPolicy default/deny"

    path.write_text(path.read_text().replace("DENYY", "DENY"))
    with _lab(apiserver, "refusals-unmodelled") as lab, pytest.raises(ManifestError) as e:
        lab.apply(path)
    [p] = e.value.problems                    # the CEL rule of the CRD
    assert (p.field, p.line) == ("spec.selector.matchLabels[app]", 8) and "wildcard not allowed" in p.message


def test_conflicts_with_the_live_cluster_are_apply_errors_naming_the_object_with_pods_reported_running(
        apiserver: APIServer, tmp_path: Path) -> None:
    ns = "conflicts"
    _namespace(apiserver, ns)
    with PodStatusWriter(apiserver, [ns]), _lab(apiserver, ns) as lab:
        lab.apply(MANIFESTS / "01-service" / "reviews-v1.yaml")
        moved = tmp_path / "reviews-v1.yaml"             # the same Deployment, another selector
        moved.write_text((MANIFESTS / "01-service" / "reviews-v1.yaml").read_text().replace("version: v1", "version: one"))
        with pytest.raises(ApplyError) as e:
            lab.apply(moved)
        text = str(e.value)
        assert f"{moved}:" in text and "Deployment default/reviews-v1" in text and "spec.selector" in text
        assert "field is immutable" in text and "delete the object first" in text

        ip = "10.96.200.7"                              # a ClusterIP another Service holds
        apiserver.apply(f"apiVersion: v1\nkind: Service\nmetadata: {{name: holder, namespace: {ns}}}\n"
                        f"spec: {{clusterIP: {ip}, ports: [{{port: 80}}]}}\n")
        taken = tmp_path / "taken.yaml"
        taken.write_text(f"apiVersion: v1\nkind: Service\nmetadata: {{name: taker}}\nspec:\n  clusterIP: {ip}\n"
                         "  ports: [{port: 80}]\n")
        with pytest.raises(ApplyError, match=f"Service default/taker.*{ip}.*already allocated"):
            lab.apply(taken)
        assert "taker" not in {s.metadata.name for s in _items(apiserver, "Service", ns)}

    # a namespace being deleted: a pod bound to a node waits for its kubelet, so it stays Terminating
    ending = "ending"
    _namespace(apiserver, ending)
    with PodStatusWriter(apiserver, [ending]), _lab(apiserver, ending) as lab:
        lab.apply(MANIFESTS / "01-service" / "reviews-v1.yaml")
        client = apiserver.dynamic()
        client.delete(client.resources.get(api_version="v1", kind="Namespace"), name=ending)
        with pytest.raises(ApplyError, match="being terminated.*wait until the namespace is gone"):
            lab.apply(MANIFESTS / "01-service" / "reviews-service.yaml")


# ------------------------------------------------------------------------------------ meshlab status

def test_meshlab_status_reads_the_cluster_with_pods_reported_running(apiserver: APIServer) -> None:
    """`meshlab status`'s API half (cluster.cluster_status) and its printing, against the server;
    the kind half (`kind get clusters`) is in test_cluster_tools.py."""
    from kubernetes import client as k8s

    from meshlab import cluster
    from meshlab.backends.kind.kube import Kube, api_client_for
    from meshlab.cli import commands

    with PodStatusWriter(apiserver, ["istio-system", "default"]):   # the Node too, as its kubelet registers it
        k8s.CoreV1Api(apiserver.api_client()).patch_node("meshlab-control-plane",
                                                           {"metadata": {"labels": {"meshlab.dev/created-by": "meshlab"}}})
        st = cluster.cluster_status(Kube(api_client_for("admin", str(apiserver.kubeconfig)), "admin"))
    assert st["nodes"] == {"meshlab-control-plane": True} and st["created_by_meshlab"] is True
    assert st["kubernetes"] == "v1.36.1"
    lines: list[str] = []
    commands.print_status({"cluster": "meshlab", "context": "kind-meshlab", "exists": True, **st}, lines.append)
    assert "  Kubernetes: v1.36.1" in lines and "  node meshlab-control-plane: Ready" in lines


# ---------------------------------------------------------------------------------- the workshop mode

def _rbac(user: str) -> list[dict[str, Any]]:
    """What `meshlab workshop-rbac --namespace USER --user USER` prints, as the organiser applies it."""
    from meshlab.cli import commands

    lines: list[str] = []
    assert commands.workshop_rbac(argparse.Namespace(namespace=user, user=user, group=None), lines.append) == 0
    return [d for d in yaml.safe_load_all("\n".join(lines)) if d]


def test_two_attendees_labs_never_see_or_touch_each_others_objects_with_pods_reported_running(
        apiserver: APIServer) -> None:
    apiserver.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n")
    attendees = ("alice", "bob")
    for user in attendees:
        apiserver.apply(_rbac(user))
    seen = {user: len(apiserver.audit(user)) for user in attendees}
    labs = {}
    with PodStatusWriter(apiserver, list(attendees)):
        for user in attendees:
            labs[user] = _lab(apiserver, user, context=user)
            labs[user].apply(MANIFESTS / "01-service")
            labs[user].apply(MANIFESTS / "03-subsets" / "destinationrule-subsets.yaml")
            labs[user].apply(MANIFESTS / "03-subsets" / "virtualservice-80-20.yaml")
        for user, other in (("alice", "bob"), ("bob", "alice")):
            lab = labs[user]
            assert {o.metadata.namespace for o in lab.objects()} == {user}
            assert set(lab.pods()["namespace"]) == {user}
            # the other attendee's namespace is out of reach, and nothing there changes
            versions = {(k, o.metadata.name): o.metadata.resourceVersion
                        for k in ("Service", "Deployment", "VirtualService") for o in _items(apiserver, k, other)}
            with _lab(apiserver, other, context=user) as intruder:
                with pytest.raises(ApplyError, match=f'User "{user}" cannot patch resource .* in the namespace "{other}"'):
                    intruder.apply(MANIFESTS / "03-subsets" / "virtualservice-80-20.yaml")
                with pytest.raises(KubeError, match=f'User "{user}" cannot list resource "services"'):
                    intruder.objects()
            assert versions == {(k, o.metadata.name): o.metadata.resourceVersion
                                for k in ("Service", "Deployment", "VirtualService") for o in _items(apiserver, k, other)}
        labs["alice"].close()
        assert not _items(apiserver, "Deployment", "alice")
        assert {d.metadata.name for d in _items(apiserver, "Deployment", "bob")} == {"reviews-v1", "reviews-v2"}
        labs["bob"].close()

    # what the attendees asked the API server: never anything cluster-scoped, never refused in their
    # own namespace; the only refusals are the intrusions above
    for user in attendees:
        events = apiserver.audit(user)[seen[user]:]
        scoped = [e for e in events if "objectRef" in e]
        assert scoped and all(e["objectRef"].get("namespace") in ("alice", "bob") for e in scoped), \
            [e["requestURI"] for e in scoped if e["objectRef"].get("namespace") not in ("alice", "bob")]
        refused = [e for e in scoped if e["responseStatus"]["code"] == 403]
        assert refused and all(e["objectRef"]["namespace"] != user for e in refused)


def test_the_workshop_template_grants_nothing_cluster_scoped_and_names_one_subject() -> None:
    docs = _rbac("carol")
    assert [(d["kind"], d["metadata"].get("namespace")) for d in docs] == [
        ("Namespace", None), ("Role", "carol"), ("RoleBinding", "carol"), ("Role", "istio-system"),
        ("RoleBinding", "istio-system")]
    assert docs[0]["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert all(d["kind"] not in ("ClusterRole", "ClusterRoleBinding") for d in docs)
    gateway_rules = docs[3]["rules"]
    assert {r for rule in gateway_rules for r in rule["resources"]} == {"pods", "pods/log"}   # no exec into the gateway
    assert [s["name"] for d in docs if d["kind"] == "RoleBinding" for s in d["subjects"]] == ["carol", "carol"]
    assert json.dumps(docs).count("*") == 0          # no wildcard verbs, resources or groups
