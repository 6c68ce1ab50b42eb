"""What the course's kind cluster is: its name, context, Istio release, ports, and the exact
commands that build it.

Why plain functions returning argv lists: the commands are the contract with kind and istioctl,
so tests check them word for word without running anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ...names import INGRESS_GATEWAY, ISTIO_NAMESPACE

CLUSTER_NAME = "meshlab"
#: kind names the kubeconfig context `kind-<cluster>`; the only context meshlab mutates unasked.
CONTEXT = f"kind-{CLUSTER_NAME}"
#: The Istio release `meshlab up` installs and `meshlab doctor` asks istioctl to be: the newest
#: patch of the newest minor the Go module proxy serves (`go list -m -versions istio.io/api`: v1.32.0,
#: 2026-10-21; /work/coord/versions.md says how it was checked). Its CRDs are the ones the test API
#: server installs (tests/_apiserver.py ISTIO_API).
ISTIO_VERSION = "1.32.0"
#: The kind release whose pre-built node image kind-config.yaml pins by digest (kind's v0.33.0
#: release notes: an image is supported only with the kind release that built it).
KIND_VERSION = "0.33.0"
#: Kubernetes minors meshlab stands behind for ISTIO_VERSION. Istio's support table row for 1.32
#: could not be read (the stored copies of istio.io stop before it); what was confirmed: Istio 1.30
#: supports 1.32–1.36 (istio/istio.io#17347) and 1.31.0 was announced for 1.32–1.36, later widened to
#: 1.37. Every range the 1.32 row could give (1.32–1.36, 1.32–1.37, 1.33–1.37) contains 1.33–1.36.
K8S_STANDS_BEHIND = ((1, 33), (1, 36))
#: Minors inside some candidate range for 1.32 but not all: may be supported, not confirmed.
K8S_UNCONFIRMED = ((1, 32), (1, 37))
#: Istio's figure for Docker Desktop: "Set the resources to 8.0 GB of memory and 4 CPUs"
#: (istio.io/latest/docs/setup/platform-setup/docker/; the kind page defers to it).
ISTIO_DOCKER_MEMORY_GB, ISTIO_DOCKER_CPUS = 8, 4
#: The Istio source the figures below are read from: the newest the Go module proxy serves (the
#: 1.31 line; istio.io/istio has no tags there and no 1.32 commit is served).
ISTIO_SOURCE = "istio.io/istio@v0.0.0-20260827124520-eed52ebb66ad"
#: Resource requests `meshlab up` gives Istio's pods: the `demo` profile's figures
#: (manifests/charts/base/files/profile-demo.yaml of ISTIO_SOURCE; tests/test_cluster_tools.py
#: reads them there). The `default` profile asks 500m CPU and 2048Mi for istiod alone
#: (manifests/charts/istio-control/istio-discovery/values.yaml).
DEMO_REQUESTS = {"istiod": {"cpu": "10m", "memory": "100Mi"},
                 "proxy": {"cpu": "10m", "memory": "40Mi"},        # each sidecar (global.proxy)
                 "ingress gateway": {"cpu": "10m", "memory": "40Mi"}}
#: Marks every node of a cluster meshlab created (set in kind-config.yaml); `down` checks it.
#: Not under kubernetes.io: kubelets refuse self-set labels in that domain.
NODE_LABEL = ("meshlab.dev/created-by", "meshlab")
#: Marks every object meshlab creates in any cluster; nothing without it is ever deleted.
MANAGED_BY = ("app.kubernetes.io/managed-by", "meshlab")
#: NodePorts the ingress gateway Service gets; kind-config.yaml maps them to the laptop's loopback.
INGRESS_NODE_PORTS = {"http2": 30080, "https": 30443}
#: Namespaces the course uses; `up` creates them and labels them for sidecar injection.
COURSE_NAMESPACES = ("default",)
INJECTION_LABEL = ("istio-injection", "enabled")

_REPO_ROOT = Path(__file__).resolve().parents[3]   # meshlab/backends/kind/config.py → the checkout


def kind_config_path() -> Path:
    """kind-config.yaml at the repository root (the course is run from a checkout or Binder); with
    meshlab installed from a wheel, the one in the current directory."""
    for candidate in (_REPO_ROOT / "kind-config.yaml", Path.cwd() / "kind-config.yaml"):
        if candidate.exists():
            return candidate
    return _REPO_ROOT / "kind-config.yaml"


def read_kind_config(path: Path | None = None) -> dict[str, Any]:
    with open(path or kind_config_path()) as f:
        return yaml.safe_load(f)


def node_image(config: dict[str, Any] | None = None) -> str | None:
    """The kind node image kind-config.yaml pins (`kindest/node:v1.36.4@sha256:…`), or None."""
    cfg = config if config is not None else read_kind_config()
    images = {n.get("image") for n in cfg.get("nodes") or [] if n.get("image")}
    return images.pop() if len(images) == 1 else None


def kubernetes_of_image(image: str | None) -> tuple[int, int] | None:
    """(major, minor) of a `kindest/node:vX.Y.Z[@sha256:…]` image."""
    import re

    m = re.search(r":v(\d+)\.(\d+)\.\d+", image or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def judge_kubernetes(version: tuple[int, int]) -> tuple[str, str]:
    """("ok" | "unconfirmed" | "outside", why) for a Kubernetes (major, minor) under ISTIO_VERSION."""
    (lo, hi), (wide_lo, wide_hi) = K8S_STANDS_BEHIND, K8S_UNCONFIRMED
    span = f"{lo[0]}.{lo[1]}–{hi[0]}.{hi[1]}"
    minor = ISTIO_VERSION.rsplit(".", 1)[0]
    if lo <= version <= hi:
        return "ok", (f"inside {span}, the range meshlab stands behind for Istio {ISTIO_VERSION} (Istio's "
                      f"support-table row for {minor} could not be read; every range it could give contains {span})")
    if version in K8S_UNCONFIRMED:
        return "unconfirmed", (f"Istio {ISTIO_VERSION} may support Kubernetes {version[0]}.{version[1]}, but that "
                               f"is not confirmed (meshlab stands behind {span})")
    return "outside", (f"outside {wide_lo[0]}.{wide_lo[1]}–{wide_hi[0]}.{wide_hi[1]}, every range considered for "
                       f"Istio {minor} (meshlab stands behind {span})")


def host_port_for(node_port: int, config: dict[str, Any] | None = None) -> int | None:
    """The laptop port kind-config.yaml maps to `node_port` (None if unmapped)."""
    cfg = config if config is not None else read_kind_config()
    for node in cfg.get("nodes") or []:
        for m in node.get("extraPortMappings") or []:
            if m.get("containerPort") == node_port:
                return m.get("hostPort")
    return None


# ------------------------------------------------------------------------------------------ kind

def get_clusters_cmd() -> list[str]:
    return ["kind", "get", "clusters"]


def parse_clusters(out: str) -> list[str]:
    """Names from `kind get clusters`: one per line; kind logs `No kind clusters found.` (to
    stderr, which we merge) when there are none — that line is not a name."""
    import re

    return [ln.strip() for ln in out.splitlines() if re.fullmatch(r"[a-z0-9.-]+", ln.strip())]


def create_cluster_cmd(config: Path) -> list[str]:
    # --wait: kind returns once the control plane is Ready, so the next step can talk to it.
    return ["kind", "create", "cluster", "--name", CLUSTER_NAME, "--config", str(config), "--wait", "180s"]


def delete_cluster_cmd() -> list[str]:
    return ["kind", "delete", "cluster", "--name", CLUSTER_NAME]


def load_image_cmd(image: str) -> list[str]:
    return ["kind", "load", "docker-image", "--name", CLUSTER_NAME, image]


# -------------------------------------------------------------------------------------- istioctl

def istio_operator(access_log_fields: dict[str, str] | None = None) -> dict[str, Any]:
    """The IstioOperator overlay `istioctl install -f` gets.

    - profile `default`: istiod + the ingress gateway, labelled `istio: ingressgateway` in
      istio-system, which is what the course's Gateways select; with the `demo` profile's
      resource requests (DEMO_REQUESTS), which a laptop can hold.
    - access log to /dev/stdout as JSON, with the same keys the local backend's Envoys write
      (meshlab.envoy.accesslog), so the probe joins rows by request id the same way on both.
    - the gateway Service is a NodePort on fixed ports that kind-config.yaml maps to the laptop.
    """
    if access_log_fields is None:
        from ...envoy.accesslog import ACCESS_LOG_FIELDS

        access_log_fields = ACCESS_LOG_FIELDS
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "meshlab", "namespace": ISTIO_NAMESPACE},
        "spec": {
            "profile": "default",
            "values": {"global": {"proxy": {"resources": {"requests": dict(DEMO_REQUESTS["proxy"])}}}},
            "meshConfig": {
                "accessLogFile": "/dev/stdout",
                "accessLogEncoding": "JSON",
                "accessLogFormat": json.dumps(access_log_fields, indent=None),
            },
            "components": {
                "pilot": {"k8s": {"resources": {"requests": dict(DEMO_REQUESTS["istiod"])}}},
                "ingressGateways": [{
                    "name": INGRESS_GATEWAY,
                    "enabled": True,
                    "k8s": {
                        "resources": {"requests": dict(DEMO_REQUESTS["ingress gateway"])},
                        "service": {
                            "type": "NodePort",
                            "ports": [
                                {"name": "status-port", "port": 15021, "targetPort": 15021},
                                {"name": "http2", "port": 80, "targetPort": 8080,
                                 "nodePort": INGRESS_NODE_PORTS["http2"]},
                                {"name": "https", "port": 443, "targetPort": 8443,
                                 "nodePort": INGRESS_NODE_PORTS["https"]},
                            ],
                        },
                    },
                }],
            },
        },
    }


def istio_install_cmd(overlay: Path, context: str = CONTEXT) -> list[str]:
    return ["istioctl", "install", "--context", context, "-f", str(overlay), "-y"]


def istioctl_version_cmd() -> list[str]:
    return ["istioctl", "version", "--remote=false"]


def kind_version_cmd() -> list[str]:
    return ["kind", "version"]


def kubectl_version_cmd() -> list[str]:
    return ["kubectl", "version", "--client", "-o", "json"]


def docker_info_cmd() -> list[str]:
    # One JSON object; MemTotal is the memory the engine (the Docker Desktop VM on a Mac) can use.
    return ["docker", "info", "--format", "{{json .}}"]


def docker_build_cmd(context_dir: Path, image: str) -> list[str]:
    return ["docker", "build", "--tag", image, str(context_dir)]


def docker_image_exists_cmd(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}", image]


def istiod_version_from_deployment(deploy: dict[str, Any]) -> str | None:
    """The Istio release an istiod Deployment runs, read from its image tag (`…/pilot:1.32.0`)."""
    for c in (((deploy.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers", []):
        image = c.get("image", "")
        if "/pilot:" in image or image.startswith("pilot:"):
            return image.rsplit(":", 1)[1].split("-")[0]
    return None
