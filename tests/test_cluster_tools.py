"""meshlab up/down/status/doctor and the tool wrapper: command construction, version parsing from
recorded real output (tests/data/kind/README.md says where each recording's format comes from),
the versions `doctor` and `up` require, what a learner sees when a tool is missing, interruption,
and the `down` safety guard.

The command-line tools (docker, kind, istioctl, kubectl) cannot run here (no Docker engine): they
are simulated only here, in tests of meshlab's own logic — tiny scripts on a temporary PATH that
print the recorded output and log how they were called. What `up`, `down`, `status` and `doctor`
ask the cluster goes to a real API server (tests/_apiserver.py) standing in as the course cluster:
a kubeconfig whose context `kind-meshlab` reaches it; its one Node (and every pod's status) is
written by `PodStatusWriter`, as kind's kubelet would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import signal
from pathlib import Path

import pytest
import yaml

from _apiserver import NODE_NAME, APIServer, PodStatusWriter, apiserver  # noqa: F401
from meshlab import _tools, cluster
from meshlab.backends.kind import config as _kind
from meshlab.cli import commands
from meshlab.errors import MeshlabError

DATA = Path(__file__).parent / "data" / "kind"
REPO = Path(__file__).resolve().parent.parent


def rec(name: str) -> str:
    return (DATA / name).read_text()


# ------------------------------------------------------------------------------ fake tools

def make_tool(bindir: Path, name: str, cases: dict[str, tuple[str, int]], log: Path,
              run: dict[str, str] | None = None) -> None:
    """A shell script `name`: logs its argv, then for the first case whose key prefixes the
    joined argv, runs `run[key]` if given, prints that recording and exits with that status."""
    lines = ["#!/bin/sh", f'echo "{name} $*" >> "{log}"', 'args="$*"', 'case "$args" in']
    for prefix, (recording, code) in cases.items():
        out = f'cat "{DATA / recording}"' if recording else "true"
        before = f"{(run or {})[prefix]} || exit 98; " if prefix in (run or {}) else ""
        lines.append(f'  "{prefix}"*) {before}{out}; exit {code};;')
    lines += ['  *) echo "unexpected: $args" >&2; exit 99;;', "esac"]
    p = bindir / name
    p.write_text("\n".join(lines) + "\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fakebin(tmp_path, monkeypatch):
    """A PATH with only our fake tools (plus sh/cat for the scripts themselves)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for real in ("sh", "cat", "true"):
        target = shutil.which(real)
        assert target, real
        (bindir / real).symlink_to(target)
    log = tmp_path / "calls.log"
    log.touch()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))   # no cluster unless a test makes one
    return bindir, log


def install_all(bindir: Path, log: Path, *, docker_info="docker_info.json", istioctl="istioctl_version_client.txt",
                clusters="kind_get_clusters.txt", kind="kind_version.txt",
                kubectl="kubectl_version_client_136.json") -> None:
    make_tool(bindir, "docker", {"info": (docker_info, 0), "image inspect": ("", 1)}, log)
    make_tool(bindir, "kind", {"version": (kind, 0), "get clusters": (clusters, 0),
                               "delete cluster": ("kind_delete_cluster.txt", 0),
                               "create cluster": ("kind_create_cluster.txt", 0)}, log)
    make_tool(bindir, "kubectl", {"version": (kubectl, 0)}, log)
    make_tool(bindir, "istioctl", {"version": (istioctl, 0), "install": ("istioctl_install.txt", 0)}, log)


# ------------------------------------------------------------------------------ the course cluster

def _course_kubeconfig(server: APIServer, path: Path, *, url: str | None = None) -> Path:
    """A kubeconfig whose context `kind-meshlab` is the test server's admin (current: admin), or
    one whose `kind-meshlab` points at `url` (a port nothing listens on)."""
    config = yaml.safe_load(server.kubeconfig.read_text())
    admin = next(c for c in config["contexts"] if c["name"] == "admin")
    config["contexts"].append({"name": "kind-meshlab", "context": {**admin["context"], "cluster": "kind-meshlab"}})
    cluster_entry = next(c for c in config["clusters"] if c["name"] == "meshlab-tests")
    config["clusters"].append({"name": "kind-meshlab", "cluster": {**cluster_entry["cluster"],
                                                                   **({"server": url} if url else {})}})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _label_node(server: APIServer, meshlab: bool) -> None:
    """Set or remove the label kind-config.yaml gives the course cluster's node."""
    from kubernetes import client

    core = client.CoreV1Api(server.api_client())
    core.patch_node(NODE_NAME, {"metadata": {"labels": {_kind.NODE_LABEL[0]: _kind.NODE_LABEL[1] if meshlab else None}}})


ISTIO_OBJECTS = """apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: istiod, namespace: istio-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system, labels: {app: istiod, istio: pilot}}
spec:
  selector: {matchLabels: {istio: pilot}}
  template:
    metadata: {labels: {app: istiod, istio: pilot}}
    spec:
      serviceAccountName: istiod
      containers: [{name: discovery, image: "docker.io/istio/pilot:VERSION"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istio-ingressgateway, namespace: istio-system, labels: {app: istio-ingressgateway, istio: ingressgateway}}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  template:
    metadata: {labels: {app: istio-ingressgateway, istio: ingressgateway}}
    spec:
      containers: [{name: istio-proxy, image: "docker.io/istio/proxyv2:VERSION"}]
"""


def _istio(server: APIServer, version: str | None) -> None:
    """What `istioctl install` leaves that meshlab reads (istiod and the ingress gateway's
    Deployments, at `version`), or (None) none of it."""
    if version:   # and, as `istioctl install` does, wait for both rollouts
        from meshlab.backends.kind.kube import deployment_ready, wait_until

        server.apply(ISTIO_OBJECTS.replace("VERSION", version))
        deployments = server.dynamic().resources.get(api_version="apps/v1", kind="Deployment")
        for name in ("istiod", "istio-ingressgateway"):
            wait_until(lambda: deployment_ready(server.dynamic().get(deployments, name=name,
                                                                     namespace="istio-system").to_dict()),
                       timeout=60, what=name, interval=0.1)
        return
    client = server.dynamic()
    deployments = client.resources.get(api_version="apps/v1", kind="Deployment")
    for name in ("istiod", "istio-ingressgateway"):
        try:
            client.delete(deployments, name=name, namespace="istio-system")
        except Exception as e:   # noqa: BLE001 - absent already
            assert getattr(e, "status", None) == 404, e


@pytest.fixture
def course_cluster(apiserver: APIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The test API server as the course cluster `kind-meshlab` (KUBECONFIG), its node labelled as
    meshlab's, and the pods of istio-system and default reported running by `PodStatusWriter`."""
    monkeypatch.setenv("KUBECONFIG", str(_course_kubeconfig(apiserver, tmp_path / "kubeconfig")))
    apiserver.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n")
    with PodStatusWriter(apiserver, ["istio-system", "default"]):
        _label_node(apiserver, meshlab=True)
        yield apiserver


# ------------------------------------------------------------------------------ version parsing

def test_versions_parse_from_recorded_output():
    assert _tools.parse_kind_version(rec("kind_version_old.txt")) == "0.27.0"
    assert _tools.parse_kind_version(rec("kind_version.txt")) == "0.33.0"
    assert _tools.parse_istioctl_version(rec("istioctl_version_client.txt")) == "1.32.0"
    assert _tools.parse_istioctl_version("1.30.0\n") == "1.30.0"
    assert _tools.parse_kubectl_version(rec("kubectl_version_client.json")).startswith("1.32.4")
    assert _tools.parse_kubectl_version(rec("kubectl_version_client_136.json")) == "1.36.4"
    assert _tools.parse_envoy_version(rec("envoy_version.txt")) == "1.40.0"
    assert _tools.parse_kind_version("garbage") is None
    assert _tools.version_tuple("v1.30.2-distroless") == (1, 30, 2)


def test_kind_get_clusters_ignores_the_none_found_message():
    assert _kind.parse_clusters(rec("kind_get_clusters_none.txt")) == []
    assert _kind.parse_clusters(rec("kind_get_clusters.txt")) == ["kind", "meshlab"]


def test_istiod_version_from_its_image():
    d = yaml.safe_load(ISTIO_OBJECTS.replace("VERSION", "1.32.0").split("---")[2])
    assert _kind.istiod_version_from_deployment(d) == "1.32.0"
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "gcr.io/istio-release/pilot:1.29.3-distroless"
    assert _kind.istiod_version_from_deployment(d) == "1.29.3"


# ------------------------------------------------------------------------------ commands

def test_every_command_names_the_meshlab_cluster_or_context(tmp_path):
    cfg = tmp_path / "kind-config.yaml"
    assert _kind.create_cluster_cmd(cfg) == ["kind", "create", "cluster", "--name", "meshlab", "--config", str(cfg),
                                             "--wait", "180s"]
    assert _kind.delete_cluster_cmd() == ["kind", "delete", "cluster", "--name", "meshlab"]
    assert _kind.load_image_cmd("meshlab/demo:x") == ["kind", "load", "docker-image", "--name", "meshlab", "meshlab/demo:x"]
    cmd = _kind.istio_install_cmd(tmp_path / "op.yaml")
    assert cmd[:2] == ["istioctl", "install"] and cmd[cmd.index("--context") + 1] == "kind-meshlab"
    assert "-y" in cmd and cmd[cmd.index("-f") + 1] == str(tmp_path / "op.yaml")
    assert _kind.CONTEXT == "kind-meshlab"


def test_istio_operator_logs_json_with_the_local_backends_keys_and_fixed_node_ports():
    from meshlab.envoy.accesslog import ACCESS_LOG_FIELDS

    op = _kind.istio_operator()
    mesh = op["spec"]["meshConfig"]
    assert mesh["accessLogFile"] == "/dev/stdout" and mesh["accessLogEncoding"] == "JSON"
    assert json.loads(mesh["accessLogFormat"]) == ACCESS_LOG_FIELDS
    assert "request_id" in json.loads(mesh["accessLogFormat"])
    gw = op["spec"]["components"]["ingressGateways"][0]
    assert gw["name"] == "istio-ingressgateway" and gw["enabled"] is True
    svc = gw["k8s"]["service"]
    assert svc["type"] == "NodePort"
    ports = {p["name"]: p for p in svc["ports"]}
    assert ports["http2"]["port"] == 80 and ports["http2"]["nodePort"] == _kind.INGRESS_NODE_PORTS["http2"]
    # the node port the gateway gets is the one kind-config.yaml publishes on the laptop
    assert _kind.host_port_for(ports["http2"]["nodePort"]) == 18080
    assert _kind.host_port_for(ports["https"]["nodePort"]) == 18443


def test_istio_is_installed_with_the_demo_profiles_requests_read_from_istios_source():
    from _apiserver import module_dir

    if shutil.which("go") is None:
        pytest.skip("Go is not installed: Istio's source cannot be read from the module cache")
    charts = module_dir(_kind.ISTIO_SOURCE) / "manifests" / "charts"
    demo = yaml.safe_load((charts / "base" / "files" / "profile-demo.yaml").read_text())
    default = yaml.safe_load((charts / "istio-control" / "istio-discovery" / "values.yaml").read_text())
    spec = _kind.istio_operator()["spec"]
    assert spec["profile"] == "default"
    assert spec["components"]["pilot"]["k8s"]["resources"]["requests"] == demo["pilot"]["resources"]["requests"]
    assert spec["values"]["global"]["proxy"]["resources"]["requests"] == demo["global"]["proxy"]["resources"]["requests"]
    gw = spec["components"]["ingressGateways"][0]["k8s"]["resources"]["requests"]
    assert gw == demo["gateways"]["istio-ingressgateway"]["resources"]["requests"]
    # the README's table of requests: these figures, and what the default profile would have asked
    ingress = yaml.safe_load((charts / "gateways" / "istio-ingress" / "values.yaml").read_text())
    defaults = {"istiod": default["_internal_defaults_do_not_set"]["resources"]["requests"],
                "ingress gateway": ingress["_internal_defaults_do_not_set"]["gateways"]["istio-ingressgateway"]
                ["resources"]["requests"],
                "each sidecar": default["_internal_defaults_do_not_set"]["global"]["proxy"]["resources"]["requests"]}
    assert defaults["istiod"] == {"cpu": "500m", "memory": "2048Mi"}
    readme = (REPO / "README.md").read_text()
    for pod, requests in (("istiod", spec["components"]["pilot"]["k8s"]["resources"]["requests"]),
                          ("ingress gateway", gw), ("each sidecar", spec["values"]["global"]["proxy"]["resources"]["requests"])):
        was = defaults[pod]
        row = f"| {pod} | {requests['cpu']} | {requests['memory']} | {was['cpu']}, {was['memory']} |"
        assert row in readme, row


def test_default_namespace_is_labelled_for_injection_but_never_claimed():
    d = cluster.namespace_manifest("default", created_by_meshlab=False)
    assert d["metadata"]["labels"] == {"istio-injection": "enabled"}
    own = cluster.namespace_manifest("prod", created_by_meshlab=True)
    assert own["metadata"]["labels"][_kind.MANAGED_BY[0]] == "meshlab"


# ------------------------------------------------------------------------------ missing tools

def test_find_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(_tools.ToolMissing) as e:
        _tools.find("istioctl", "1.32.0")
    assert "istioctl not found on PATH" in str(e.value)
    assert "ISTIO_VERSION=1.32.0" in str(e.value)
    with pytest.raises(_tools.ToolMissing, match="kind.sigs.k8s.io"):
        _tools.run(["kind", "version"])


@pytest.mark.parametrize("command", ["doctor", "up", "down", "status"])
def test_cli_with_no_tools_prints_one_line_per_problem_and_no_traceback(tmp_path, command):
    env = {**os.environ, "PATH": str(tmp_path)}   # an empty directory: no docker, kind, kubectl, istioctl
    p = subprocess.run([sys.executable, "-m", "meshlab.cli", command], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=120)
    out = p.stdout + p.stderr
    assert "Traceback" not in out
    assert p.returncode == 1
    if command == "doctor":
        lines = [ln.strip() for ln in p.stdout.splitlines()]
        # the backend this learner uses comes first: local (Envoy from PyPI needs no PATH entry)
        assert lines[0].startswith("local backend: ready"), lines
        for tool in ("docker", "kind", "kubectl", "istioctl"):
            mine = [ln for ln in lines if ln.startswith("MISSING") and f" {tool}:" in ln]
            assert len(mine) == 1, (tool, lines)
            assert "install" in mine[0]
        assert "kind backend: needs docker, kind, kubectl, istioctl" in p.stdout
    else:
        assert len(p.stdout.strip().splitlines()) == 1, p.stdout
        assert "not found on PATH" in p.stdout


# ------------------------------------------------------------------------------ doctor

def test_doctor_all_present(fakebin, capsys):
    bindir, log = fakebin
    install_all(bindir, log)
    lines: list[str] = []
    code = commands.doctor(None, say=lines.append)
    text = "\n".join(ln.strip() for ln in lines)
    assert code == 0, text
    assert "ok       docker: engine 28.2.2, daemon reachable" in text
    assert "ok       docker memory: 7.7 GiB available to containers (Istio's figure: 8 GB)" in text
    assert "ok       docker CPUs: 8 (Istio's figure: 4)" in text
    assert "ok       kind: version 0.33.0" in text
    assert "ok       kubernetes: no cluster yet; `meshlab up` creates 1.36 (kindest/node:v1.36.4): inside 1.33–1.36" in text
    assert "ok       kubectl: version 1.36.4" in text
    assert "ok       istioctl: version 1.32.0" in text
    assert "ok       envoy: version 1.40.0" in text
    assert "kind backend: ready" in text


def test_doctor_says_first_what_the_learners_backend_needs(fakebin, monkeypatch):
    bindir, log = fakebin          # nothing installed for kind: only envoy (a Python package) is there
    lines: list[str] = []
    monkeypatch.delenv("MESHLAB_BACKEND", raising=False)
    commands.doctor(None, say=lines.append)
    assert lines[0].startswith("local backend: ready — what `Lab()` uses here"), lines
    assert lines[1].strip().startswith("ok       envoy"), lines
    kind_head = next(ln for ln in lines if ln.startswith("kind backend"))
    assert "optional, not needed for the local backend" in kind_head
    assert lines.index(kind_head) == 2, lines         # every MISSING line comes after that verdict
    lines = []
    monkeypatch.setenv("MESHLAB_BACKEND", "kind")
    commands.doctor(None, say=lines.append)
    assert lines[0].startswith("kind backend: needs") and "what `Lab()` uses here" in lines[0], lines


def test_doctor_says_what_to_change_for_each_version_and_for_a_small_docker(fakebin):
    bindir, log = fakebin
    install_all(bindir, log, docker_info="docker_info_4gib_2cpus.json", istioctl="istioctl_version_client_old.txt",
                kind="kind_version_old.txt", kubectl="kubectl_version_client.json")
    lines: list[str] = []
    assert commands.doctor(None, say=lines.append) == 1
    lines = [ln.strip() for ln in lines]
    line = {ln.split(":")[0].split(maxsplit=1)[1]: ln for ln in lines if ":" in ln and not ln.startswith(("local", "kind b"))}
    # Istio's published figure, as a warning: nothing invented below it
    assert line["docker memory"].startswith("warning  docker memory: 3.9 GiB")
    assert "Istio's figure for Docker Desktop is 8 GB of memory and 4 CPUs" in line["docker memory"]
    assert line["docker CPUs"].startswith("warning  docker CPUs: 2")
    assert line["kind"].startswith("CHANGE   kind: version 0.27.0")
    assert "kindest/node:v1.36.4@sha256:099e0493" in line["kind"] and "install kind v0.33.0" in line["kind"]
    assert f"kind v{_kind.KIND_VERSION}" in _tools.hint("kind")         # the install hint names the pinned release
    assert line["istioctl"].startswith("CHANGE   istioctl: version 1.28.0")
    assert "ISTIO_VERSION=1.32.0" in line["istioctl"]
    assert line["kubectl"].startswith("warning  kubectl: version 1.32.4")
    assert "kind-config.yaml's node image is Kubernetes 1.36" in line["kubectl"] and "1.35–1.37" in line["kubectl"]
    assert any(ln.startswith("kind backend: needs kind, istioctl") for ln in lines), lines

    install_all(bindir, log, docker_info="docker_info_no_daemon.txt")
    lines = []
    assert commands.doctor(None, say=lines.append) == 1
    dock = [ln.strip() for ln in lines if ln.strip().startswith("MISSING  docker:")]
    assert dock and "daemon is not reachable" in dock[0] and "Cannot connect to the Docker daemon" in dock[0]


@pytest.mark.parametrize("minor, verdict", [(31, "outside"), (32, "unconfirmed"), (33, "ok"), (36, "ok"),
                                            (37, "unconfirmed"), (38, "outside")])
def test_the_kubernetes_range_says_what_is_confirmed_and_what_is_not(minor, verdict):
    got, why = _kind.judge_kubernetes((1, minor))
    assert got == verdict
    assert "meshlab stands behind 1.33–1.36" in why or "inside 1.33–1.36" in why
    if verdict == "ok":
        assert "could not be read" in why            # the 1.32 row itself: never claimed as read
    assert _kind.kubernetes_of_image(_kind.node_image()) == (1, 36)


def test_doctor_reads_the_clusters_kubernetes_version_from_its_api_server(fakebin, course_cluster):
    bindir, log = fakebin
    install_all(bindir, log, kubectl="kubectl_version_client.json")
    lines: list[str] = []
    commands.doctor(None, say=lines.append)
    lines = [ln.strip() for ln in lines]
    k8s = next(ln for ln in lines if " kubernetes:" in ln)
    assert k8s.startswith("ok       kubernetes: kind cluster 'meshlab' runs v1.36.1: inside 1.33–1.36"), k8s
    kubectl = next(ln for ln in lines if " kubectl:" in ln)
    assert kubectl.startswith("warning  kubectl: version 1.32.4") and "kind cluster 'meshlab' is Kubernetes 1.36" in kubectl
    # another context, named: the same check against that cluster
    lines = []
    commands.doctor(argparse.Namespace(context="alice"), say=lines.append)
    assert any(ln.strip().startswith("ok       kubernetes: the cluster of context 'alice' runs v1.36.1") for ln in lines), lines


# ------------------------------------------------------------------------------ up preflight

def test_up_refuses_an_istioctl_or_kind_of_another_release_before_touching_anything(fakebin):
    bindir, log = fakebin
    install_all(bindir, log, istioctl="istioctl_version_client_old.txt")
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 1
    assert "istioctl 1.28.0 found; the course pins Istio 1.32.0" in lines[-1]
    install_all(bindir, log, kind="kind_version_old.txt")
    lines = []
    assert commands.up(None, say=lines.append) == 1
    assert "kind 0.27.0 found; kind-config.yaml pins the node image kindest/node:v1.36.4@sha256:" in lines[-1]
    calls = log.read_text()
    assert "kind create" not in calls and "istioctl install" not in calls


def test_up_refuses_without_a_docker_daemon(fakebin):
    bindir, log = fakebin
    install_all(bindir, log, docker_info="docker_info_no_daemon.txt")
    make_tool(bindir, "docker", {"info": ("docker_info_no_daemon.txt", 1)}, log)
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 1
    assert "Docker daemon is not reachable" in lines[-1]
    assert "kind create" not in log.read_text()


# ------------------------------------------------------------------------------ down: the guard

def test_down_deletes_only_a_cluster_whose_nodes_carry_meshlabs_label(fakebin, course_cluster, tmp_path, monkeypatch):
    bindir, log = fakebin
    install_all(bindir, log)
    _label_node(course_cluster, meshlab=False)
    lines: list[str] = []
    assert commands.down(None, say=lines.append) == 1
    assert "was not created by meshlab" in lines[-1]
    assert "kind delete" not in log.read_text()

    # an API server that does not answer: nothing is deleted either
    from _apiserver import _free_port

    monkeypatch.setenv("KUBECONFIG", str(_course_kubeconfig(course_cluster, tmp_path / "dead",
                                                            url=f"https://127.0.0.1:{_free_port()}")))
    lines = []
    assert commands.down(None, say=lines.append) == 1
    assert "cannot confirm" in lines[-1] and "kind delete cluster --name meshlab" in lines[-1]
    assert "kind delete" not in log.read_text()

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    _label_node(course_cluster, meshlab=True)
    lines = []
    assert commands.down(None, say=lines.append) == 0
    assert "kind delete cluster --name meshlab" in log.read_text()
    assert any('Deleted nodes: ["meshlab-control-plane"]' in ln for ln in lines)


def test_down_with_no_cluster_is_a_no_op(fakebin, monkeypatch):
    bindir, log = fakebin
    install_all(bindir, log, clusters="kind_get_clusters_none.txt")
    monkeypatch.setattr(cluster, "_kube", lambda *a: pytest.fail("must not talk to a cluster that does not exist"))
    lines: list[str] = []
    assert commands.down(None, say=lines.append) == 0
    assert "nothing to delete" in lines[-1]
    assert "kind delete" not in log.read_text()


# ------------------------------------------------------------------------------ context restore

@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH")
def test_kinds_context_switch_is_undone(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        clusters:
        - {name: mine, cluster: {server: "https://127.0.0.1:1"}}
        - {name: kind-meshlab, cluster: {server: "https://127.0.0.1:2"}}
        users:
        - {name: u, user: {token: t}}
        contexts:
        - {name: mine, context: {cluster: mine, user: u}}
        - {name: kind-meshlab, context: {cluster: kind-meshlab, user: u}}
        current-context: kind-meshlab
        """))   # as kind leaves it right after `kind create cluster`
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr("meshlab.backends.kind.kube.known_contexts",
                        lambda kc=None: (["mine", "kind-meshlab"], "kind-meshlab"), raising=True)
    monkeypatch.setattr(cluster, "known_contexts", lambda kc=None: (["mine", "kind-meshlab"], "kind-meshlab"))
    lines: list[str] = []
    cluster._restore_context("mine", lines.append)
    import yaml

    assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "mine"
    assert "stays 'mine'" in lines[-1]


# ------------------------------------------------------------------------------ running & interrupting

def test_run_streams_lines_and_reports_failures():
    seen: list[str] = []
    code, out = _tools.run([sys.executable, "-c", "print('one'); print('two')"], on_line=seen.append)
    assert code == 0 and seen == ["one", "two"] and out == "one\ntwo\n"
    with pytest.raises(_tools.ToolFailed) as e:
        _tools.run([sys.executable, "-c", "import sys; print('boom: no space left'); sys.exit(3)"])
    assert "exited with status 3" in str(e.value) and "boom: no space left" in str(e.value)


def test_interrupt_stops_the_child_and_says_so(tmp_path):
    # Python's own Ctrl-C handler, as in a terminal or a kernel: a test run started in the
    # background by a non-interactive shell inherits SIGINT ignored, and the signal would vanish
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_stops_the_child_and_says_so(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_stops_the_child_and_says_so(tmp_path):
    pidfile = tmp_path / "pid"
    script = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); print('started', flush=True); time.sleep(120)"
    started = threading.Event()

    def on_line(line: str) -> None:
        if line == "started":
            started.set()

    def interrupt_when_started() -> None:
        if started.wait(60):
            os.kill(os.getpid(), signal.SIGINT)   # what Ctrl-C / Jupyter's "interrupt kernel" sends

    t = threading.Thread(target=interrupt_when_started)
    t.start()
    with pytest.raises(_tools.Interrupted, match="was stopped"):
        _tools.run([sys.executable, "-c", script], on_line=on_line)
    t.join()
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_status_without_kind_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MeshlabError, match="kind not found"):
        cluster.status()


# ------------------------------------------------------------------------------ up, step by step

_FAKE_ISTIOCTL_INSTALL = """
import os, sys
sys.path.insert(0, {tests!r})
from kubernetes import config, dynamic
import yaml
client = dynamic.DynamicClient(config.new_client_from_config(os.environ["KUBECONFIG"], context="kind-meshlab"))
for doc in yaml.safe_load_all({objects!r}):
    resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    client.server_side_apply(resource, body=doc, namespace=doc["metadata"].get("namespace"),
                             field_manager="istioctl", force_conflicts=True)
"""


def _up_tools(bindir: Path, log: Path, *, clusters: str, image_exists: bool) -> None:
    """The tools `up` runs; `istioctl install` writes istiod's and the gateway's Deployments (1.32.0)
    to the API server, which is all of Istio that meshlab reads back."""
    install_all(bindir, log, clusters=clusters)
    script = bindir.parent / "istioctl_install.py"
    script.write_text(_FAKE_ISTIOCTL_INSTALL.format(tests=str(Path(__file__).parent),
                                                    objects=ISTIO_OBJECTS.replace("VERSION", "1.32.0")))
    make_tool(bindir, "istioctl", {"version": ("istioctl_version_client.txt", 0), "install": ("istioctl_install.txt", 0)},
              log, run={"install": f"{sys.executable} {script}"})
    make_tool(bindir, "docker", {"info": ("docker_info.json", 0), "image inspect": ("", 0 if image_exists else 1),
                                 "build": ("", 0)}, log)
    make_tool(bindir, "kind", {"version": ("kind_version.txt", 0), "get clusters": (clusters, 0),
                               "create cluster": ("kind_create_cluster.txt", 0),
                               "load docker-image": ("kind_load_docker_image.txt", 0)}, log)


def _default_namespace_labels(server: APIServer) -> dict[str, str]:
    client = server.dynamic()
    ns = client.get(client.resources.get(api_version="v1", kind="Namespace"), name="default")
    return dict(ns.metadata.labels or {})


def test_up_from_nothing_runs_every_step_in_order(fakebin, course_cluster):
    bindir, log = fakebin
    _up_tools(bindir, log, clusters="kind_get_clusters_none.txt", image_exists=False)
    _istio(course_cluster, None)
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 0, lines
    calls = [ln.split(" ", 2)[:2] + [ln] for ln in log.read_text().splitlines()]
    order = [c[2] for c in calls if c[1] in ("create", "install", "build", "load")]
    assert [o.split()[0] + " " + o.split()[1] for o in order] == ["kind create", "istioctl install", "docker build",
                                                                 "kind load"]
    assert f"--config {_kind.kind_config_path()}" in order[0]
    assert "--context kind-meshlab" in order[1]
    tag = order[2].split("--tag ")[1].split()[0]
    assert tag.startswith("meshlab/demo:") and order[3].endswith(f"--name meshlab {tag}")
    assert [s for s in lines if s.startswith("[")] == [
        "[1/5] kind cluster 'meshlab' (Kubernetes 1.36, the node image kind-config.yaml pins) …",
        "[2/5] Istio 1.32.0 (istiod + ingress gateway, JSON access logs, the demo profile's requests) …",
        "[3/5] demo app image (meshlab/app.py) …",
        f"[4/5] load {tag} into the cluster …",
        "[5/5] course namespaces, labelled for sidecar injection …"]
    assert any("✓ Installing CNI" in s for s in lines)            # the tool's own progress, shown as it runs
    # what up wrote through the API: the injection label on `default`, never meshlab's ownership
    labels = _default_namespace_labels(course_cluster)
    assert labels.get("istio-injection") == "enabled" and _kind.MANAGED_BY[0] not in labels
    assert lines[-1].startswith("ready: context 'kind-meshlab', ingress gateway at http://127.0.0.1:18080/")


def test_up_again_skips_what_is_done(fakebin, course_cluster):
    bindir, log = fakebin
    _up_tools(bindir, log, clusters="kind_get_clusters.txt", image_exists=True)
    _istio(course_cluster, "1.32.0")
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 0, lines
    calls = log.read_text()
    assert "kind create" not in calls and "istioctl install" not in calls and "docker build" not in calls
    assert "kind load docker-image" in calls            # kind itself skips an image already on the node
    assert any("already exists" in s for s in lines) and any("Istio 1.32.0 already installed" in s for s in lines)


def test_up_will_not_install_into_a_meshlab_cluster_it_did_not_create(fakebin, course_cluster):
    bindir, log = fakebin
    _up_tools(bindir, log, clusters="kind_get_clusters.txt", image_exists=False)
    _label_node(course_cluster, meshlab=False)
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 1
    assert "meshlab did not create" in lines[-1]
    calls = log.read_text()
    assert "istioctl install" not in calls and "docker build" not in calls and "kind load" not in calls


def test_status_reports_a_missing_cluster_and_a_running_one(fakebin, course_cluster):
    bindir, log = fakebin
    install_all(bindir, log, clusters="kind_get_clusters_none.txt")
    lines: list[str] = []
    assert commands.status(None, say=lines.append) == 1
    assert lines == ["kind cluster 'meshlab': not created (run `meshlab up`)"]

    install_all(bindir, log, clusters="kind_get_clusters.txt")
    _istio(course_cluster, "1.31.4")
    lines = []
    assert commands.status(None, say=lines.append) == 0, lines
    assert lines[0] == "kind cluster 'meshlab': exists (context kind-meshlab, created by meshlab)"
    assert "  node meshlab-control-plane: Ready" in lines
    assert "  Kubernetes: v1.36.1" in lines
    assert "  Istio: 1.31.4 (course pins 1.32.0)" in lines
    assert "  ingress gateway: ready at http://127.0.0.1:18080/" in lines
