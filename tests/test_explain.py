"""meshlab.explain: the right cause for each 503 flavour, and for every answered request the route
and policy that served it.

Two layers: unit tests feed probe rows shaped like the local backend's (and a small stand-in lab
holding real objects and an Envoy view in `proxy_config_view` shape) to check the reasoning; the
end-to-end tests make real Envoy produce each outcome in a local Lab and check the explanation's
cause codes, the objects and the fields it names.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest

from meshlab.probe.rows import PROBE_COLUMNS
from meshlab.explanation import CAUSES, Explanation, explain
from meshlab.manifests import load
from meshlab.state import ClusterState

from _manifests import deployment, destination_rule, docs, gateway, namespace, service, virtual_service

APP = docs(service("reviews"), deployment("reviews", "v1", replicas=2))

DR = destination_rule("reviews", ["v1", "v3"])

C_V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
C_V3 = "outbound|9080|v3|reviews.default.svc.cluster.local"
C_V9 = "outbound|9080|v9|reviews.default.svc.cluster.local"
C_ALL = "outbound|9080||reviews.default.svc.cluster.local"


def vs(http: str, hosts: tuple[str, ...] = ("reviews",), name: str = "reviews",
       gateways: list[str] | None = None, namespace: str | None = None) -> str:
    return virtual_service(name, hosts, http, gateways=gateways, namespace=namespace)


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


#: A VirtualService for `web` (port 80) routing to `reviews` (9080 only): MLB0019's page's trigger.
WEB = docs(service("web", 80), deployment("web", "v1"))
C_80 = "outbound|80||reviews.default.svc.cluster.local"


def _web_route(dest: str) -> dict:
    return dict(route(dest, vs_ref="web.default"), route_config="80", virtual_host="web.default.svc.cluster.local:80",
                domains=["web"])


def test_unit_nc_destination_without_port_vs_a_port_the_service_lacks_are_told_apart() -> None:
    """The cluster took the listener's port because the destination named none (a sidecar's route
    configuration for port 80 holds only Services with port 80): NC.destination-without-port, on
    the destination's field; a port written in the destination that the Service lacks stays
    NC.no-service-port."""
    no_port = vs("  - route:\n    - destination: {host: reviews}\n", hosts=("web",), name="web")
    lab = StandInLab(APP + "---\n" + WEB + "---\n" + no_port, [C_ALL], [_web_route(C_80)])
    c = explain(rows(3, status=503, flags="NC", details="cluster_not_found"), lab, url="http://web/")["NC"]
    assert c.code == "NC.destination-without-port" and C_80 in c.what
    assert c.fields == ["spec.http[0].route[0].destination"]
    assert c.objects == ["VirtualService default/web", "Service default/reviews"]
    port_80 = vs("  - route:\n    - destination: {host: reviews, port: {number: 80}}\n", hosts=("web",), name="web")
    lab = StandInLab(APP + "---\n" + WEB + "---\n" + port_80, [C_ALL], [_web_route(C_80)])
    c = explain(rows(3, status=503, flags="NC", details="cluster_not_found"), lab, url="http://web/")["NC"]
    assert c.code == "NC.no-service-port"


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
    assert ex.codes == ["NC.route-before-cluster", "ok.virtualservice-route"]      # failures first
    assert ex["NC"].objects == ["DestinationRule default/reviews"]
    assert ex["200"].ok and ex["200"].count == 6
    # the answered requests: the route Envoy's view names, the rule, and the DestinationRule of its cluster
    assert ex["200"].objects == ["VirtualService default/reviews"] and ex["200"].fields == ["spec.http[0]"]
    assert ex["200"].codes == ["ok.virtualservice-route", "ok.no-destination-rule"]   # the stand-in's cluster has no DR metadata


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


def test_unit_uh_named_target_port_no_pod_declares() -> None:
    """A named targetPort that no ready pod declares leaves the port without endpoints for good
    (MLB0012): not 'no endpoint was ready when the requests arrived'."""
    app = docs(service("reviews", target_port="web"), deployment("reviews", "v1", replicas=2))
    lab = StandInLab(app, [C_ALL], [route(C_ALL)])
    c = explain(rows(2, status=503, flags="UH", details="no_healthy_upstream", cluster=C_ALL), lab)["UH"]
    assert c.code == "UH.target-port-not-declared"
    assert c.objects == ["Service default/reviews"]


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


def test_e2e_mesh_route_without_port_to_a_service_lacking_the_listener_port_is_nc(lab) -> None:
    """MLB0019's page's trigger, applied: from a sidecar the route to `reviews` (9080 only) without
    a port takes port 80, the listener's: 503 NC, and explain says the destination had no port.
    Through the gateway the same destination is reviews' only port, 9080: 200."""
    from meshlab.analysis import page

    trigger = re.search(r"## Triggers\n.*?```yaml\n(.*?)```", page("MLB0019"), re.S).group(1)
    lab.apply(trigger)
    df = lab.probe("http://web/", n=4)
    assert set(zip(df["status"], df["flags"])) == {(503, "NC")}
    c = lab.explain(df)["NC"]
    assert (c.code, c.count) == ("NC.destination-without-port", 4) and C_80 in c.what
    assert c.fields == ["spec.http[0].route[0].destination"]
    assert any("[MLB0019]" in f for f in c.findings), c.findings
    # a gateway's registry holds every Service: the same destination there takes reviews' only port
    lab.apply(gateway("gw"))
    lab.apply(vs("  - route: [{destination: {host: reviews}}]\n", name="edge", hosts=("shop.example.com",),
                 gateways=["gw"]))
    g = lab.probe("http://shop.example.com/", n=3, via="gateway")
    assert set(g["status"]) == {200} and set(g["cluster"]) == {C_ALL}


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


def test_unit_app_errors_with_outlier_detection_name_the_destination_rule() -> None:
    """App errors that reach the client though a DestinationRule has outlierDetection (every pod that
    could answer was failing, or ejection was refused): the cause names that DestinationRule, instead
    of telling the learner to add the outlierDetection that is there."""
    od = destination_rule("reviews", ["v1"], traffic_policy="{outlierDetection: {consecutive5xxErrors: 2}}")
    lab = StandInLab(APP + "---\n" + od, [C_ALL], [route(C_ALL)])
    c = explain(rows(3, status=503, flags="-", details="via_upstream", cluster=C_ALL), lab)["503"]
    assert c.code == "app.error-status" and c.objects == ["DestinationRule default/reviews"], c.objects
    lab = StandInLab(APP, [C_ALL], [route(C_ALL)])
    c = explain(rows(3, status=503, flags="-", details="via_upstream", cluster=C_ALL), lab)["503"]
    assert c.code == "app.error-status" and c.objects == []


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
    assert sorted(ex.codes) == ["NC.route-before-cluster", "ok.virtualservice-route"]
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

    import meshlab.explanation as package
    from meshlab.explanation import causes, flags, gateway_api, resilience, routing

    code = re.compile(r"([A-Z]{2,5}|dns|refused|timeout|reset|app|other|ok|note|flag)\.[a-z-]+|ok")
    given = set()
    for module in (package, causes, flags, gateway_api, resilience, routing):
        tree = ast.parse(inspect.getsource(module))
        given |= {n.value for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and code.fullmatch(n.value)}
    assert given == set(CAUSES), (given - set(CAUSES), set(CAUSES) - given)


# ------------------------------------------------- answered requests: route, policy, notes (real Envoy)

V2 = deployment("reviews", "v2")
SUBSETS = destination_rule("reviews", ["v1", "v2"])


def _codes(cause) -> list[str]:
    return [cause.code] + [p.code for p in cause.parts]


def test_e2e_ok_names_the_rule_envoy_logged_and_the_default_route(lab) -> None:
    ex = lab.explain(lab.probe("http://reviews:9080/", n=4))
    c = ex["200"]
    assert c.code == "ok.default-route" and c.objects == ["Service default/reviews"]
    assert _codes(c) == ["ok.default-route", "ok.no-destination-rule"]

    lab.apply(docs(V2, SUBSETS))
    lab.apply(vs("  - name: catalog\n    match: [{uri: {prefix: /wpcatalog}}]\n"
                 "    route: [{destination: {host: reviews, subset: v2}}]\n"
                 "  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: reviews, subset: v1}}]\n"
                 "  - route: [{destination: {host: reviews, subset: v1}}]\n"))
    named = lab.explain(lab.probe("http://reviews:9080/wpcatalog/x", n=4))["200"]
    assert (named.code, named.objects, named.fields) == (
        "ok.virtualservice-route", ["VirtualService default/reviews"], ["spec.http[0]"])
    # two unnamed rules send to v1: the request's path tells which matched, first match first
    assert lab.explain(lab.probe("http://reviews:9080/a/1", n=2))["200"].fields == ["spec.http[1]"]
    assert lab.explain(lab.probe("http://reviews:9080/b", n=2))["200"].fields == ["spec.http[2]"]


def _dr_with_v2_policy(top: str, v2: str) -> str:
    """DestinationRule reviews: subsets v1 and v2, a top-level policy and one of subset v2's own."""
    return ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n"
            f"  host: reviews\n  trafficPolicy: {top}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n"
            f"  - {{name: v2, labels: {{version: v2}}, trafficPolicy: {v2}}}\n")


def test_e2e_ok_names_the_destination_rule_blocks_and_where_they_come_from(lab) -> None:
    lab.apply(V2)
    lab.apply(vs("  - route: [{destination: {host: reviews, subset: v1}, weight: 50},"
                 " {destination: {host: reviews, subset: v2}, weight: 50}]\n"))

    def policy(subset: str):
        df = lab.probe("http://reviews:9080/", n=40, seed=1)
        ex = lab.explain(df)
        return next(p for p in ex["200"].parts if p.code.startswith("ok.") and f"|{subset}|" in p.what)

    lab.apply(SUBSETS)
    c = policy("v1")
    assert (c.code, c.objects, c.fields) == ("ok.destination-rule-no-policy", ["DestinationRule default/reviews"],
                                             ["spec.subsets[name=v1]"])
    lab.apply(_dr_with_v2_policy("{loadBalancer: {simple: RANDOM}, outlierDetection: {consecutive5xxErrors: 5}}",
                                 "{loadBalancer: {simple: ROUND_ROBIN}}"))
    assert policy("v1").fields == ["spec.trafficPolicy.loadBalancer", "spec.trafficPolicy.outlierDetection"]
    v2 = policy("v2")      # the subset's loadBalancer replaces the top-level one; outlierDetection stays
    assert v2.code == "ok.destination-rule-policy"
    assert v2.fields == ["spec.subsets[name=v2].trafficPolicy.loadBalancer", "spec.trafficPolicy.outlierDetection"]
    assert "spec.trafficPolicy.loadBalancer" in v2.why          # named as not applied here

    lab.apply(destination_rule("reviews", ["v1", "v2"], traffic_policy="{outlierDetection: {consecutive5xxErrors: 5}, "
                               "portLevelSettings: [{port: {number: 9080}, loadBalancer: {simple: RANDOM}}]}"))
    c = policy("v1")     # a port-level entry replaces all four blocks: outlierDetection no longer applies
    assert c.fields == ["spec.trafficPolicy.portLevelSettings[port=9080].loadBalancer"]
    assert "spec.trafficPolicy.outlierDetection" in c.why

    lab.apply(_dr_with_v2_policy("{outlierDetection: {consecutive5xxErrors: 5}}",
                                 "{portLevelSettings: [{port: {number: 9080}, "
                                 "connectionPool: {http: {http1MaxPendingRequests: 100}}}]}"))
    assert policy("v1").fields == ["spec.trafficPolicy.outlierDetection"]
    v2 = policy("v2")    # the subset's port-level entry replaces the top-level outlierDetection too
    assert v2.fields == ["spec.subsets[name=v2].trafficPolicy.portLevelSettings[port=9080].connectionPool"]


def test_e2e_vs_bound_to_a_gateway_only_or_elsewhere_is_named(lab) -> None:
    lab.apply(docs(V2, SUBSETS))
    lab.apply(gateway("gw"))
    lab.apply(vs("  - route: [{destination: {host: reviews, subset: v2}}]\n", name="edge", gateways=["gw"]))
    lab.apply(vs("  - route: [{destination: {host: reviews, subset: v2}}]\n", name="prod-copy",
                 hosts=("reviews.example.com",)))
    c = lab.explain(lab.probe("http://reviews:9080/", n=4))["200"]
    assert c.code == "ok.default-route"
    notes = {p.code: p for p in c.parts if p.code.startswith("note.")}
    assert set(notes) == {"note.vs-gateway-only", "note.vs-host-not-matched"}
    assert notes["note.vs-gateway-only"].objects == ["VirtualService default/edge"]
    assert notes["note.vs-host-not-matched"].objects == ["VirtualService default/prod-copy"]
    assert notes["note.vs-host-not-matched"].fields == ["spec.hosts"]


def test_e2e_vs_not_exported_shadowed_or_without_a_route_for_the_client(lab) -> None:
    lab.apply(docs(V2, SUBSETS, namespace("prod")))
    lab.apply(vs("  - route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]\n",
                 name="private", hosts=("reviews.default.svc.cluster.local",), namespace="prod")
              .replace("spec:\n", "spec:\n  exportTo: ['.']\n"))
    lab.apply(vs("  - match: [{sourceLabels: {app: nobody}}]\n"
                 "    route: [{destination: {host: reviews, subset: v2}}]\n", name="others-only"))
    c = lab.explain(lab.probe("http://reviews:9080/", n=3))["200"]
    assert c.code == "ok.default-route"
    notes = {p.code: p.objects for p in c.parts if p.code.startswith("note.")}
    assert notes == {"note.vs-not-exported": ["VirtualService prod/private"],
                     "note.vs-no-route-for-client": ["VirtualService default/others-only"]}

    lab.delete(vs("", name="others-only"))
    lab.apply(vs("  - route: [{destination: {host: reviews, subset: v1}}]\n", name="first"))
    lab.apply(vs("  - route: [{destination: {host: reviews, subset: v2}}]\n", name="second"))
    c = lab.explain(lab.probe("http://reviews:9080/", n=3))["200"]
    assert c.code == "ok.virtualservice-route" and c.objects == ["VirtualService default/first"]
    shadowed = [p for p in c.parts if p.code == "note.vs-shadowed"]
    assert [p.objects for p in shadowed] == [["VirtualService default/second", "VirtualService default/first"]]


def test_e2e_gateway_named_without_namespace_binds_nothing(lab) -> None:
    """`gateways: [public-gw]` in a VirtualService of `default` means default/public-gw (istiod's
    resolveGatewayName), not the Gateway istio-system/public-gw: bound to nothing, 404 NR."""
    lab.apply(gateway("public-gw", namespace="istio-system"))
    lab.apply(vs("  - route: [{destination: {host: reviews}}]\n", name="front", hosts=("*",),
                 gateways=["public-gw"]))
    ex = lab.explain(lab.probe("http://bookinfo.example.com/", n=3, via="gateway"))
    c = ex["NR"]
    assert (c.code, c.count) == ("NR.gateway-ref-wrong-namespace", 3)
    assert c.objects == ["VirtualService default/front", "Gateway istio-system/public-gw"]
    assert c.fields == ["spec.gateways[0]"] and c.parts == []      # no note repeating the same object

    # bound with its namespace, another VirtualService serves: the short-named one is a note
    lab.apply(vs("  - route: [{destination: {host: reviews.default.svc.cluster.local}}]\n", name="front",
                 hosts=("*",), namespace="istio-system", gateways=["istio-system/public-gw"]))
    lab.apply(vs("  - route: [{destination: {host: reviews}}]\n", name="inner", hosts=("bookinfo.example.com",)))
    lab.apply(gateway("egress", namespace="istio-system").replace("istio: ingressgateway", "istio: egressgateway"))
    lab.apply(vs("  - route: [{destination: {host: reviews}}]\n", name="out", hosts=("bookinfo.example.com",),
                 gateways=["istio-system/egress"]))
    c = lab.explain(lab.probe("http://bookinfo.example.com/", n=3, via="gateway"))["200"]
    assert (c.code, c.objects) == ("ok.virtualservice-route", ["VirtualService istio-system/front"])
    notes = {p.code: p.objects for p in c.parts if p.code.startswith("note.")}
    assert notes == {"note.gateway-ref-namespace": ["VirtualService default/front", "Gateway istio-system/public-gw"],
                     "note.vs-mesh-only": ["VirtualService default/inner"],
                     "note.vs-other-gateway": ["VirtualService default/out"]}


def test_e2e_no_sidecar_and_tcp_port_say_what_routed(lab) -> None:
    lab.apply(docs(SUBSETS, vs("  - route: [{destination: {host: reviews, subset: v1}}]\n")))
    c = lab.explain(lab.probe("http://reviews:9080/", n=3, via="none"))["200"]
    assert _codes(c) == ["ok.kube-proxy", "note.no-sidecar"]
    assert c.parts[0].objects == ["VirtualService default/reviews", "DestinationRule default/reviews"]

    lab.apply("apiVersion: v1\nkind: Service\nmetadata: {name: reviews-tcp}\nspec:\n  selector: {app: reviews}\n"
              "  ports: [{name: tcp, port: 9090, targetPort: 9080}]\n")
    c = lab.explain(lab.probe("http://reviews-tcp:9090/", n=3))["200"]
    assert _codes(c) == ["ok.tcp-proxy", "ok.no-destination-rule"] and c.objects == ["Service default/reviews-tcp"]


# ---------------------------------------------------------------- every flag of a group (real Envoy)

def test_e2e_every_flag_of_a_group_has_its_cause(lab) -> None:
    lab.apply(DR)
    lab.apply(vs("  - fault: {delay: {fixedDelay: 20ms, percentage: {value: 100}}}\n"
                 "    route: [{destination: {host: reviews, subset: v9}}]\n"))
    ex = lab.explain(lab.probe("http://reviews:9080/", n=3))
    c = ex["503 DI,NC"]
    assert _codes(c) == ["NC.undefined-subset", "DI.fault-delay"]
    assert ex["DI.fault-delay"].objects == ["VirtualService default/reviews"]
    assert ex["DI.fault-delay"].fields == ["spec.http[0].fault.delay"]
    assert "+ DI.fault-delay" in str(ex) and "<code>DI.fault-delay</code>" in ex._repr_html_()
    assert list(ex.to_frame()["parts"]) == [["DI.fault-delay"]]

    lab.apply(vs("  - fault: {delay: {fixedDelay: 20ms, percentage: {value: 100}},"
                 " abort: {httpStatus: 503, percentage: {value: 100}}}\n"
                 "    route: [{destination: {host: reviews, subset: v1}}]\n"))
    c = lab.explain(lab.probe("http://reviews:9080/", n=3))["FI"]
    assert _codes(c) == ["FI.fault-abort", "DI.fault-delay"] and c.fields == ["spec.http[0].fault.abort"]

    lab.apply(vs("  - fault: {delay: {fixedDelay: 20ms, percentage: {value: 100}}}\n"
                 "    route: [{destination: {host: reviews, subset: v1}}]\n"))
    c = lab.explain(lab.probe("http://reviews:9080/", n=3))["200 DI"]
    assert _codes(c)[:3] == ["ok.virtualservice-route", "ok.destination-rule-no-policy", "DI.fault-delay"]


def test_e2e_uf_urx_names_the_retry_policy(lab) -> None:
    lab.apply(vs("  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 3, retryOn: connect-failure}\n"))
    for name in lab.pods()["name"]:
        lab.kill_pod(name, notready_after=None)
    c = lab.explain(lab.probe("http://reviews:9080/", n=2))["UF"]
    assert _codes(c) == ["UF.dead-pod", "URX.retries-exhausted"]
    assert c.parts[0].fields == ["spec.http[0].retries"] and c.parts[0].objects == ["VirtualService default/reviews"]


# --------------------------------------------------------------------------------- flags (unit)

def test_unit_every_envoy_flag_has_a_code() -> None:
    """Envoy's response flags (source/common/stream_info/utility.h): each one explain can meet is
    named by its own code, led by the flag; an unknown one says so."""
    lab = StandInLab(APP, [C_ALL], [route(C_ALL)])
    envoy_flags = ["UH", "UF", "UO", "NR", "URX", "NC", "DT", "DC", "LH", "UT", "LR", "UR", "UC", "DI", "FI", "RL",
                   "UAEX", "RLSE", "IH", "SI", "DPE", "UPE", "UMSDR", "RFCF", "NFCF", "OM", "DF", "DO", "UDO", "DR"]
    for flag in envoy_flags:
        c = explain(rows(1, status=503, flags=f"{flag},XYZ", details="x", cluster=C_ALL), lab)[f"503 {flag},XYZ"]
        codes = _codes(c)
        assert any(code.split(".")[0] == flag for code in codes), (flag, codes)
        assert "flag.unknown" in codes, codes
        assert all(code in CAUSES for code in codes)


def test_e2e_requests_saved_by_a_retry_say_so(lab) -> None:
    lab.kill_pod(lab.pods()["name"].iloc[0], notready_after=None)    # dead, still an endpoint
    df = lab.probe("http://reviews:9080/", n=12, seed=3)
    assert (df["status"] == 200).all() and (df["attempts"] > 1).any()
    c = lab.explain(df)["200"]
    retried = [p for p in c.parts if p.code == "ok.retried"]
    assert c.code == "ok.default-route" and retried and retried[0].count == (df["attempts"] > 1).sum()


# ------------------------------------------------------------- locality (chapter 8's pods and rules)

CHAPTER_MANIFESTS = Path(__file__).resolve().parent.parent / "notebooks" / "manifests"


@pytest.fixture
def zones_lab():
    """Chapter 8's pods: one reviews pod (all version v1) in each of eu-west-a, eu-west-b, us-east-a."""
    from meshlab.lab import Lab
    with Lab() as lab:
        lab.apply(str(CHAPTER_MANIFESTS / "01-service" / "reviews-service.yaml"))
        lab.apply(str(CHAPTER_MANIFESTS / "08-locality" / "reviews-zones.yaml"))
        yield lab


def test_e2e_answered_requests_are_summarised_by_zone_where_the_pods_differ_by_zone(zones_lab) -> None:
    """The pods differ by zone, not by version: the summary is the split by zone (a version split
    would read "v1 100 %" whatever happened)."""
    zones_lab.apply(str(CHAPTER_MANIFESTS / "08-locality" / "destinationrule-failover-only.yaml"))
    ok = zones_lab.explain(zones_lab.probe("http://reviews:9080/", n=30, seed=1))["200"]
    assert set(ok.split) == {"zone"}, ok.split
    assert sum(ok.split["zone"].values()) == 30 and set(ok.split["zone"]) <= {"eu-west-a", "eu-west-b", "us-east-a"}
    assert len(ok.split["zone"]) >= 2, "no priorities without outlierDetection: LEAST_REQUEST spreads over zones"
    assert all(z in ok.what for z in ok.split["zone"]) and "v1" not in ok.what, ok.what


def test_e2e_answered_requests_are_summarised_by_version_where_the_pods_differ_by_version(lab) -> None:
    lab.apply(V2 + "---\n" + SUBSETS + "---\n" + vs(
        "  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 50\n"
        "    - destination: {host: reviews, subset: v2}\n      weight: 50\n"))
    ok = lab.explain(lab.probe("http://reviews:9080/", n=40))["200"]
    assert set(ok.split) == {"version"} and set(ok.split["version"]) == {"v1", "v2"}, ok.split
    assert sum(ok.split["version"].values()) == 40 and "zone" not in ok.what


def test_e2e_failover_after_ejection_names_the_ejected_pod_and_the_priority_the_requests_moved_to(zones_lab) -> None:
    """Chapter 8: the client's zone fails, outlier detection ejects its pod, and the requests go to
    priority 1 (eu-west-b). explain says so, with the DestinationRule field that ejected it; while
    all is healthy, or without outlierDetection (no priorities), it does not."""
    lab = zones_lab
    lab.apply(str(CHAPTER_MANIFESTS / "08-locality" / "destinationrule-failover-only.yaml"))
    assert "ok.failover-after-ejection" not in lab.explain(lab.probe("http://reviews:9080/", n=20, seed=1))["200"].codes
    lab.apply(str(CHAPTER_MANIFESTS / "08-locality" / "destinationrule-locality.yaml"))
    healthy = lab.explain(lab.probe("http://reviews:9080/", n=20, seed=1))
    assert "ok.locality-priority" in healthy["200"].codes and "ok.failover-after-ejection" not in healthy["200"].codes
    lab.set_pod("reviews-west-a", error_rate=1.0)
    ex = lab.explain(lab.probe("http://reviews:9080/", n=30, seed=1))
    assert ex.codes == ["app.error-status", "ok.default-route"], ex.codes
    moved = ex["ok.failover-after-ejection"]
    assert moved.objects == ["DestinationRule default/reviews"] and moved.fields == ["spec.trafficPolicy.outlierDetection"]
    assert moved.count == ex["200"].count and ex["200"].split == {"zone": {"eu-west-b": moved.count}}
    west_a = next(n for n in lab.pods()["name"] if n.startswith("reviews-west-a-"))
    assert west_a in moved.what and "priority 1 (eu-west-b)" in moved.what, moved.what
    assert f"The {ex['503'].count} request(s) before" in moved.what, moved.what    # the 503s that ejected it
    assert "priority 0 0 %, priority 1 100 %" in moved.why, moved.why


def test_unit_priority_load_follows_envoys_health_times_overprovisioning() -> None:
    from meshlab.explanation.resilience import OVERPROVISIONING_FACTOR, priority_load
    health = lambda healthy, hosts: min(100, OVERPROVISIONING_FACTOR * healthy // hosts)   # noqa: E731
    assert priority_load([health(1, 1), health(1, 1)]) == [100, 0]
    assert priority_load([health(0, 1), health(1, 1), health(1, 1)]) == [0, 100, 0]
    # 2 of 3 healthy: 1.4 × 2/3 → 93 %, the other 7 % spill to priority 1
    assert priority_load([health(2, 3), health(1, 1)]) == [93, 7]
    # not enough health anywhere: scaled to add up to 100
    assert priority_load([health(1, 4), health(1, 4)]) == [50, 50]
    assert priority_load([0, 0]) == [100, 0], "panic threshold 0 and nothing healthy: priority 0 nominally"


def test_unit_failover_without_ejection_evidence_names_no_ejection() -> None:
    """Requests served from priority 1 while Envoy shows no ejection (and no error came first):
    locality failover, but no claim that outlier detection ejected anything."""
    zoned = docs(service("reviews"), deployment("reviews", "v1", replicas=2))
    lab = StandInLab(zoned, [C_ALL], [route(C_ALL, vs_ref="", name="default")])
    a, b = (p.ip for p in lab.state.pods())
    lab._cfg["endpoints"] = [
        {"cluster": C_ALL, "endpoint": f"{a}:9080", "status": "HEALTHY", "outlier_check": "OK",
         "locality": "eu-west/eu-west-a", "priority": 0},
        {"cluster": C_ALL, "endpoint": f"{b}:9080", "status": "HEALTHY", "outlier_check": "OK",
         "locality": "eu-west/eu-west-b", "priority": 1}]
    ok = explain(rows(5, route="default", cluster=C_ALL, upstream=f"{b}:9080", pod="reviews-v1-b", version="v1"),
                 lab)["200"]
    assert "ok.locality-failover" in ok.codes and "ok.failover-after-ejection" not in ok.codes
    # the same, with Envoy's /clusters showing the priority-0 endpoint ejected: now it is named
    lab._cfg["endpoints"][0]["outlier_check"] = "FAILED"
    ok = explain(rows(5, route="default", cluster=C_ALL, upstream=f"{b}:9080", pod="reviews-v1-b", version="v1"),
                 lab)["200"]
    moved = next(p for p in ok.parts if p.code == "ok.failover-after-ejection")
    assert moved.count == 5 and "reviews-v1-" in moved.what and "priority 1 (eu-west-b): 5" in moved.what

    # ejected no more when explained (baseEjectionTime passed), but Envoy counted an ejection over the
    # probe and the rows show priority 0's pod failing first: named, with the errors that ejected it
    lab._cfg["endpoints"][0]["outlier_check"] = "OK"
    failing = rows(2, status=503, details="via_upstream", route="default", cluster=C_ALL, upstream=f"{a}:9080",
                   pod="reviews-v1-a", version="v1")
    served = rows(5, route="default", cluster=C_ALL, upstream=f"{b}:9080", pod="reviews-v1-b", version="v1")
    served["seq"] += 2
    probe = pd.concat([failing, served], ignore_index=True)
    counted = {f"cluster.{C_ALL}.outlier_detection.ejections_enforced_total": 1}
    probe.attrs["envoy_stats"] = counted
    moved = next(p for p in explain(probe, lab)["200"].parts if p.code == "ok.failover-after-ejection")
    pod_a = next(p.name for p in lab.state.pods() if p.ip == a)
    assert pod_a in moved.what and "The 2 request(s) before (#0–#1) got 503 ×2" in moved.what, moved.what
    assert "priority 0 0 %, priority 1 100 %" in moved.why, moved.why
    # the same rows without an ejection counted: errors alone prove no ejection
    probe.attrs["envoy_stats"] = {}
    assert "ok.failover-after-ejection" not in explain(probe, lab)["200"].codes


def test_e2e_a_mesh_virtualservice_for_the_destination_does_not_apply_at_the_gateway(lab) -> None:
    """The gateway's own VirtualService chose the cluster; the sidecars' VirtualService for that
    destination host (routing to v2) is not applied a second time at the gateway."""
    lab.apply(docs(V2, SUBSETS, gateway("gw")))
    lab.apply(vs("  - route: [{destination: {host: reviews, subset: v2}}]\n"))
    lab.apply(vs("  - route: [{destination: {host: reviews}}]\n", name="edge", hosts=("shop.example.com",),
                 gateways=["gw"]))
    c = lab.explain(lab.probe("http://shop.example.com/", n=3, via="gateway"))["200"]
    assert (c.code, c.objects) == ("ok.virtualservice-route", ["VirtualService default/edge"])
    assert [(p.code, p.objects) for p in c.parts if p.code.startswith("note.")] == [
        ("note.vs-mesh-only", ["VirtualService default/reviews"])]


# ---- chapter 7 (real Envoy): the keep-alive race, what retryOn reset hides, the client giving up

_CH7 = Path(__file__).resolve().parent.parent / "notebooks" / "manifests"


def test_e2e_keepalive_race_is_uc_the_idle_timeout_removes_it_reset_retries_hide_it() -> None:
    from meshlab.lab import Lab

    def codes(df):
        return [c for cause in lab.explain(df).causes for c in cause.codes]
    with Lab() as lab:
        lab.apply(str(_CH7 / "01-service" / "reviews-service.yaml"))
        lab.apply(str(_CH7 / "07-keepalive" / "reviews-keepalive.yaml"))
        quiet = lab.probe("http://reviews:9080/", n=12, rate=5, seed=1)     # 200 ms apart: in the window
        uc = quiet[quiet["flags"] == "UC"]
        assert len(uc) >= 2 and set(uc["details"]) == {"upstream_reset_before_response_started{connection_termination}"}
        assert "UC.keepalive-race" in codes(quiet)
        assert len(lab.app_log(quiet)) == len(quiet) - len(uc)            # a raced request never reached the app
        lab.apply(str(_CH7 / "07-keepalive" / "destinationrule-idle-timeout.yaml"))
        fixed = lab.probe("http://reviews:9080/", n=12, rate=5, seed=1)
        assert (fixed["flags"] == "UC").sum() <= 1 < len(uc)                # at most a stalled timer
        lab.delete(str(_CH7 / "07-keepalive" / "destinationrule-idle-timeout.yaml"))
        lab.apply(str(_CH7 / "07-keepalive" / "virtualservice-retry-reset.yaml"))
        retried = lab.probe("http://reviews:9080/", n=12, rate=5, seed=1)
        assert set(retried["status"]) == {200} and (retried["attempts"] > 1).sum() >= 2
        assert {"ok.retried", "note.retry-hides-keepalive-race"} <= set(codes(retried))
        lab.delete(str(_CH7 / "07-keepalive" / "virtualservice-retry-reset.yaml"))
        lab.set_pod("reviews-v1", latency_ms=400)
        gave_up = lab.probe("http://reviews:9080/", n=4, timeout=0.2, seed=1)
        # the race is still there (the retry VirtualService is gone): a request on a connection the
        # app just closed gets 503 UC before the client gives up; every other one is the client's DC
        dc = gave_up[gave_up["flags"] != "UC"]
        assert len(dc) >= 2 and set(dc["status"]) == {0} and set(dc["flags"]) == {"DC"}
        assert set(gave_up[gave_up["flags"] == "UC"]["status"]) <= {503}
        assert "DC.client-timeout" in codes(gave_up)
