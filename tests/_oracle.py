"""Ask Istio's own translation (the oracle, `oracle/bin/meshlab-oracle simulate`) what istiod
generates for a state, and put it next to what meshlab's translator generates for the same state.

The state is a meshlab `ClusterState` built from manifests; the oracle gets what an API server
would serve for it (Nodes, Namespaces, Services with their ClusterIP, Pods with IP, node and
readiness, the EndpointSlices the controller writes, the Istio objects) and a proxy for the lab's
client (`sleep` in `default`, on the lab's default node). Both sides' Envoy config is brought to
one spelling (protobuf JSON's camelCase and snake_case alike become snake_case; durations become
seconds; 64-bit integers written as strings become numbers) so fields can be compared as values.

`simulate()` asks the oracle about calls through any proxy (a sidecar, the ingress gateway, a
Gateway API gateway), `crd_validate()` what the API server's own CRD validation refuses.

The binary is built with `make oracle` when Go is there; without Go the tests skip, saying why —
except in CI (`CI` set), where they must run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlab.istiod.translate import ProxyIdentity, build_config
from meshlab.manifests import load
from meshlab.objects import Service
from meshlab.state import ClusterState, locality_of

REPO = Path(__file__).resolve().parents[1]
ORACLE = Path(os.environ.get("MESHLAB_ORACLE") or REPO / "oracle" / "bin" / "meshlab-oracle")
CLIENT_IP = "10.244.255.1"


def oracle_binary() -> Path:
    """The oracle, built if Go is here and the binary is missing or older than its sources."""
    sources = [p for p in (REPO / "oracle").rglob("*.go") if "_test" not in p.name] + \
        [REPO / "oracle" / "go.mod", REPO / "oracle" / "go.sum"]
    stale = not ORACLE.exists() or max(p.stat().st_mtime for p in sources) > ORACLE.stat().st_mtime
    if stale and "MESHLAB_ORACLE" not in os.environ:
        if shutil.which("go") is None:
            message = "the oracle needs Go (oracle/README.md): `make oracle` cannot build it here"
            if os.environ.get("CI"):
                pytest.fail(message + "; in CI it must run", pytrace=False)
            pytest.skip(message)
        subprocess.run(["make", "oracle"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return ORACLE


def lab_state(manifests: str | list[Any]) -> ClusterState:
    """A ClusterState with loopback-free, fixed addresses (what the oracle's state says too)."""
    pods = iter(range(10, 250))
    vips = iter(range(10, 250))
    st = ClusterState(pod_ip=lambda pod: f"10.244.0.{next(pods)}", cluster_ip=lambda svc: f"10.96.0.{next(vips)}")
    st.apply(load(manifests))
    return st


def api_objects(st: ClusterState) -> list[dict[str, Any]]:
    """What an API server holds for `st`: nodes, the client pod, Services, Pods, EndpointSlices,
    Istio objects."""
    out: list[dict[str, Any]] = []
    for n in st.nodes():
        out.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n.name, "labels": dict(n.labels)}})
    client_node = st.default_node
    out.append({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "sleep", "namespace": "default", "labels": {"app": "sleep"}},
                "spec": {"nodeName": client_node.name if client_node else "", "containers": [{"name": "c", "image": "x"}]},
                "status": {"podIP": CLIENT_IP, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    for o in st.all():
        m = o.to_manifest()
        if o.kind in ("Deployment", "Pod"):
            continue
        m.pop("status", None)          # what istiod writes (Gateway API conditions), never an input
        if isinstance(o, Service):
            m.setdefault("spec", {})["clusterIP"] = st.cluster_ip(o) or "None"
        m.get("metadata", {}).pop("creationTimestamp", None)
        out.append(m)
    for p in st.pods():
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": p.name, "namespace": p.namespace, "labels": dict(p.labels)},
                    "spec": {**({"nodeName": p.node} if p.node else {}), "containers": [{"name": "c", "image": "x"}]},
                    "status": {"podIP": p.ip or "", "phase": p.phase,
                               "conditions": [{"type": "Ready", "status": "True" if p.ready else "False"}]}})
    for svc in st.services():
        if not svc.spec.selector:
            continue
        for port in svc.spec.ports:
            eps = st.endpoints(svc, port, include_unready=True)
            out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": f"{svc.name}-{port.port}", "namespace": svc.namespace or "default",
                                     "labels": {"kubernetes.io/service-name": svc.name}},
                        "addressType": "IPv4",
                        "ports": [{"name": port.name or "", "port": eps[0].port if eps else port.port, "protocol": "TCP"}],
                        "endpoints": [{"addresses": [e.ip], "conditions": {"ready": e.ready},
                                       **({"nodeName": e.node} if e.node else {}),
                                       "targetRef": {"kind": "Pod", "name": e.pod, "namespace": e.namespace}}
                                      for e in eps if e.ip]})
    return out


def oracle_config(st: ClusterState) -> dict[str, Any]:
    """istiod's generated clusters, routes and endpoints for the client `sleep` (normalised)."""
    req = {"objects": yaml.safe_dump_all(api_objects(st), sort_keys=False),
           "proxies": [{"id": "sleep", "pod": "default/sleep"}], "calls": [],
           "config": ["clusters", "routes", "endpoints"]}
    r = subprocess.run([str(oracle_binary()), "simulate"], input=json.dumps(req), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cfg = normalise(json.loads(r.stdout)["config"]["sleep"])
    return {"clusters": {c["name"]: c for c in cfg["clusters"]},
            "endpoints": {e["cluster_name"]: e for e in cfg["endpoints"]},
            "routes": {rc["name"]: rc for rc in cfg["routes"]}}


def meshlab_config(st: ClusterState) -> dict[str, Any]:
    """meshlab's translation for the same client (its locality: the default node's)."""
    node = st.default_node
    ident = ProxyIdentity(kind="sidecar", namespace="default", labels={"app": "sleep"}, ip="127.0.0.9",
                          name="sleep", node=node.name if node else "", locality=locality_of({}, node))
    cfg = build_config(st, ident)
    return {"clusters": {c["name"]: normalise(c) for c in cfg.clusters},
            "endpoints": {k: normalise(v) for k, v in cfg.endpoints.items()},
            "routes": {k: normalise(v) for k, v in cfg.routes.items()}, "warnings": cfg.warnings}


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_DURATION = re.compile(r"^-?\d+(\.\d+)?s$")
#: Keys whose keys are data, not field names (kept as they are).
_MAPS = {"filter_metadata", "typed_extension_protocol_options", "typed_per_filter_config"}


def _snake(k: str) -> str:
    """camelCase (protobuf JSON) → snake_case; `consecutive5xx` is `consecutive_5xx`."""
    return re.sub(r"(?<=[a-z])5xx", "_5xx", _CAMEL.sub(r"_\1", k).lower())


def normalise(x: Any, key: str = "") -> Any:
    """Protobuf JSON in one spelling: snake_case keys, durations as seconds, int64 strings as ints."""
    if isinstance(x, dict):
        out = {(k if key in _MAPS or k.startswith("@") else _snake(k)): normalise(v, _snake(k)) for k, v in x.items()}
        if "eds_cluster_config" in out or key == "cluster":
            out.setdefault("lb_policy", "ROUND_ROBIN")      # the enum's zero value, left out by protobuf JSON
        return out
    if isinstance(x, list):
        return [normalise(v, key) for v in x]
    if isinstance(x, str) and _DURATION.match(x) and key not in ("name", "prefix", "path"):
        return float(x[:-1])
    if isinstance(x, str) and x.isdigit() and key in ("host_selection_retry_max_attempts", "minimum_ring_size",
                                                       "table_size", "numerator"):
        return int(x)
    return x


def endpoint_groups(cla: dict[str, Any] | None, st: ClusterState) -> list[dict[str, Any]]:
    """A load assignment as comparable groups: locality, priority, weight and the pods in it."""
    by_ip = {p.ip: p.name for p in st.pods()}
    out = []
    for g in (cla or {}).get("endpoints", []):
        pods = sorted(by_ip.get(e["endpoint"]["address"]["socket_address"]["address"], "?")
                      for e in g.get("lb_endpoints") or [])
        out.append({"locality": g.get("locality", {}), "priority": g.get("priority", 0),
                    "load_balancing_weight": g.get("load_balancing_weight"), "pods": pods})
    return out


def meshlab_endpoint_groups(cla: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for g in (cla or {}).get("endpoints", []):
        pods = sorted(e["metadata"]["filter_metadata"]["meshlab"]["pod"] for e in g.get("lb_endpoints") or [])
        out.append({"locality": g.get("locality", {}), "priority": g.get("priority", 0),
                    "load_balancing_weight": g.get("load_balancing_weight"), "pods": pods})
    return out


def route(cfg: dict[str, Any], port: str, vhost_prefix: str, name: str | None = None) -> dict[str, Any]:
    """The first route (or the one called `name`) of the virtual host starting with `vhost_prefix`."""
    rc = cfg["routes"][port]
    for vh in rc["virtual_hosts"]:
        if vh["name"].startswith(vhost_prefix):
            for r in vh["routes"]:
                if name is None or r.get("name") == name:
                    return r
    raise KeyError(f"no route {name!r} in {vhost_prefix} of route config {port}")


def simulate(state: Any, proxies: list[dict[str, Any]], calls: list[dict[str, Any]], *,
             config: bool = False) -> dict[str, Any]:
    """`meshlab-oracle simulate` on the lab's state; with `config`, the response also holds each
    proxy's xDS as istiod generates it (`config[<proxy id>]`)."""
    req = {"objects": yaml.safe_dump_all(api_objects(state), sort_keys=False), "proxies": proxies,
           "calls": calls, **({} if config else {"config": "none"})}
    done = subprocess.run([str(oracle_binary()), "simulate"], input=json.dumps(req), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def expected(call: dict[str, Any]) -> set[tuple[int, str]]:
    """(status, flags) outcomes the oracle allows for a call; an upstream answer is the app's 200."""
    out = set()
    for o in call.get("outcomes") or []:
        oc = o["outcome"]
        out.add((200, "-") if oc["kind"] == "upstream" else (int(oc.get("status") or 0), oc.get("flags") or "-"))
    return out


def crd_validate(crd_files: list[Path], docs: list[dict[str, Any]]) -> list[list[str]]:
    """`meshlab-oracle crd-validate`: for each document, what the Kubernetes API server refuses
    creating it with, given these CRDs ([] = accepted): strict fields, defaults, the OpenAPI schema,
    list keys and the CEL rules, by Kubernetes' own apiextensions-apiserver code."""
    done = subprocess.run([str(oracle_binary()), "crd-validate", *map(str, crd_files)], input=json.dumps(docs),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out) == len(docs)
    return out
