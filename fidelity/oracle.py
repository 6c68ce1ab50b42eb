"""The oracle's side: a scenario → `meshlab-oracle simulate` → a compact golden answer.

The request holds the complete state (`ClusterState.to_objects`: Namespaces, Services with their
ClusterIP, Pods, EndpointSlices, Istio objects with creation times, and the default install's
ingress gateway), the proxies the lab runs (a `sleep` sidecar per client namespace, the ingress
gateway) and the calls. The answer kept as a golden file (`golden/routes/<group>/<name>.json`)
holds, per call, the listener, route configuration, virtual host, route, clusters and outcomes
Istio's config gives, and per proxy a summary of the generated clusters, listeners and routes;
plus `request` (a hash of the request), so a golden that no longer answers its scenario is
detected without Go.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from meshlab.names import INGRESS_GATEWAY, INGRESS_GATEWAY_PORTS, ISTIO_NAMESPACE
from meshlab.state import ClusterState

from .scenario import CLIENT_LABELS, GATEWAY_CLUSTER_IP, GATEWAY_POD_IP, Call, Scenario, build_state

ROOT = Path(__file__).resolve().parent.parent
ORACLE = Path(os.environ.get("MESHLAB_ORACLE") or ROOT / "oracle" / "bin" / "meshlab-oracle")
GOLDEN = Path(__file__).resolve().parent / "golden" / "routes"
#: Bumped when the golden format changes (every golden is then stale).
FORMAT = 2


def sidecar_id(namespace: str) -> str:
    return f"sidecar.{namespace}"


def sidecar_ip(index: int) -> str:
    return f"10.244.254.{index + 1}"


class Unanswerable(Exception):
    """A call the oracle cannot be asked (the name does not resolve): its outcome is decided here."""

    def __init__(self, outcome: dict[str, Any]):
        super().__init__(outcome)
        self.outcome = outcome


def resolve(st: ClusterState, call: Call) -> str:
    """The address a sidecar call dials (cluster DNS from the client's namespace), or raise
    Unanswerable with the outcome the client sees without any proxy (NXDOMAIN: `dns`)."""
    from meshlab.names import is_ip
    from meshlab.objects import Service

    host, port, _, _ = call.parts
    svc = None
    if is_ip(host):
        svc = next((s for s in st.list(Service) if st.cluster_ip(s) == host), None)
        if svc is None:
            return host
    else:
        svc = st.resolve_host(host, call.namespace)
    if svc is None:
        raise Unanswerable({"kind": "dns"})
    if svc.spec.type == "ExternalName":
        raise Unanswerable({"kind": "unmodelled", "why": "ExternalName: cluster DNS answers a CNAME outside the lab"})
    if svc.spec.headless:
        eps = [e for p in svc.spec.ports for e in st.endpoints(svc, p) if e.ip]
        if not eps:
            raise Unanswerable({"kind": "dns"})
        return eps[0].ip or ""
    if svc.port(port) is None:
        raise Unanswerable({"kind": "unmodelled", "why": f"port {port} is not a port of Service {svc.name}"})
    return st.cluster_ip(svc) or ""


def sidecar_namespaces(scenario: Scenario) -> list[str]:
    return sorted({"default"} | {c.namespace for c in scenario.calls if c.via == "sidecar"})


def request(scenario: Scenario, st: ClusterState | None = None) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """(the simulate request, outcomes decided without the oracle by call index)."""
    st = st or build_state(scenario)
    objects = st.to_objects(ingress_gateway=(GATEWAY_POD_IP, GATEWAY_CLUSTER_IP))
    namespaces = sidecar_namespaces(scenario)
    proxies: list[dict[str, Any]] = [
        {"id": sidecar_id(ns), "type": "sidecar", "namespace": ns, "labels": dict(CLIENT_LABELS), "ip": sidecar_ip(i)}
        for i, ns in enumerate(namespaces)]
    proxies.append({"id": "gateway", "type": "router", "pod": f"{ISTIO_NAMESPACE}/{INGRESS_GATEWAY}-0"})
    calls, decided = [], {}
    for i, call in enumerate(scenario.calls):
        host, port, _, path = call.parts
        c: dict[str, Any] = {"id": str(i), "authority": call.authority, "path": path, "method": call.method}
        hdrs = call.header_dict(with_host=False)
        if hdrs:
            c["headers"] = hdrs
        if call.via == "gateway":
            c.update(proxy="gateway", port=INGRESS_GATEWAY_PORTS.get(port, port))
        else:
            try:
                c.update(proxy=sidecar_id(call.namespace), port=port, address=resolve(st, call))
            except Unanswerable as e:
                decided[i] = e.outcome
                continue
        calls.append(c)
    req = {"objects": yaml.safe_dump_all(objects, sort_keys=True), "proxies": proxies, "calls": calls,
           "config": ["listeners", "clusters", "routes"]}
    return req, decided


def request_hash(req: dict[str, Any], decided: dict[int, dict[str, Any]]) -> str:
    body = json.dumps({"format": FORMAT, "request": req, "decided": decided}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def available() -> bool:
    return ORACLE.exists() and os.access(ORACLE, os.X_OK)


def ask(scenario: Scenario, *, timeout: float = 120.0) -> dict[str, Any]:
    """Run the oracle on a scenario and return the golden answer (see `summarize`)."""
    st = build_state(scenario)
    req, decided = request(scenario, st)
    digest = request_hash(req, decided)
    out = subprocess.run([str(ORACLE), "simulate"], input=json.dumps(req), capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode == 65:       # Istio's validation (or the request) refused the state
        return {"scenario": scenario.name, "request": digest, "rejected": out.stderr.strip()}
    if out.returncode != 0:
        raise RuntimeError(f"meshlab-oracle simulate failed ({out.returncode}) on {scenario.name}: {out.stderr.strip()}")
    return summarize(scenario, json.loads(out.stdout), decided, digest)


# --------------------------------------------------------------------------------- the golden form

_CALL_FIELDS = ("listener", "filterChain", "routeConfig", "virtualHost", "route", "routeIndex", "action",
                "outcomes", "redirect", "directResponse", "fault", "rewrite", "error", "notes")


def summarize(scenario: Scenario, resp: dict[str, Any], decided: dict[int, dict[str, Any]], digest: str) -> dict[str, Any]:
    by_id = {c.get("id"): c for c in resp.get("calls", [])}
    calls = []
    for i, call in enumerate(scenario.calls):
        entry: dict[str, Any] = {"call": str(call)}
        if i in decided:
            entry["decided"] = decided[i]
        else:
            c = by_id[str(i)]
            for k in _CALL_FIELDS:
                if c.get(k) not in (None, [], {}):
                    entry[k] = c[k]
            entry["clusters"] = [{k: v for k, v in cl.items() if k in ("name", "weight", "exists", "type")}
                                 for cl in c.get("clusters") or []]
            if c.get("agree") is False:     # Istio's simulation (path-only matching) said otherwise
                entry["istio"] = c.get("istio")
                entry["istioDisagrees"] = c.get("disagreements")
        calls.append(entry)
    return {"scenario": scenario.name, "request": digest, "istio": resp.get("istio", {}).get("commit"),
            "warnings": resp.get("warnings") or [], "calls": calls,
            "config": {pid: config_summary(cfg) for pid, cfg in sorted((resp.get("config") or {}).items())}}


def config_summary(cfg: dict[str, Any]) -> dict[str, Any]:
    """Clusters (name → type, metadata objects), listener names, and per route configuration its
    virtual hosts (domains, routes: name, match, action, the VirtualService they came from)."""
    clusters = {}
    for c in cfg.get("clusters") or []:
        t = c.get("type") or ("EDS" if "edsClusterConfig" in c else "ORIGINAL_DST" if "clusterType" not in c else "CUSTOM")
        entry: dict[str, Any] = {"type": t}
        istio = (c.get("metadata") or {}).get("filterMetadata", {}).get("istio", {})
        if istio.get("config"):
            entry["config"] = istio["config"]
        panic = (c.get("commonLbConfig") or {}).get("healthyPanicThreshold")
        if panic is not None:
            entry["panic"] = panic.get("value", 0)
        clusters[c["name"]] = entry
    routes = {}
    for rc in cfg.get("routes") or []:
        vhosts = []
        for vh in rc.get("virtualHosts") or []:
            vhosts.append({"name": vh["name"], "domains": vh.get("domains", []),
                           **({"requireTls": vh["requireTls"]} if vh.get("requireTls") else {}),
                           "routes": [route_summary(r) for r in vh.get("routes") or []]})
        routes[rc["name"]] = vhosts
    listeners = sorted(lis["name"] for lis in cfg.get("listeners") or [])
    return {"clusters": dict(sorted(clusters.items())), "listeners": listeners, "routes": dict(sorted(routes.items()))}


def route_summary(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.get("name", "")}
    out["match"] = {k: v for k, v in (r.get("match") or {}).items() if k != "caseSensitive"}
    if "route" in r:
        ra = r["route"]
        if "cluster" in ra:
            out["cluster"] = ra["cluster"]
        elif "weightedClusters" in ra:
            out["weighted"] = [[c["name"], c.get("weight", 0)] for c in ra["weightedClusters"].get("clusters", [])]
        for k in ("hostRewriteLiteral", "prefixRewrite"):
            if k in ra:
                out[k] = ra[k]
    elif "redirect" in r:
        out["redirect"] = r["redirect"]
    elif "directResponse" in r:
        out["directResponse"] = r["directResponse"].get("status")
    config = (r.get("metadata") or {}).get("filterMetadata", {}).get("istio", {}).get("config")
    if config:
        out["config"] = config
    return out


def golden_path(name: str) -> Path:
    group, _, rest = name.partition("/")
    return GOLDEN / group / (rest.replace("/", "__") + ".json")


def read_golden(name: str) -> dict[str, Any] | None:
    p = golden_path(name)
    return json.loads(p.read_text()) if p.exists() else None


def write_golden(answer: dict[str, Any]) -> Path:
    p = golden_path(answer["scenario"])
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(answer, indent=1, sort_keys=True) + "\n")
    return p


def current_hash(scenario: Scenario) -> str:
    req, decided = request(scenario)
    return request_hash(req, decided)
