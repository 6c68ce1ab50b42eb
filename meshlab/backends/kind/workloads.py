"""What a learner's manifest becomes on a real cluster, and the probe's client pod.

Why a module of its own: the translation is the one place where the kind backend departs from
"apply the same YAML" — workloads run meshlab's demo app (the same app.py as local) on the ports
the manifest declares, and everything meshlab creates is labelled as its own — so it is kept
small, pure (dict in, dict out) and tested on its own.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from ...app import KNOB_ENV
from ...names import INGRESS_GATEWAY, ISTIO_NAMESPACE, fqdn
from .config import INJECTION_LABEL, MANAGED_BY

CONTROL_PORT = 15999
CLIENT_NAME = "meshlab-client"
CLIENT_NO_SIDECAR = "meshlab-client-nosidecar"
CLIENT_LABELS = {"app": "sleep", "meshlab.dev/role": "client"}
ROLE_LABEL = "meshlab.dev/role"
ORIGINAL_IMAGES = "meshlab.dev/original-images"
#: How the ingress gateway's pods are found (Istio's default install labels them istio=ingressgateway).
GATEWAY_SELECTOR = "istio=ingressgateway"
GATEWAY_SERVICE = fqdn(INGRESS_GATEWAY, ISTIO_NAMESPACE)


def _managed(labels: dict[str, str] | None = None) -> dict[str, str]:
    return {**(labels or {}), MANAGED_BY[0]: MANAGED_BY[1]}


# ------------------------------------------------------------------------------ translation

def app_container(pod_spec: dict[str, Any], version: str, image: str) -> dict[str, Any]:
    """The pod spec with the demo app in place of the learner's containers.

    One container (named like the first one, keeping *every* declared containerPort so named
    targetPorts still resolve, and the `env` entries the app reads: `meshlab.app.KNOB_ENV`),
    listening on each port, control port for knobs, readiness from
    the app's /ready (period 1 s so a readiness knob shows in endpoints within ~2 s), as the local
    backend runs one app process per pod.
    """
    containers = pod_spec.get("containers") or []
    ports = [p for c in containers for p in (c.get("ports") or []) if p.get("protocol", "TCP") == "TCP"]
    listen = sorted({p["containerPort"] for p in ports}) or [8080]
    args = ["--version", version, "--control", f"0.0.0.0:{CONTROL_PORT}"]
    for port in listen:
        args += ["--listen", f"0.0.0.0:{port}"]
    c = {
        "name": containers[0]["name"] if containers else "app",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": ports or [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP_VERSION", "value": version},
            # the app's own configuration a manifest sets (KEEPALIVE_TIMEOUT_MS, …), as locally
            *[e for c in containers for e in (c.get("env") or []) if e.get("name") in set(KNOB_ENV.values())],
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": CONTROL_PORT},
                           "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1},
    }
    keep = {k: v for k, v in pod_spec.items()
            if k in ("serviceAccountName", "nodeSelector", "tolerations", "affinity")}
    spec = {**keep, "containers": [c], "terminationGracePeriodSeconds": 5}
    if min(listen) < 1024:
        # The image runs as a non-root user; a manifest port such as 80 needs this namespaced
        # sysctl (in Kubernetes' "safe" set since 1.22, so no admin change is needed).
        spec["securityContext"] = {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
    return spec


def _original_images(pod_spec: dict[str, Any]) -> str:
    return ",".join(f"{c.get('name')}={c.get('image', '')}" for c in pod_spec.get("containers") or [])


def translate(manifest: dict[str, Any], image: str, namespace_map: Callable[[str | None], str | None]) -> dict[str, Any]:
    """A learner's manifest → what meshlab applies: namespace mapped, meshlab's label added,
    workloads running the demo image. Istio objects and Services go unchanged otherwise."""
    m = json.loads(json.dumps(manifest))
    md = m.setdefault("metadata", {})
    for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"):
        md.pop(k, None)
    m.pop("status", None)
    md["labels"] = _managed(md.get("labels"))
    kind = m.get("kind")
    if kind == "Namespace":
        md["labels"].setdefault(*INJECTION_LABEL)
    else:
        md["namespace"] = namespace_map(md.get("namespace"))
    if kind == "Deployment":
        tpl = m["spec"]["template"]
        tmd = tpl.setdefault("metadata", {})
        tmd["labels"] = _managed(tmd.get("labels"))
        tmd["annotations"] = {**(tmd.get("annotations") or {}), ORIGINAL_IMAGES: _original_images(tpl["spec"])}
        tpl["spec"] = app_container(tpl["spec"], tmd["labels"].get("version", ""), image)
    elif kind == "Pod":
        md["annotations"] = {**(md.get("annotations") or {}), ORIGINAL_IMAGES: _original_images(m["spec"])}
        m["spec"] = app_container(m["spec"], md["labels"].get("version", ""), image)
    return m


def client_pod(name: str, namespace: str, image: str, sidecar: bool) -> dict[str, Any]:
    """The `sleep`-like client the probe runs in; the demo image carries the prober."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": _managed(CLIENT_LABELS),
                     "annotations": {"sidecar.istio.io/inject": "true" if sidecar else "false",
                                     # the prober must not start before its sidecar is up
                                     "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}'}},
        "spec": {"containers": [{"name": "client", "image": image, "imagePullPolicy": "IfNotPresent",
                                 "args": ["--name", name, "--listen", "0.0.0.0:8080", "--control", "off"]}],
                 "terminationGracePeriodSeconds": 2},
    }


def clean_for_objects(obj: dict[str, Any]) -> dict[str, Any]:
    """An object read from the API → a manifest meshlab.load accepts (server-set fields dropped)."""
    o = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in obj}
    md = o.get("metadata") or {}
    o["metadata"] = {k: md[k] for k in ("name", "namespace", "labels", "annotations") if md.get(k)}
    if o.get("kind") == "Deployment":
        tmd = o["spec"]["template"].get("metadata") or {}
        o["spec"]["template"]["metadata"] = {k: tmd[k] for k in ("labels", "annotations") if tmd.get(k)}
        o["spec"] = {k: v for k, v in o["spec"].items() if k in ("selector", "template", "replicas")}
    return o
