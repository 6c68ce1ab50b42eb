"""meshlab.explain: the right cause for each 503 flavour.

Two layers: unit tests feed probe rows shaped like the local backend's (and a small stand-in lab
holding real objects and an Envoy view in `proxy_config_view` shape) to check the reasoning; the
end-to-end tests make real Envoy produce each flavour in a local Lab and check the explanation
names the object, the field and the fix.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from meshlab.probe.rows import PROBE_COLUMNS
from meshlab.explanation import CAUSES, Explanation, explain
from meshlab.manifests import load
from meshlab.state import ClusterState

from _manifests import deployment, destination_rule, docs, gateway, service, virtual_service

APP = docs(service("reviews"), deployment("reviews", "v1", replicas=2))

DR = destination_rule("reviews", ["v1", "v3"])

C_V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
C_V3 = "outbound|9080|v3|reviews.default.svc.cluster.local"
C_V9 = "outbound|9080|v9|reviews.default.svc.cluster.local"
C_ALL = "outbound|9080||reviews.default.svc.cluster.local"


def vs(http: str, hosts: tuple[str, ...] = ("reviews",), name: str = "reviews",
       gateways: list[str] | None = None) -> str:
    return virtual_service(name, hosts, http, gateways=gateways)


# ------------------------------------------------------------------------------- stand-in lab (unit)

class StandInLab:
    """Objects and pods from a real ClusterState; Envoy's view given as proxy_config_view rows."""

    def __init__(self, yaml_text: str, clusters: list[str], routes: list[dict], endpoints: list[dict] | None = None):
        self.state = ClusterState(pod_ip=lambda p: f"127.9.1.{len(self.state.pods()) + 1}")
        self.state.apply(load(yaml_text))
        self._cfg = {"clusters": [{"name": c, "state": "active"} for c in clusters], "routes": routes,
                     "listeners": [], "endpoints": endpoints or []}

    def objects(self):
        return self.state.all()

    def pods(self) -> pd.DataFrame:
        return pd.DataFrame([{"name": p.name, "namespace": p.namespace, "ip": p.ip, "labels": p.labels,
                              "version": p.version, "ready": p.ready, "phase": p.phase} for p in self.state.pods()])

    def envoy_config(self, proxy: str = "sidecar", *, namespace: str = "default") -> dict:
        return self._cfg


def rows(n: int, **kw) -> pd.DataFrame:
    base = {c: "" for c in PROBE_COLUMNS}
    base.update(seq=0, t=0.0, status=200, flags="-", proxy="sidecar", latency_ms=1.0, conn=1)
    out = []
    for i in range(n):
        r = dict(base, **kw)
        r.update(seq=i, t=kw.get("t", 0.0) + i * 0.01)
        out.append(r)
    return pd.DataFrame(out, columns=list(PROBE_COLUMNS))


def route(dest: str, vs_ref: str = "reviews.default", name: str = "") -> dict:
    return {"route_config": "9080", "virtual_host": "reviews.default.svc.cluster.local:9080", "domains": ["reviews"],
            "match": "prefix=/", "route_name": name, "destination": dest, "virtual_service": vs_ref}


def test_unit_nc_missing_subset_names_route_cluster_and_dr() -> None:
    lab = StandInLab(APP + "---\n" + DR + "---\n" + vs("  - route:\n    - destination: {host: reviews, subset: v9}\n"),
                     [C_V1, C_V3, C_ALL], [route(C_V9)])
    ex = explain(rows(5, status=503, flags="NC", details="cluster_not_found"), lab)
    assert isinstance(ex, Explanation) and len(ex) == 1
    c = ex["NC"]
    assert (c.code, c.outcome, c.count, c.share) == ("NC.undefined-subset", "503 NC", 5, 1.0)
    assert ex.codes == ["NC.undefined-subset"] and ex["NC.undefined-subset"] is c
    assert c.objects == ["VirtualService default/reviews", "DestinationRule default/reviews"]
    assert C_V9 in c.what                                  # the cluster Envoy was asked for, by name
    assert any(cmd.startswith("istioctl proxy-config clusters") for cmd in c.commands)
    assert c.findings[:1] == ['Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule '
                          'not found: "reviews+v9"']
    assert "  $ istioctl analyze\n    Error [IST0101]" in str(ex)


def test_unit_nc_no_service_vs_no_subset_are_told_apart() -> None:
    lab = StandInLab(APP + "---\n" + vs("  - route:\n    - destination: {host: ratings}\n"), [C_ALL],
                     [route("outbound|9080||ratings.default.svc.cluster.local")])
    c = explain(rows(3, status=503, flags="NC", details="cluster_not_found"), lab)["NC"]
    assert c.code == "NC.no-service" and "ratings.default.svc.cluster.local" in c.why


def test_unit_nc_picks_the_route_of_the_requested_host() -> None:
    two = (APP + "---\n" + DR + "---\n" + vs("  - route:\n    - destination: {host: reviews, subset: v9}\n")
           + "---\n" + vs("  - route:\n    - destination: {host: ratings}\n", hosts=("other",), name="other"))
    other = dict(route("outbound|9080||ratings.default.svc.cluster.local", vs_ref="other.default"),
                 domains=["other"], virtual_host="other:9080")
    lab = StandInLab(two, [C_V1, C_V3, C_ALL], [other, route(C_V9)])
    df = rows(2, status=503, flags="NC", details="cluster_not_found")
    assert explain(df, lab, url="http://reviews:9080/")["NC"].code == "NC.undefined-subset"
    assert explain(df, lab, url="http://other:9080/")["NC"].code == "NC.no-service"


def test_unit_nc_window_is_wrong_order() -> None:
    lab = StandInLab(APP + "---\n" + DR + "---\n" + vs("  - route:\n    - destination: {host: reviews, subset: v1}\n"),
                     [C_V1, C_ALL], [route(C_V1)])
    df = pd.concat([rows(4, status=503, flags="NC", details="cluster_not_found"),
                    rows(6, status=200, cluster=C_V1, version="v1", t=1.0)], ignore_index=True)
    ex = explain(df, lab)
    assert ex.codes == ["NC.route-before-cluster", "ok"]      # failures first
    assert ex["NC"].objects == ["DestinationRule default/reviews"]
    assert ex["200"].ok and ex["200"].count == 6


def test_unit_nc_for_a_cluster_that_exists_now() -> None:
    lab = StandInLab(APP + "---\n" + DR + "---\n" + vs("  - name: main\n    route:\n    - destination: {host: reviews, subset: v1}\n"),
                     [C_V1, C_ALL], [route(C_V1, name="main")])
    c = explain(rows(3, status=503, flags="NC", details="cluster_not_found", route="main"), lab)["NC"]
    assert c.code == "NC.route-before-cluster" and c.objects == ["DestinationRule default/reviews"]


def test_unit_uh_subset_labels_match_no_pod() -> None:
    lab = StandInLab(APP + "---\n" + DR, [C_V1, C_V3, C_ALL], [route(C_V3)])
    c = explain(rows(4, status=503, flags="UH", details="no_healthy_upstream", cluster=C_V3, subset="v3"), lab)["UH"]
    assert c.code == "UH.subset-matches-no-pod"
    assert c.objects == ["DestinationRule default/reviews", "Service default/reviews"]
    assert any("kubectl get endpoints reviews" in cmd for cmd in c.commands)


def test_unit_uh_pods_not_ready() -> None:
    lab = StandInLab(APP + "---\n" + DR, [C_V1, C_ALL], [route(C_V1)])
    for p in lab.state.pods():
        lab.state.set_pod(p.name, p.namespace, ready=False)
    c = explain(rows(2, status=503, flags="UH", details="no_healthy_upstream", cluster=C_V1), lab)["UH"]
    assert c.code == "UH.no-ready-endpoints"


def test_unit_uh_all_ejected_by_outlier_detection() -> None:
    od = destination_rule("reviews", ["v1", "v3"], traffic_policy="{outlierDetection: {consecutive5xxErrors: 1}}")
    lab = StandInLab(APP + "---\n" + od, [C_ALL], [route(C_ALL)])
    eps = [{"endpoint": f"{p.ip}:9080", "cluster": C_ALL, "status": "HEALTHY", "outlier_check": "FAILED"}
           for p in lab.state.pods()]
    lab._cfg["endpoints"] = eps
    c = explain(rows(2, status=503, flags="UH", details="no_healthy_upstream", cluster=C_ALL), lab)["UH"]
    assert c.code == "UH.outlier-ejected" and c.objects == ["DestinationRule default/reviews"]


def test_unit_fi_ut_uo_nr_point_at_the_field() -> None:
    fault = vs("  - fault: {abort: {httpStatus: 503, percentage: {value: 100}}}\n    route:\n    - destination: {host: reviews}\n")
    lab = StandInLab(APP + "---\n" + fault, [C_ALL], [route(C_ALL)])
    c = explain(rows(3, status=503, flags="FI", details="fault_filter_abort", cluster=C_ALL), lab)["FI"]
    assert c.code == "FI.fault-abort" and c.objects == ["VirtualService default/reviews"]

    slow = vs("  - timeout: 0.2s\n    route:\n    - destination: {host: reviews}\n")
    lab = StandInLab(APP + "---\n" + slow, [C_ALL], [route(C_ALL)])
    c = explain(rows(3, status=504, flags="UT", details="response_timeout", cluster=C_ALL, latency_ms=201.0), lab)["UT"]
    assert c.code == "UT.route-timeout" and c.objects == ["VirtualService default/reviews"]

    pool = destination_rule("reviews", ["v1", "v3"],
                            traffic_policy="{connectionPool: {http: {http1MaxPendingRequests: 1}}}")
    lab = StandInLab(APP + "---\n" + pool, [C_ALL], [route(C_ALL)])
    c = explain(rows(3, status=503, flags="UO", details="upstream_reset_before_response_started{overflow}",
                     cluster=C_ALL), lab)["UO"]
    assert c.code == "UO.circuit-breaker" and c.objects == ["DestinationRule default/reviews"]

    jason = vs("  - match: [{headers: {end-user: {exact: jason}}}]\n    route:\n    - destination: {host: reviews}\n")
    lab = StandInLab(APP + "---\n" + jason, [C_ALL], [route(C_ALL)])
    c = explain(rows(2, status=404, flags="NR", details="route_not_found"), lab)["NR"]
    assert c.code == "NR.no-matching-rule" and c.objects == ["VirtualService default/reviews"]


def test_unit_objects_only_and_text_and_html() -> None:
    objs = load(APP + "---\n" + DR + "---\n" + vs("  - route:\n    - destination: {host: reviews, subset: v9}\n"))
    ex = explain(rows(2, status=503, flags="NC", details="cluster_not_found"), objs)
    c = ex["NC"]
    assert c.code == "NC.cluster-not-found"          # no live view: the analyzer's IST0101 finding says more
    assert c.objects == ["VirtualService default/reviews"] and "IST0101" in c.findings[0]
    text, page = str(ex), ex._repr_html_()
    assert text.startswith("503 NC — 2 of 2 requests (100%)") and "$ istioctl" in text
    assert "<details>" in page and "503 NC" in page and "&lt;" not in c.outcome
    assert list(ex.to_frame().columns)[:4] == ["code", "outcome", "count", "share"]
    with pytest.raises(KeyError):
        ex["UH"]


# ------------------------------------------------------------------------------- end to end (real Envoy)

@pytest.fixture
def lab():
    from meshlab.lab import Lab
    with Lab() as lab:
        lab.apply(APP)
        yield lab


def test_e2e_subset_not_defined_is_nc(lab) -> None:
    lab.apply(DR)
    lab.apply(vs("  - route:\n    - destination: {host: reviews, subset: v9}\n"))
    df = lab.probe("http://reviews:9080/", n=5)
    ex = lab.explain(df)
    c = ex["NC"]
    assert (c.code, c.count) == ("NC.undefined-subset", 5) and C_V9 in c.what
    assert "DestinationRule default/reviews" in c.objects


def test_e2e_subset_without_pods_is_uh(lab) -> None:
    lab.apply(DR)
    lab.apply(vs("  - route:\n    - destination: {host: reviews, subset: v3}\n"))
    ex = explain(lab.probe("http://reviews:9080/", n=5), lab)
    c = ex["UH"]
    assert c.code == "UH.subset-matches-no-pod" and C_V3 in c.what
    assert c.objects == ["DestinationRule default/reviews", "Service default/reviews"]


def test_e2e_no_service_via_gateway_is_nc(lab) -> None:
    lab.apply(gateway("gw"))
    lab.apply(vs("  - route:\n    - destination: {host: ratings, port: {number: 9080}}\n", hosts=("*",),
                 gateways=["gw"]))
    ex = explain(lab.probe("http://bookinfo.example.com/", n=4, via="gateway"), lab)
    c = ex["NC"]
    assert c.code == "NC.no-service" and any("istio-ingressgateway" in cmd for cmd in c.commands)


def test_e2e_timeout_is_ut(lab) -> None:
    lab.apply(vs("  - timeout: 0.2s\n    route:\n    - destination: {host: reviews}\n"))
    for name in lab.pods()["name"]:
        lab.set_pod(name, latency_ms=600)
    c = explain(lab.probe("http://reviews:9080/", n=3), lab)["UT"]
    assert c.code == "UT.route-timeout" and c.objects == ["VirtualService default/reviews"]
    assert "reviews-v1-" in c.why                       # the slow pods are named


def test_e2e_fault_is_fi(lab) -> None:
    lab.apply(vs("  - fault: {abort: {httpStatus: 503, percentage: {value: 100}}}\n"
                 "    route:\n    - destination: {host: reviews}\n"))
    c = explain(lab.probe("http://reviews:9080/", n=4), lab)["FI"]
    assert (c.code, c.count) == ("FI.fault-abort", 4) and c.objects == ["VirtualService default/reviews"]


def test_e2e_unknown_name_is_dns(lab) -> None:
    lab.apply(vs("  - route:\n    - destination: {host: reviews}\n", hosts=("reviews", "nosuch")))
    df = lab.probe("http://nosuch:9080/", n=3)
    c = explain(df, lab, url="http://nosuch:9080/")["dns"]
    assert (c.code, c.count) == ("dns.virtualservice-host-is-no-name", 3)
    assert c.objects == ["VirtualService default/reviews"]
    assert "kubectl exec <client-pod> -- nslookup nosuch" in c.commands


def test_e2e_no_route_is_nr(lab) -> None:
    lab.apply(vs("  - match: [{headers: {end-user: {exact: jason}}}]\n    route:\n    - destination: {host: reviews}\n"))
    c = explain(lab.probe("http://reviews:9080/", n=3), lab)["NR"]
    assert c.code == "NR.no-matching-rule" and c.objects == ["VirtualService default/reviews"]


def test_e2e_dns_from_probe_attrs_names_the_host(lab) -> None:
    c = lab.explain(lab.probe("http://ratings:9080/", n=2))["dns"]
    assert c.code == "dns.no-service" and "'ratings'" in c.why          # the probe's own URL, from its attrs


def test_e2e_service_without_pods_is_refused_without_sidecar(lab) -> None:
    lab.apply("apiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec:\n  selector: {app: nobody}\n"
              "  ports: [{name: http, port: 9080}]\n")
    c = explain(lab.probe("http://empty:9080/", n=3, via="none"), lab)["refused"]
    assert c.code == "refused.selector-matches-no-pod" and c.objects == ["Service default/empty"]
    assert "kubectl get endpoints empty -n default" in c.commands


def test_e2e_dead_pods_are_uf_urx(lab) -> None:
    lab.apply(vs("  - route:\n    - destination: {host: reviews}\n"))
    for name in lab.pods()["name"]:
        lab.kill_pod(name, notready_after=None)
    ex = explain(lab.probe("http://reviews:9080/", n=3), lab)
    c = ex["UF"]
    assert c.code == "UF.dead-pod" and "URX" in c.outcome and "reviews-v1-" in c.what


def test_e2e_circuit_breaker_is_uo(lab) -> None:
    lab.apply(destination_rule("reviews", ["v1", "v3"], traffic_policy="{connectionPool: {tcp: {maxConnections: 1}, "
                               "http: {http1MaxPendingRequests: 1}}}"))
    for name in lab.pods()["name"]:
        lab.set_pod(name, latency_ms=300)
    df = lab.probe("http://reviews:9080/", n=8, concurrency=8)
    c = explain(df, lab)["UO"]
    assert c.count == (df["flags"] == "UO").sum() >= 1
    assert c.code == "UO.circuit-breaker" and c.objects == ["DestinationRule default/reviews"]


def test_e2e_app_errors_pass_through(lab) -> None:
    for name in lab.pods()["name"]:
        lab.set_pod(name, error_rate=1.0)
    c = explain(lab.probe("http://reviews:9080/", n=4), lab)["503"]
    assert c.code == "app.error-status" and "reviews-v1-" in c.why     # the failing pods are named


def test_e2e_all_ejected_is_uh(lab) -> None:
    lab.apply(destination_rule("reviews", ["v1", "v3"], traffic_policy="{outlierDetection: {consecutive5xxErrors: 1, "
                               "interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}}"))
    for name in lab.pods()["name"]:
        lab.set_pod(name, error_rate=1.0)
    lab.probe("http://reviews:9080/", n=10)          # 503s from the app eject both pods
    deadline = time.monotonic() + 5
    while True:
        df = lab.probe("http://reviews:9080/", n=3)
        if (df["flags"] == "UH").all() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    c = explain(df, lab)["UH"]
    assert c.code == "UH.outlier-ejected" and c.objects == ["DestinationRule default/reviews"]


def test_e2e_wrong_order_is_a_transient_nc(lab) -> None:
    lab.apply(DR)
    lab.apply(vs("  - route:\n    - destination: {host: reviews, subset: v1}\n"))
    lab.delete(DR)
    with lab.probing("http://reviews:9080/", rate=200) as p:
        _wait_rows(p, 10)                  # some requests meet the route without its cluster…
        lab.apply(DR)
        seen = len(p.snapshot())
        _wait_rows(p, seen + 10)           # …and some come after the DestinationRule landed
    df = p.result()
    ex = explain(df, lab)
    nc, ok = ex["NC"], ex["200"]
    assert nc.count > 0 and ok.count > 0 and nc.count + ok.count == len(df), "only NC and 200 outcomes"
    assert ex.codes == ["NC.route-before-cluster", "ok"] or ex.codes == ["ok", "NC.route-before-cluster"]
    assert nc.objects == ["DestinationRule default/reviews"]


def _wait_rows(run, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(run.snapshot()) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def test_every_cause_code_is_listed_and_every_listed_code_can_be_given() -> None:
    """Codes are the stable names of causes: the functions that build causes use exactly the codes
    CAUSES documents (a code given but not listed, or listed but never given, fails)."""
    import ast
    import inspect
    import re

    from meshlab.explanation import causes

    code = re.compile(r"(NC|UH|UF|UC|UO|UT|FI|NR|dns|refused|timeout|reset|app|other)\.[a-z-]+|ok")
    tree = ast.parse(inspect.getsource(causes))
    given = {n.value for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and code.fullmatch(n.value)}
    assert given == set(CAUSES), (given - set(CAUSES), set(CAUSES) - given)
