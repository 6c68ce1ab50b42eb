"""The kind/cluster backend's own logic, without a cluster: translating manifests, the context and
ownership guards, dry-run-first apply, rollout waiting on recorded API objects, joining the in-pod
prober's rows with recorded istio-proxy access logs, and reading objects back.

The API server is replaced (only here) by `FakeKube`, an in-memory stand-in with the four calls
KindBackend makes. Where something can run for real on this machine it does: the demo image's
build context runs the real app and the real in-pod prober with a bare interpreter (no
site-packages), exactly the files `docker build` would copy.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import meshlab
from meshlab.backends.kind import image as _image
from meshlab.errors import ContextError, KubeError
from meshlab.backends.kind.kube import (api_client_for, deployment_ready, pod_ready, resource_path,
                           resolve_context, wait_until)
from meshlab.probe import rows as probe_rows
from meshlab.probe.rows import PROBE_COLUMNS
from meshlab.backends.kind import ClusterBackend, KindBackend
from meshlab.backends.kind.probe import probe_command
from meshlab.backends.kind.workloads import CONTROL_PORT, client_pod, translate
from meshlab.errors import ApplyError, MeshlabError
from meshlab.manifests import load

from _fake_kube import DATA, FakeKube, rec_json

MANAGED = ("app.kubernetes.io/managed-by", "meshlab")


MANIFESTS = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata: {name: reviews, labels: {app: reviews}}
    spec:
      selector: {app: reviews}
      ports: [{name: http, port: 9080, targetPort: http}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
    spec:
      replicas: 2
      selector: {matchLabels: {app: reviews, version: v1}}
      template:
        metadata: {labels: {app: reviews, version: v1}}
        spec:
          serviceAccountName: bookinfo-reviews
          containers:
          - name: reviews
            image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.2
            ports: [{containerPort: 9080, name: http}, {containerPort: 9443}]
            env: [{name: LOG_DIR, value: /tmp/logs}]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews}
    spec:
      host: reviews
      subsets: [{name: v1, labels: {version: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http: [{route: [{destination: {host: reviews, subset: v1}}]}]
    """)


def backend(kube: FakeKube, **kw) -> KindBackend:
    kw.setdefault("settle_s", 0)
    kw.setdefault("poll_s", 0)
    kw.setdefault("log_timeout", 0)
    return KindBackend(kube=kube, image="meshlab/demo:test", **kw)


def ready_pod(name: str, ns: str = "default", labels: dict | None = None) -> dict:
    p = rec_json("pod_ready.json")
    p["metadata"].update(name=name, namespace=ns)
    if labels is not None:
        p["metadata"]["labels"] = labels
    return p


# ------------------------------------------------------------------------------ the guard

def test_context_is_kind_meshlab_unless_named_and_a_shared_cluster_must_be_named():
    assert resolve_context("kind", None) == "kind-meshlab"
    assert resolve_context("kind", "kind-other") == "kind-other"
    assert resolve_context("cluster", "workshop") == "workshop"
    with pytest.raises(ContextError, match="needs the context named explicitly"):
        resolve_context("cluster", None)
    with pytest.raises(ContextError, match="namespace"):
        KindBackend(backend="cluster", context="workshop", kube=FakeKube())


def test_the_kind_backend_changes_only_a_cluster_meshlab_created():
    """Lab(backend="kind") trusted the context name alone: any cluster behind a context called
    kind-meshlab (or one named with context=) got namespaces, Deployments and Services. It now
    checks the node label `meshlab up` sets, as `meshlab up`/`down` do, before changing anything."""
    foreign = FakeKube()
    del foreign.store[("Node", "", "meshlab-control-plane")]
    foreign.put("v1", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "prod-1", "labels": {}}})
    with pytest.raises(ContextError, match="meshlab.dev/created-by=meshlab"):
        KindBackend(kube=foreign, image="meshlab/demo:test")
    assert not [c for c in foreign.calls if c[0] in ("apply", "delete")]

    class Unreachable(FakeKube):
        def list(self, api, kind, ns, label_selector=None):
            if kind == "Node":
                raise KubeError(403, 'nodes is forbidden: User "alice" cannot list resource "nodes"')
            return super().list(api, kind, ns, label_selector)
    with pytest.raises(ContextError, match="cannot confirm"):
        KindBackend(kube=Unreachable(), image="meshlab/demo:test")
    # a shared cluster is the user's own, named on purpose: no meshlab label is expected there
    KindBackend(backend="cluster", context="workshop", namespace="alice", kube=foreign, image="x").close()
    assert KindBackend(kube=FakeKube(), image="meshlab/demo:test").name == "kind"


def _kubeconfig(tmp_path: Path, contexts: list[str], current: str) -> Path:
    kc = tmp_path / "config"
    kc.write_text(yaml_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": c, "cluster": {"server": f"https://127.0.0.1:{6443 + i}"}} for i, c in enumerate(contexts)],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in contexts],
    }))
    return kc


def yaml_dump(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d)


def test_a_client_is_bound_to_the_named_context_and_the_kubeconfig_is_only_read(tmp_path):
    kc = _kubeconfig(tmp_path, ["mine", "kind-meshlab"], current="mine")
    before = kc.read_bytes()
    client = api_client_for("kind-meshlab", str(kc))
    assert client.configuration.host == "https://127.0.0.1:6444"     # kind-meshlab's server, not the current one
    assert kc.read_bytes() == before
    with pytest.raises(ContextError, match="meshlab up"):
        api_client_for("kind-meshlab", str(_kubeconfig(tmp_path, ["mine"], current="mine")))
    with pytest.raises(ContextError, match="known: mine"):
        api_client_for("workshop", str(_kubeconfig(tmp_path, ["mine"], current="mine")), backend="cluster")


def test_rest_paths():
    assert resource_path("v1", "Service", "default", "reviews") == "/api/v1/namespaces/default/services/reviews"
    assert resource_path("v1", "Namespace", None, "prod") == "/api/v1/namespaces/prod"
    assert (resource_path("networking.istio.io/v1", "ServiceEntry", "default")
            == "/apis/networking.istio.io/v1/namespaces/default/serviceentries")
    assert resource_path("apps/v1", "Deployment", "a", "b") == "/apis/apps/v1/namespaces/a/deployments/b"
    assert resource_path("security.istio.io/v1", "AuthorizationPolicy", "a") == "/apis/security.istio.io/v1/namespaces/a/authorizationpolicies"


# ------------------------------------------------------------------------------ translation

def test_deployments_run_the_demo_app_on_the_declared_ports():
    objs = load(MANIFESTS)
    dep = next(o for o in objs if o.kind == "Deployment")
    m = translate(dep.to_manifest(), "meshlab/demo:test", lambda ns: ns or "default")
    assert m["metadata"]["labels"][MANAGED[0]] == "meshlab"
    tpl = m["spec"]["template"]
    assert tpl["metadata"]["labels"] == {"app": "reviews", "version": "v1", MANAGED[0]: "meshlab"}
    assert m["spec"]["selector"] == {"matchLabels": {"app": "reviews", "version": "v1"}}   # selector untouched
    assert "examples-bookinfo-reviews-v1" in tpl["metadata"]["annotations"]["meshlab.dev/original-images"]
    [c] = tpl["spec"]["containers"]
    assert c["name"] == "reviews" and c["image"] == "meshlab/demo:test" and c["imagePullPolicy"] == "IfNotPresent"
    assert {p["containerPort"] for p in c["ports"]} == {9080, 9443}
    assert {"containerPort": 9080, "name": "http", "protocol": "TCP"} in c["ports"]     # named targetPort still resolves
    a = c["args"]
    assert [a[i + 1] for i, x in enumerate(a) if x == "--listen"] == ["0.0.0.0:9080", "0.0.0.0:9443"]
    assert a[a.index("--version") + 1] == "v1"
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": CONTROL_PORT}
    assert tpl["spec"]["serviceAccountName"] == "bookinfo-reviews"
    envs = {e["name"] for e in c["env"]}
    assert {"POD_NAME", "POD_NAMESPACE"} <= envs and "LOG_DIR" not in envs
    assert "securityContext" not in tpl["spec"]          # all ports >= 1024: nothing special
    low = dep.to_manifest()
    low["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
    spec = translate(low, "img", lambda ns: ns)["spec"]["template"]["spec"]
    assert spec["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]


def test_the_translated_args_start_the_real_app(tmp_path):
    """The argv the pod will run, pointed at loopback, starts app.py and answers as that pod."""
    dep = next(o for o in load(MANIFESTS) if o.kind == "Deployment")
    c = translate(dep.to_manifest(), "img", lambda ns: ns)["spec"]["template"]["spec"]["containers"][0]
    ports = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s)
    p_data, p_data2, p_ctl = (s.getsockname()[1] for s in ports)
    for s in ports:
        s.close()
    args = [x.replace("0.0.0.0:9080", f"127.0.0.1:{p_data}").replace("0.0.0.0:9443", f"127.0.0.1:{p_data2}")
            .replace(f"0.0.0.0:{CONTROL_PORT}", f"127.0.0.1:{p_ctl}") for x in c["args"]]
    env = {"POD_NAME": "reviews-v1-abc12-xyz9", "POD_NAMESPACE": "default", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "meshlab.app", *args], stdout=subprocess.PIPE, env=env,
                            cwd=Path(meshlab.__file__).parent.parent)
    try:
        assert proc.stdout.readline().strip() == b"listening"
        import urllib.request

        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{p_data2}/x", timeout=10).read())
        assert (body["pod"], body["version"], body["namespace"]) == ("reviews-v1-abc12-xyz9", "v1", "default")
        assert urllib.request.urlopen(f"http://127.0.0.1:{p_ctl}/ready", timeout=10).status == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_services_and_istio_objects_only_gain_the_label_and_namespace():
    for o in load(MANIFESTS):
        if o.kind in ("Service", "VirtualService", "DestinationRule"):
            src = o.to_manifest()
            m = translate(src, "img", lambda ns: "alice")
            assert m["spec"] == src["spec"]
            assert m["metadata"]["namespace"] == "alice"
            assert m["metadata"]["labels"][MANAGED[0]] == "meshlab"


def test_a_shared_cluster_lab_keeps_to_its_namespace():
    kube = FakeKube()
    kube.put("v1", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "alice"}})
    b = ClusterBackend(context="workshop", namespace="alice", kube=kube, settle_s=0, poll_s=0, image="img")
    assert b.name == "cluster"
    svc = next(o for o in load(MANIFESTS) if o.kind == "Service")
    b.apply([svc])
    assert ("Service", "alice", "reviews") in kube.store and ("Service", "default", "reviews") not in kube.store
    other = load(MANIFESTS.replace("metadata: {name: reviews, labels: {app: reviews}}",
                                   "metadata: {name: reviews, namespace: bob, labels: {app: reviews}}"))[0]
    with pytest.raises(ApplyError, match="lives in namespace 'alice'"):
        b.apply([other])
    ns = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n")
    with pytest.raises(ApplyError, match="cannot create namespaces"):
        b.apply(ns)


# ------------------------------------------------------------------------------ apply
# Apply, delete and close against a real API server: tests/test_cluster_backend.py. Here: what only
# a kubelet reports (image pulls, stuck rollouts), from recorded objects.

def test_a_missing_demo_image_fails_at_once_with_the_fix():
    kube = FakeKube()
    kube.script[("Deployment", "default", "reviews-v1")] = [rec_json("deployment_progressing.json")]
    kube.put("v1", rec_json("pod_image_pull_backoff.json"))
    with pytest.raises(ApplyError, match=r"ImagePullBackOff.*run `meshlab up`"):
        backend(kube, timeout=3600).apply(load(MANIFESTS))


def test_a_stuck_rollout_says_why():
    kube = FakeKube()
    kube.script[("Deployment", "default", "reviews-v1")] = [rec_json("deployment_stuck.json")]
    with pytest.raises(TimeoutError, match="timed out progressing"):
        backend(kube, timeout=0).apply(load(MANIFESTS))


# ------------------------------------------------------------------------------ readiness (recorded objects)

def test_deployment_and_pod_readiness_from_recorded_objects():
    assert deployment_ready(rec_json("deployment_available.json")) == (True, "")
    assert deployment_ready(rec_json("deployment_progressing.json")) == (False, "0 of 2 updated replicas available")
    assert deployment_ready(rec_json("deployment_unobserved.json"))[1] == "waiting for the rollout to be observed"
    ok, why = deployment_ready(rec_json("deployment_replica_failure.json"))
    assert not ok and why.startswith("cannot create pods:") and 'serviceaccount "bookinfo-reviews" not found' in why
    assert pod_ready(rec_json("pod_ready.json")) == (True, "")
    assert pod_ready(rec_json("pod_not_ready.json")) == (False, "not ready")
    ok, why = pod_ready(rec_json("pod_image_pull_backoff.json"))
    assert not ok and why.startswith("container reviews: ImagePullBackOff") and "pull access denied" in why
    assert pod_ready(rec_json("pod_container_creating.json")) == (False, "phase Pending")


def test_wait_until_polls_reports_changes_and_times_out():
    answers = iter([(False, "a"), (False, "a"), (False, "b"), (True, "")])
    seen: list[str] = []
    wait_until(lambda: next(answers), timeout=100, what="x", on_wait=seen.append, sleep=lambda s: None)
    assert seen == ["x: a", "x: b"]
    clock = iter(range(0, 1000, 10))
    with pytest.raises(TimeoutError, match="x not ready after 25 s: still"):
        wait_until(lambda: (False, "still"), timeout=25, what="x", sleep=lambda s: None, clock=lambda: next(clock))


# ------------------------------------------------------------------------------ probe

def _probe_rows() -> str:
    return (DATA / "probe_pod_rows.jsonl").read_text()


def test_probe_joins_rows_with_the_sidecars_access_log():
    kube = FakeKube()
    kube.script[("Pod", "default", "meshlab-client")] = [None, ready_pod("meshlab-client")]
    kube.exec_out = [(_probe_rows(), "")]
    kube.logs_by_call = [(DATA / "istio_proxy_log_1.txt").read_text(), (DATA / "istio_proxy_log_2.txt").read_text()]
    b = backend(kube, log_timeout=0.5, poll_s=0.05)
    df = b.probe("http://reviews:9080/", n=6, seed=7)
    assert list(df.columns) == list(PROBE_COLUMNS)
    assert list(df["seq"]) == list(range(6))
    created = [c for c in kube.calls if c[0] == "apply" and c[2] == "Pod"]
    assert created and created[0][3] == "meshlab-client"
    pod = kube.store[("Pod", "default", "meshlab-client")]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"
    [ex] = [c for c in kube.calls if c[0] == "exec"]
    assert ex[1:4] == ("default", "meshlab-client", "client")
    assert ex[4][:3] == ("python", "-m", "meshlab.probe.in_pod")
    logs = [c for c in kube.calls if c[0] == "logs"]
    # polled again for the flush (seq 4 shows up in the second read; seq 5 never does, so it polls until log_timeout)
    assert len(logs) >= 2 and set(logs) == {("logs", "default", "meshlab-client", "istio-proxy")}
    first = df.iloc[0]
    assert (first["flags"], first.details, first.route) == ("-", "via_upstream", "reviews-v1")
    assert (first.cluster, first.subset, first.upstream) == ("outbound|9080|v1|reviews.default.svc.cluster.local", "v1", "10.244.0.12:9080")
    assert (first.pod, first.version, first.proxy, first.status) == ("reviews-v1-7f9c8d6b5-x2k4q", "v1", "sidecar", 200)
    assert df.iloc[4].route == "" and df.iloc[4]["flags"] == "-"          # Envoy's "-" → empty, flushed late
    last = df.iloc[5]                                                   # Envoy never logged it: nothing guessed
    assert (last["flags"], last.cluster, last.subset, last.upstream) == ("", "", "", "")


def test_probe_via_gateway_reads_the_gateways_log_and_none_reads_no_log():
    kube = FakeKube()
    kube.put("v1", ready_pod("meshlab-client-nosidecar"))
    kube.put("v1", ready_pod("istio-ingressgateway-5d8b7c9f6-abcde", "istio-system",
                             {"app": "istio-ingressgateway", "istio": "ingressgateway"}))
    kube.exec_out = [(_probe_rows(), "")]
    kube.logs_by_call = [(DATA / "istio_proxy_log_2.txt").read_text()]
    b = backend(kube)
    b._clients.add(("default", "meshlab-client-nosidecar"))
    df = b.probe("http://bookinfo.example.com/productpage", n=6, via="gateway")
    [ex] = [c for c in kube.calls if c[0] == "exec"]
    assert ex[2] == "meshlab-client-nosidecar"               # from outside the mesh, like curl -H Host:
    assert "--connect" in ex[4] and ex[4][ex[4].index("--connect") + 1] == "istio-ingressgateway.istio-system.svc.cluster.local:80"
    assert [c[1:3] for c in kube.calls if c[0] == "logs"] == [("istio-system", "istio-ingressgateway-5d8b7c9f6-abcde")]
    assert set(df.proxy) == {"gateway"} and df.iloc[0]["flags"] == "-"

    kube2 = FakeKube()
    kube2.script[("Pod", "default", "meshlab-client-nosidecar")] = [None, ready_pod("meshlab-client-nosidecar")]
    kube2.exec_out = [(_probe_rows(), "")]
    df = backend(kube2).probe("http://reviews:9080/", n=6, via="none")
    assert not [c for c in kube2.calls if c[0] == "logs"]
    assert kube2.store[("Pod", "default", "meshlab-client-nosidecar")]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert set(df["flags"]) == {""} and set(df.proxy) == {"none"} and set(df.pod) == {"reviews-v1-7f9c8d6b5-x2k4q"}


def test_join_keeps_envoys_own_503_words():
    rows = [{"seq": 0, "t": 0.0, "status": 503, "error": "", "pod": "", "version": "", "latency_ms": 1.0, "conn": 1,
             "request_id": "r-0"},
            {"seq": 1, "t": 0.1, "status": 0, "error": "dns", "pod": "", "version": "", "latency_ms": 0.0, "conn": 0,
             "request_id": ""}]
    log = probe_rows.parse_access_log(json.dumps({"request_id": "r-0", "response_code": 503, "response_flags": "NC",
                                          "response_code_details": "cluster_not_found", "route_name": None,
                                          "upstream_cluster": "outbound|9080|v3|reviews.default.svc.cluster.local",
                                          "upstream_host": None, "pod": None, "version": None}) + "\nnot json\n")
    out = [probe_rows.join(r, log.get(r["request_id"]), "sidecar") for r in rows]
    assert (out[0]["flags"], out[0]["details"], out[0]["subset"], out[0]["upstream"], out[0]["pod"]) == \
        ("NC", "cluster_not_found", "v3", "", "")
    assert out[1]["flags"] == "" and out[1]["error"] == "dns"
    assert probe_rows.unlogged(rows, {}) == ["r-0"] and probe_rows.unlogged(rows, log) == []


def test_probe_command():
    cmd = probe_command("http://reviews:9080/x?y=1", n=50, concurrency=4, keepalive=False,
                        headers={"end-user": "jason"}, via="sidecar", seed=3)
    assert cmd[:5] == ["python", "-m", "meshlab.probe.in_pod", "--url", "http://reviews:9080/x?y=1"]
    for flag, val in (("--n", "50"), ("--concurrency", "4"), ("--proxy", "sidecar"), ("--seed", "3"),
                      ("--header", "end-user: jason"), ("--timeout", "30")):
        assert cmd[cmd.index(flag) + 1] == val
    assert "--no-keepalive" in cmd and "--connect" not in cmd and "--stdin-stop" not in cmd
    bg = probe_command("http://reviews:9080/", n=None, concurrency=1, keepalive=True, headers=None, via="none",
                       seed=None, rate=200, stdin_stop=True)
    assert "--n" not in bg and bg[bg.index("--rate") + 1] == "200" and "--stdin-stop" in bg
    # the in-pod prober accepts every flag the backend builds
    from meshlab.probe import in_pod

    a = in_pod.parser().parse_args(cmd[3:])
    assert (a.n, a.concurrency, a.no_keepalive, a.header, a.seed) == (50, 4, True, [("end-user", "jason")], 3)
    a = in_pod.parser().parse_args(bg[3:])
    assert (a.n, a.rate, a.stdin_stop, a.proxy) == (None, 200.0, True, "none")


def test_background_probing_stops_the_in_pod_prober_and_keeps_every_row():
    kube = FakeKube()
    kube.put("v1", ready_pod("meshlab-client"))
    kube.exec_out = [(_probe_rows(), "")]
    kube.logs_by_call = [(DATA / "istio_proxy_log_2.txt").read_text()]
    b = backend(kube)
    with b.probing("http://reviews:9080/", rate=100) as run:
        while len(run.snapshot()) < 3:      # rows stream in while it runs
            run.wait(0.01)
        assert not run.done()
        df = run.result()
    [ex] = [c for c in kube.calls if c[0] == "exec"]
    assert ex[5] is True and "--stdin-stop" in ex[4] and "--n" not in ex[4]
    assert list(df["seq"]) == list(range(6)) and df.iloc[0]["flags"] == "-"


# ------------------------------------------------------------------------------ knobs

def test_knobs_go_to_the_apps_control_port_inside_the_pod_and_readiness_is_waited_for():
    kube = FakeKube()
    pod = ready_pod("reviews-v1-7f9c8d6b5-x2k4q")
    pod["spec"]["containers"].reverse()      # istio-proxy first, as with holdApplicationUntilProxyStarts
    kube.put("v1", pod)
    kube.exec_out = [('{"latency_ms": 0.0, "error_rate": 0.0, "error_code": 503, "ready": false, "seed": 1}\n', "")]
    kube.script[("Pod", "default", "reviews-v1-7f9c8d6b5-x2k4q")] = [pod, pod, rec_json("pod_not_ready.json")]
    backend(kube).set_pod("reviews-v1-7f9c8d6b5-x2k4q", ready=False)
    [ex] = [c for c in kube.calls if c[0] == "exec"]
    assert ex[3] == "reviews"
    cmd = ex[4]
    assert cmd[:2] == ("python", "-c") and f"http://127.0.0.1:{CONTROL_PORT}/knobs" in cmd[2]
    assert json.loads(cmd[3]) == {"ready": False}
    with pytest.raises(MeshlabError, match="no meshlab pod default/nope"):
        backend(kube).set_pod("nope", latency_ms=5)


def test_the_knob_script_works_against_the_real_app(monkeypatch):
    """The exact `python -c` the backend execs in the pod, run here against app.py's control port
    (on a free loopback port instead of 15999, which other labs on this machine may hold)."""
    import meshlab.backends.kind.backend as kind_mod

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    data_port, ctl_port = ports
    monkeypatch.setattr(kind_mod, "CONTROL_PORT", ctl_port)
    kube = FakeKube()
    kube.put("v1", ready_pod("p-0"))
    kube.exec_out = [("", "")]
    b = backend(kube)
    with pytest.raises(MeshlabError, match="control port answered"):   # the fake exec printed nothing
        b._control(kube.store[("Pod", "default", "p-0")], "POST", "/knobs", {"latency_ms": 7.5, "error_rate": 0.25})
    script = [c for c in kube.calls if c[0] == "exec"][0][4]
    assert f"http://127.0.0.1:{ctl_port}/knobs" in script[2]
    app = subprocess.Popen([sys.executable, "-m", "meshlab.app", "--name", "p-0", "--listen", f"127.0.0.1:{data_port}",
                            "--control", f"127.0.0.1:{ctl_port}"], stdout=subprocess.PIPE,
                           cwd=Path(meshlab.__file__).parent.parent)
    try:
        assert app.stdout.readline().strip() == b"listening"
        out = subprocess.run([sys.executable, *script[1:]], capture_output=True, text=True, timeout=30)
        knobs = json.loads(out.stdout)
        assert knobs["latency_ms"] == 7.5 and knobs["error_rate"] == 0.25
    finally:
        app.terminate()
        app.wait(10)


# ------------------------------------------------------------------------------ reading back

def test_objects_are_read_back_as_typed_objects_without_server_fields():
    kube = FakeKube()
    api = rec_json("api_objects.json")
    for o in api.values():
        kube.put("", o)
    kube.put("", rec_json("deployment_available.json"))
    kube.put("", rec_json("pod_ready.json"))             # made by the Deployment: not an object of its own
    objs = backend(kube).objects()
    assert sorted(o.key for o in objs) == [("", "Service", "default", "reviews"),
                                           ("apps", "Deployment", "default", "reviews-v1"),
                                           ("networking.istio.io", "VirtualService", "default", "reviews")]
    vs = next(o for o in objs if o.kind == "VirtualService")
    assert vs.spec.http[0].route[1].weight == 20 and vs.spec.http[0].route[1].destination.subset == "v2"
    assert vs.metadata.managed_fields is None and vs.metadata.uid is None
    svc = next(o for o in objs if o.kind == "Service")
    assert svc.spec.ports[0].port == 9080


def test_pods_frame():
    kube = FakeKube()
    kube.put("", rec_json("pod_ready.json"))
    kube.put("", client_pod("meshlab-client", "default", "img", True))
    df = backend(kube).pods()
    assert list(df.columns) == ["name", "namespace", "ip", "labels", "version", "ready", "phase", "node", "zone"]
    assert list(df.name) == ["reviews-v1-7f9c8d6b5-x2k4q"]
    row = df.iloc[0]
    assert (row.ip, row.version, row.ready, row.phase) == ("10.244.0.12", "v1", True, "Running")
    assert row.labels == {"app": "reviews", "version": "v1"}


def test_envoy_config_is_the_same_view_as_local_read_through_pilot_agent():
    kube = FakeKube()
    kube.put("v1", ready_pod("meshlab-client"))
    kube.exec_out = [((DATA / "config_dump.json").read_text(), ""), ('{"cluster_statuses": []}', "")]
    b = backend(kube)
    b._clients.add(("default", "meshlab-client"))
    view = b.envoy_config("sidecar")
    assert set(view) >= {"clusters", "listeners", "routes", "endpoints"}
    assert view["clusters"][0]["name"] == "outbound|9080|v1|reviews.default.svc.cluster.local"
    assert view["clusters"][0]["subset"] == "v1"
    execs = [c for c in kube.calls if c[0] == "exec"]
    assert [c[3] for c in execs] == ["istio-proxy", "istio-proxy"]
    assert [c[4] for c in execs] == [("pilot-agent", "request", "GET", "config_dump?include_eds"),
                                     ("pilot-agent", "request", "GET", "clusters?format=json")]
    kube.exec_out = [("error: connection refused", "")]
    with pytest.raises(MeshlabError, match="Envoy admin config_dump"):
        b.envoy_config("sidecar")
    kube.exec_out = [("cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_retry: 3\n"
                      "server.state: 0\nhttp.inbound.rq_time: P0(nan,1.0) P25(nan,1.1)\n", "")]
    stats = b.envoy("sidecar").stats("upstream_rq_retry|server.state")
    assert stats == {"cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_retry": 3, "server.state": 0}
    assert kube.calls[-1][4] == ("pilot-agent", "request", "GET", "stats?filter=upstream_rq_retry%7Cserver.state")


# ------------------------------------------------------------------------------ the image

def test_image_context_runs_the_app_and_the_in_pod_prober_with_a_bare_interpreter(tmp_path):
    """What `docker build` copies is self-sufficient: no site-packages (-S), no env (-E)."""
    tag = _image.write_context(tmp_path)
    assert tag.startswith("meshlab/demo:") and tag == _image.image_tag()
    assert (tmp_path / "Dockerfile").read_text().startswith("# Generated by meshlab")
    assert 'ENTRYPOINT ["python", "-m", "meshlab.app"]' in (tmp_path / "Dockerfile").read_text()
    shipped = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.py")}
    assert not {p for p in shipped if p.startswith("meshlab/backends")}, "the image needs no backend file"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bare = [sys.executable, "-S", "-E"]
    app = subprocess.Popen([*bare, "-m", "meshlab.app", "--name", "web-0", "--version", "v2",
                            "--listen", f"127.0.0.1:{port}", "--control", "off"], cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        assert app.stdout.readline().strip() == b"listening"
        out = subprocess.run([*bare, "-m", "meshlab.probe.in_pod", "--url", f"http://127.0.0.1:{port}/p", "--n", "5",
                              "--concurrency", "2", "--no-keepalive", "--header", "end-user: jason"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        rows = [json.loads(ln) for ln in out.stdout.splitlines()]
        assert sorted(r["seq"] for r in rows) == list(range(5))
        assert {(r["status"], r["pod"], r["version"]) for r in rows} == {(200, "web-0", "v2")}
        assert len({r["conn"] for r in rows}) == 5                 # a new connection per request
        assert len({r["request_id"] for r in rows}) == 5 and all(r["request_id"] for r in rows)
    finally:
        app.terminate()
        app.wait(10)


def test_the_in_pod_prober_runs_until_told_to_stop(tmp_path):
    """Background probing on kind: an open-ended paced probe that ends on `stop` from stdin."""
    _image.write_context(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bare = [sys.executable, "-S", "-E"]
    app = subprocess.Popen([*bare, "-m", "meshlab.app", "--name", "web-0", "--listen", f"127.0.0.1:{port}",
                            "--control", "off"], cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        assert app.stdout.readline().strip() == b"listening"
        prober = subprocess.Popen([*bare, "-m", "meshlab.probe.in_pod", "--url", f"http://127.0.0.1:{port}/",
                                   "--rate", "50", "--stdin-stop"], cwd=tmp_path, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        first = [json.loads(prober.stdout.readline()) for _ in range(3)]   # rows stream while it runs
        assert prober.poll() is None
        prober.stdin.write("stop\n")
        prober.stdin.flush()
        rest, _ = prober.communicate(timeout=60)
        assert prober.returncode == 0
        rows = first + [json.loads(ln) for ln in rest.splitlines()]
        assert sorted(r["seq"] for r in rows) == list(range(len(rows)))
        assert {r["status"] for r in rows} == {200}
    finally:
        app.terminate()
        app.wait(10)


def test_image_tag_changes_exactly_when_the_image_would():
    files = _image.context_files()
    assert _image.image_tag(files) == _image.image_tag(dict(files))
    changed = dict(files, **{"meshlab/app.py": files["meshlab/app.py"] + b"\n# changed\n"})
    assert _image.image_tag(changed) != _image.image_tag(files)


# ------------------------------------------------------------------------------ pod logs, over real HTTP
# What meshlab sends the API server is tested against a real one (test_cluster_backend.py); a pod's
# log comes from its kubelet, which cannot run here, so this stub answers that one path.

class _LogStub:
    """A loopback HTTP server answering `GET …/pods/NAME/log` with a recorded istio-proxy log."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[dict] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append({"method": self.command, "path": self.path,
                                      "auth": self.headers.get("authorization")})
                data = (DATA / "istio_proxy_log_1.txt").read_bytes()
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_pods_log_is_read_through_the_log_subresource(tmp_path):
    from meshlab.backends.kind.kube import Kube

    stub = _LogStub()
    try:
        kc = tmp_path / "config"
        kc.write_text(yaml_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "mine",
            "clusters": [{"name": "kind-meshlab", "cluster": {"server": f"http://127.0.0.1:{stub.port}"}},
                         {"name": "mine", "cluster": {"server": "http://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "secret-token"}}],
            "contexts": [{"name": "kind-meshlab", "context": {"cluster": "kind-meshlab", "user": "u"}},
                         {"name": "mine", "context": {"cluster": "mine", "user": "u"}}],
        }))
        kube = Kube(api_client_for("kind-meshlab", str(kc)), "kind-meshlab")
        text = kube.logs("default", "meshlab-client", "istio-proxy", since_seconds=12)
        assert "Envoy proxy is ready" in text
        assert stub.requests[-1]["path"] == "/api/v1/namespaces/default/pods/meshlab-client/log?container=istio-proxy&sinceSeconds=12"
        assert stub.requests[-1]["auth"] == "Bearer secret-token"      # the named context's user, not "mine"
    finally:
        stub.close()


def test_an_unreachable_api_server_is_one_clear_error(tmp_path):
    from meshlab.backends.kind.kube import Kube

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]        # nothing listens here once closed
    kc = _kubeconfig(tmp_path, ["kind-meshlab"], current="kind-meshlab")
    text = kc.read_text().replace("https://127.0.0.1:6443", f"http://127.0.0.1:{port}")
    kc.write_text(text)
    kube = Kube(api_client_for("kind-meshlab", str(kc)), "kind-meshlab")
    with pytest.raises(KubeError, match="cannot reach the API server of context 'kind-meshlab' \\(is Docker running"):
        kube.get("v1", "Namespace", None, "default")


# ------------------------------------------------------------------------------ exec, over a real websocket

class _ExecStub:
    """A loopback websocket server speaking the API server's exec protocol (v4.channel.k8s.io:
    binary frames whose first byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 status)."""

    def __init__(self, frames_before_stop: list[tuple[int, bytes]], frames_after_stop: list[tuple[int, bytes]],
                 wait_for_stop: bool) -> None:
        import threading

        self.before, self.after, self.wait_for_stop = frames_before_stop, frames_after_stop, wait_for_stop
        self.request_line = ""
        self.stdin = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _frame(payload: bytes, opcode: int = 2) -> bytes:
        n = len(payload)
        head = bytes([0x80 | opcode])
        head += bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big")
        return head + payload

    @staticmethod
    def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
        def exact(k: int) -> bytes:
            b = b""
            while len(b) < k:
                chunk = conn.recv(k - len(b))
                if not chunk:
                    raise ConnectionError
                b += chunk
            return b
        b0, b1 = exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(exact(2), "big")
        elif n == 127:
            n = int.from_bytes(exact(8), "big")
        mask = exact(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(exact(n)))
        return b0 & 0x0F, data

    def _serve(self) -> None:
        import base64
        import hashlib

        conn, _ = self.sock.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            lines = head.decode().split("\r\n")
            self.request_line = lines[0]
            hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            accept = base64.b64encode(hashlib.sha1((hdrs["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                                   .encode()).digest()).decode()
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
            for ch, data in self.before:
                conn.sendall(self._frame(bytes([ch]) + data))
            if self.wait_for_stop:
                while b"stop\n" not in self.stdin:
                    op, data = self._read_frame(conn)
                    if op in (1, 2) and data[:1] == b"\0":   # the python client sends stdin as text frames
                        self.stdin += data[1:]
            for ch, data in self.after:
                conn.sendall(self._frame(bytes([ch]) + data))
            conn.sendall(self._frame(b"\x03" + b'{"metadata":{},"status":"Success"}'))
            conn.sendall(self._frame(b"\x03\xe8", opcode=8))     # close, 1000
            try:
                self._read_frame(conn)
            except (ConnectionError, OSError):
                pass


def _kube_at(tmp_path: Path, port: int):
    from meshlab.backends.kind.kube import Kube

    kc = _kubeconfig(tmp_path, ["kind-meshlab"], current="kind-meshlab")
    kc.write_text(kc.read_text().replace("https://127.0.0.1:6443", f"http://127.0.0.1:{port}"))
    return Kube(api_client_for("kind-meshlab", str(kc)), "kind-meshlab")


def test_exec_streams_lines_across_frames_and_reports_stderr(tmp_path):
    rows = (DATA / "probe_pod_rows.jsonl").read_bytes()
    cut = rows.index(b"\n") + 20                      # a line split across two frames
    stub = _ExecStub([(1, rows[:cut]), (2, b"warning: something\n"), (1, rows[cut:])], [], wait_for_stop=False)
    kube = _kube_at(tmp_path, stub.port)
    seen: list[str] = []
    out, err = kube.exec("default", "meshlab-client", "client", ["python", "-m", "meshlab.probe.in_pod", "--n", "6"],
                         on_line=seen.append, timeout=30)
    stub.thread.join(10)
    assert [json.loads(s)["seq"] for s in seen] == list(range(6))
    assert out.encode() == rows and err == "warning: something\n"
    assert stub.request_line.startswith("GET /api/v1/namespaces/default/pods/meshlab-client/exec?")
    assert "command=python&command=-m&command=meshlab.probe.in_pod" in stub.request_line
    assert "container=client" in stub.request_line and "stdin=false" in stub.request_line


def test_exec_with_stop_writes_stop_to_stdin_and_reads_to_the_end(tmp_path):
    import threading

    rows = (DATA / "probe_pod_rows.jsonl").read_bytes().splitlines(keepends=True)
    stub = _ExecStub([(1, b"".join(rows[:3]))], [(1, b"".join(rows[3:]))], wait_for_stop=True)
    kube = _kube_at(tmp_path, stub.port)
    stop = threading.Event()
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if len(seen) == 3:
            stop.set()                                  # what KindProbeRun.stop() does

    out, err = kube.exec("default", "meshlab-client", "client", ["python", "-m", "meshlab.probe.in_pod", "--stdin-stop"],
                         on_line=on_line, timeout=30, stop=stop)
    stub.thread.join(10)
    assert stub.stdin == b"stop\n" and "stdin=true" in stub.request_line
    assert len(seen) == 6 and err == ""


def test_a_failed_command_surfaces_its_exit_status(tmp_path):
    stub = _ExecStub([(2, b"/usr/local/bin/python: No module named meshlab.probe.in_pod\n")], [], wait_for_stop=False)
    stub.after = []
    kube = _kube_at(tmp_path, stub.port)
    # the stub always ends with a Success status; patch it to a failure for this test
    failure = (b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
               b'error executing command [python -m meshlab.probe.in_pod], exit code 1","reason":"NonZeroExitCode",'
               b'"details":{"causes":[{"reason":"ExitCode","message":"1"}]}}')
    stub.before.append((3, failure))
    out, err = kube.exec("default", "meshlab-client", "client", ["python", "-m", "meshlab.probe.in_pod"], timeout=30)
    stub.thread.join(10)
    assert out == "" and "No module named meshlab.probe.in_pod" in err and "exit code 1" in err


def test_exec_into_a_missing_pod_is_one_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kube = _kube_at(tmp_path, port)
    with pytest.raises(KubeError, match="exec in default/meshlab-client -c client"):
        kube.exec("default", "meshlab-client", "client", ["true"], timeout=5)


def test_lab_on_kind_without_the_cluster_says_to_run_meshlab_up(tmp_path, monkeypatch):
    from meshlab.lab import Lab

    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, ["mine"], current="mine")))
    with pytest.raises(ContextError, match="meshlab up"):
        Lab(backend="kind")
    with pytest.raises(ContextError, match="context named explicitly"):
        Lab(backend="cluster", namespace="alice")
