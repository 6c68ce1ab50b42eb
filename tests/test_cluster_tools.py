"""meshlab up/down/status/doctor and the tool wrapper: command construction, version parsing from
recorded real output (tests/data/kind/README.md says where each recording's format comes from),
what a learner sees when a tool is missing, interruption, and the `down` safety guard.

Tools are simulated only here, in tests of meshlab's own logic: tiny scripts on a temporary PATH
that print the recorded output and log how they were called.
"""

from __future__ import annotations

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

from meshlab import _tools, cluster
from meshlab.backends.kind import config as _kind
from meshlab.cli import commands
from meshlab.errors import MeshlabError

DATA = Path(__file__).parent / "data" / "kind"
REPO = Path(__file__).resolve().parent.parent


def rec(name: str) -> str:
    return (DATA / name).read_text()


# ------------------------------------------------------------------------------ fake tools

def make_tool(bindir: Path, name: str, cases: dict[str, tuple[str, int]], log: Path) -> None:
    """A shell script `name`: logs its argv, then for the first case whose key prefixes the
    joined argv, prints that recording and exits with that status."""
    lines = ["#!/bin/sh", f'echo "{name} $*" >> "{log}"', 'args="$*"', 'case "$args" in']
    for prefix, (recording, code) in cases.items():
        out = f'cat "{DATA / recording}"' if recording else "true"
        lines.append(f'  "{prefix}"*) {out}; exit {code};;')
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
    return bindir, log


def install_all(bindir: Path, log: Path, *, docker_info="docker_info.json", istioctl="istioctl_version_client.txt",
                clusters="kind_get_clusters.txt") -> None:
    make_tool(bindir, "docker", {"info": (docker_info, 0), "image inspect": ("", 1)}, log)
    make_tool(bindir, "kind", {"version": ("kind_version.txt", 0), "get clusters": (clusters, 0),
                               "delete cluster": ("kind_delete_cluster.txt", 0),
                               "create cluster": ("kind_create_cluster.txt", 0)}, log)
    make_tool(bindir, "kubectl", {"version": ("kubectl_version_client.json", 0)}, log)
    make_tool(bindir, "istioctl", {"version": (istioctl, 0), "install": ("istioctl_install.txt", 0)}, log)


# ------------------------------------------------------------------------------ version parsing

def test_versions_parse_from_recorded_output():
    assert _tools.parse_kind_version(rec("kind_version.txt")) == "0.27.0"
    assert _tools.parse_istioctl_version(rec("istioctl_version_client.txt")) == "1.30.0"
    assert _tools.parse_istioctl_version("1.30.0\n") == "1.30.0"
    assert _tools.parse_kubectl_version(rec("kubectl_version_client.json")).startswith("1.32.4")
    assert _tools.parse_envoy_version(rec("envoy_version.txt")) == "1.40.0"
    assert _tools.parse_kind_version("garbage") is None
    assert _tools.version_tuple("v1.30.2-distroless") == (1, 30, 2)


def test_kind_get_clusters_ignores_the_none_found_message():
    assert _kind.parse_clusters(rec("kind_get_clusters_none.txt")) == []
    assert _kind.parse_clusters(rec("kind_get_clusters.txt")) == ["kind", "meshlab"]


def test_istiod_version_from_its_image():
    d = json.loads(rec("istiod_deployment.json"))
    assert _kind.istiod_version_from_deployment(d) == "1.30.0"
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


def test_default_namespace_is_labelled_for_injection_but_never_claimed():
    d = cluster.namespace_manifest("default", created_by_meshlab=False)
    assert d["metadata"]["labels"] == {"istio-injection": "enabled"}
    own = cluster.namespace_manifest("prod", created_by_meshlab=True)
    assert own["metadata"]["labels"][_kind.MANAGED_BY[0]] == "meshlab"


# ------------------------------------------------------------------------------ missing tools

def test_find_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(_tools.ToolMissing) as e:
        _tools.find("istioctl", "1.30.0")
    assert "istioctl not found on PATH" in str(e.value)
    assert "ISTIO_VERSION=1.30.0" in str(e.value)
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
        lines = p.stdout.splitlines()
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
    text = "\n".join(lines)
    assert code == 0, text
    assert "ok       docker: engine 28.2.2, daemon reachable" in text
    assert "ok       docker memory: 7.7 GiB" in text
    assert "ok       kind: version 0.27.0" in text
    assert "ok       istioctl: version 1.30.0" in text
    assert "ok       envoy: version 1.40.0" in text
    assert "kind backend: ready" in text


def test_doctor_low_memory_old_istioctl_and_no_daemon(fakebin):
    bindir, log = fakebin
    install_all(bindir, log, docker_info="docker_info_2gib.json", istioctl="istioctl_version_client_old.txt")
    lines: list[str] = []
    assert commands.doctor(None, say=lines.append) == 1
    mem = [ln for ln in lines if "docker memory" in ln]
    assert mem and mem[0].startswith("MISSING") and "1.9 GiB" in mem[0] and "at least 4 GiB" in mem[0]
    ist = [ln for ln in lines if "istioctl" in ln and ln.startswith("warning")]
    assert ist and "1.28.0" in ist[0] and "1.30.0" in ist[0]

    install_all(bindir, log, docker_info="docker_info_no_daemon.txt")
    lines = []
    assert commands.doctor(None, say=lines.append) == 1
    dock = [ln for ln in lines if ln.startswith("MISSING  docker:")]
    assert dock and "daemon is not reachable" in dock[0] and "Cannot connect to the Docker daemon" in dock[0]


# ------------------------------------------------------------------------------ up preflight

def test_up_refuses_an_istioctl_of_another_release_before_touching_anything(fakebin):
    bindir, log = fakebin
    install_all(bindir, log, istioctl="istioctl_version_client_old.txt")
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 1
    assert "istioctl 1.28.0 found; the course pins Istio 1.30.0" in lines[-1]
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

class _Nodes:
    def __init__(self, recording: str | None, error: Exception | None = None) -> None:
        self.items = json.loads(rec(recording))["items"] if recording else []
        self.error = error

    def list(self, api_version, kind, namespace, label_selector=None):
        if self.error:
            raise self.error
        assert kind == "Node"
        if label_selector:
            k, v = label_selector.split("=")
            return [n for n in self.items if n["metadata"]["labels"].get(k) == v]
        return self.items


def test_down_deletes_only_a_cluster_whose_nodes_carry_meshlabs_label(fakebin, monkeypatch):
    bindir, log = fakebin
    install_all(bindir, log)
    monkeypatch.setattr(cluster, "_kube", lambda *a: _Nodes("nodes_foreign.json"))
    lines: list[str] = []
    assert commands.down(None, say=lines.append) == 1
    assert "was not created by meshlab" in lines[-1]
    assert "kind delete" not in log.read_text()

    from meshlab.errors import KubeError

    monkeypatch.setattr(cluster, "_kube", lambda *a: _Nodes(None, KubeError(0, "connection refused")))
    lines = []
    assert commands.down(None, say=lines.append) == 1
    assert "cannot confirm" in lines[-1] and "kind delete cluster --name meshlab" in lines[-1]
    assert "kind delete" not in log.read_text()

    monkeypatch.setattr(cluster, "_kube", lambda *a: _Nodes("nodes_meshlab.json"))
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

class _UpKube:
    """What `up` asks the API (recorded objects); istiod appears once istioctl has run."""

    def __init__(self, log: Path, istio_installed: bool, nodes: str = "nodes_meshlab.json") -> None:
        self.log, self.applied = log, []
        self.istio_installed = istio_installed
        self.nodes = json.loads(rec(nodes))["items"]

    def _istio_now(self) -> bool:
        return self.istio_installed or "istioctl install" in self.log.read_text()

    def get(self, api, kind, ns, name):
        if kind == "Deployment" and ns == "istio-system" and self._istio_now():
            d = json.loads(rec("istiod_deployment.json"))
            d["metadata"]["name"] = name
            return d
        if kind == "Namespace":
            return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
        return None

    def list(self, api, kind, ns, label_selector=None):
        assert kind == "Node"
        k, v = label_selector.split("=")
        return [n for n in self.nodes if n["metadata"]["labels"].get(k) == v]

    def apply(self, manifest, dry_run=False):
        self.applied.append(manifest)
        return manifest


def _up_tools(bindir: Path, log: Path, *, clusters: str, image_exists: bool) -> None:
    install_all(bindir, log, clusters=clusters)
    make_tool(bindir, "docker", {"info": ("docker_info.json", 0), "image inspect": ("", 0 if image_exists else 1),
                                 "build": ("", 0)}, log)
    make_tool(bindir, "kind", {"version": ("kind_version.txt", 0), "get clusters": (clusters, 0),
                               "create cluster": ("kind_create_cluster.txt", 0),
                               "load docker-image": ("kind_load_docker_image.txt", 0)}, log)


def test_up_from_nothing_runs_every_step_in_order(fakebin, monkeypatch):
    bindir, log = fakebin
    _up_tools(bindir, log, clusters="kind_get_clusters_none.txt", image_exists=False)
    kube = _UpKube(log, istio_installed=False)
    monkeypatch.setattr(cluster, "_kube", lambda *a: kube)
    monkeypatch.setattr(cluster, "known_contexts", lambda kc=None: ([], None))
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
        "[1/5] kind cluster 'meshlab' (typically 1–2 min the first time, mostly pulling the node image) …",
        "[2/5] Istio 1.30.0 (istiod + ingress gateway, JSON access logs) (typically 1–3 min) …",
        "[3/5] demo app image (meshlab/app.py) (typically 30–60 s the first time, seconds after) …",
        f"[4/5] load {tag} into the cluster (typically 10–30 s) …",
        "[5/5] course namespaces, labelled for sidecar injection (typically a few seconds) …"]
    assert any("✓ Installing CNI" in s for s in lines)            # the tool's own progress, shown as it runs
    assert kube.applied == [cluster.namespace_manifest("default", created_by_meshlab=False)]
    assert lines[-1].startswith("ready: context 'kind-meshlab', ingress gateway at http://127.0.0.1:18080/")


def test_up_again_skips_what_is_done(fakebin, monkeypatch):
    bindir, log = fakebin
    _up_tools(bindir, log, clusters="kind_get_clusters.txt", image_exists=True)
    monkeypatch.setattr(cluster, "_kube", lambda *a: _UpKube(log, istio_installed=True))
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 0, lines
    calls = log.read_text()
    assert "kind create" not in calls and "istioctl install" not in calls and "docker build" not in calls
    assert "kind load docker-image" in calls            # kind itself skips an image already on the node
    assert any("already exists" in s for s in lines) and any("Istio 1.30.0 already installed" in s for s in lines)


def test_up_will_not_install_into_a_meshlab_cluster_it_did_not_create(fakebin, monkeypatch):
    bindir, log = fakebin
    _up_tools(bindir, log, clusters="kind_get_clusters.txt", image_exists=False)
    monkeypatch.setattr(cluster, "_kube", lambda *a: _UpKube(log, istio_installed=False, nodes="nodes_foreign.json"))
    lines: list[str] = []
    assert commands.up(None, say=lines.append) == 1
    assert "meshlab did not create" in lines[-1]
    calls = log.read_text()
    assert "istioctl install" not in calls and "docker build" not in calls and "kind load" not in calls


def test_status_reports_a_missing_cluster_and_a_running_one(fakebin, monkeypatch):
    bindir, log = fakebin
    install_all(bindir, log, clusters="kind_get_clusters_none.txt")
    lines: list[str] = []
    assert commands.status(None, say=lines.append) == 1
    assert lines == ["kind cluster 'meshlab': not created (run `meshlab up`)"]

    install_all(bindir, log, clusters="kind_get_clusters.txt")
    kube = _UpKube(log, istio_installed=True)
    kube.list = lambda api, kind, ns, label_selector=None: (
        [n for n in kube.nodes if not label_selector or n["metadata"]["labels"].get(label_selector.split("=")[0])]
        if kind == "Node" else [])
    monkeypatch.setattr(cluster, "_kube", lambda *a: kube)
    lines = []
    assert commands.status(None, say=lines.append) == 0
    assert lines[0] == "kind cluster 'meshlab': exists (context kind-meshlab, created by meshlab)"
    assert "  node meshlab-control-plane: Ready" in lines
    assert "  Istio: 1.30.0" in lines
    assert "  ingress gateway: ready at http://127.0.0.1:18080/" in lines
