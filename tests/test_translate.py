"""The mini control plane: Kubernetes + Istio YAML → Envoy config shaped as istiod shapes it."""

from __future__ import annotations

import itertools

import pytest

from meshlab.errors import ManifestError
from meshlab.manifests import load
from meshlab.objects import Service
from meshlab.state import ClusterState
from meshlab.istiod.translate import ProxyIdentity, build_config

from _manifests import SEED_VS_DR, deployment, docs, gateway, namespace, service, virtual_service

MAX = 4294967295
SLEEP = ProxyIdentity(kind="sidecar", namespace="default", labels={"app": "sleep"}, ip="127.66.0.1")
GATEWAY = ProxyIdentity(kind="gateway", namespace="istio-system",
                        labels={"istio": "ingressgateway", "app": "istio-ingressgateway"},
                        ip="127.66.0.2")

APPS = docs(
    namespace("prod"),
    deployment("reviews", "v1", replicas=2, port_name="web", namespace="prod"),
    deployment("reviews", "v2", replicas=None, port_name="web", namespace="prod"),
    service("reviews", target_port="web", namespace="prod"),
    """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec: {containers: [{name: app, image: x}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: http-admin, port: 9000, targetPort: 9000}
""")


def make_state(*yamls: str) -> ClusterState:
    pods, vips = itertools.count(1), itertools.count(1)
    st = ClusterState(pod_ip=lambda p: f"127.66.1.{next(pods)}",
                      cluster_ip=lambda s: f"127.66.2.{next(vips)}")
    st.apply(load(APPS))
    for y in yamls:
        st.apply(load(y))
    return st


def vhost(cfg, route_config: str, name: str) -> dict:
    for vh in cfg.routes[route_config]["virtual_hosts"]:
        if vh["name"] == name:
            return vh
    raise AssertionError(f"no vhost {name} in {[v['name'] for v in cfg.routes[route_config]['virtual_hosts']]}")


def cluster(cfg, name: str) -> dict:
    for c in cfg.clusters:
        if c["name"] == name:
            return c
    raise AssertionError(f"no cluster {name}")


REVIEWS = "reviews.prod.svc.cluster.local"


# ---------------------------------------------------------------------------------------- names

def test_istio_names_without_destination_rule():
    cfg = build_config(make_state(), SLEEP)
    names = {c["name"] for c in cfg.clusters}
    assert f"outbound|9080||{REVIEWS}" in names
    assert "outbound|80||web.default.svc.cluster.local" in names
    assert "outbound|9000||web.default.svc.cluster.local" in names
    assert not any("|v1|" in n for n in names), "no subset clusters without a DestinationRule"
    assert {"PassthroughCluster", "BlackHoleCluster"} <= names
    lis = {l["name"]: l for l in cfg.listeners}
    assert set(lis) == {"virtualOutbound", "0.0.0.0_80", "0.0.0.0_9000", "0.0.0.0_9080"}
    # Istio's capture: only virtualOutbound binds (on the sidecar's address); it hands each
    # connection to the listener of its original destination, which binds nothing
    assert lis["virtualOutbound"]["address"]["socket_address"] == {"address": "127.66.0.1", "port_value": 15001}
    assert lis["virtualOutbound"]["use_original_dst"] is True
    assert lis["0.0.0.0_9080"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9080}
    assert lis["0.0.0.0_9080"]["bind_to_port"] is False
    assert set(cfg.routes) == {"80", "9000", "9080"}
    assert cfg.warnings == []


def test_subset_clusters_only_for_dr_subsets_on_every_port():
    cfg = build_config(make_state(SEED_VS_DR), SLEEP)
    names = {c["name"] for c in cfg.clusters if REVIEWS in c["name"]}
    assert names == {f"outbound|9080||{REVIEWS}", f"outbound|9080|v1|{REVIEWS}",
                     f"outbound|9080|v2|{REVIEWS}"}
    c = cluster(cfg, f"outbound|9080|v1|{REVIEWS}")
    assert c["type"] == "EDS" and c["eds_cluster_config"]["service_name"] == c["name"]
    assert c["metadata"]["filter_metadata"]["istio"]["config"].endswith(
        "/namespaces/prod/destination-rule/reviews-destination")


def test_endpoints_are_pod_ip_and_resolved_target_port_filtered_by_subset():
    st = make_state(SEED_VS_DR)
    cfg = build_config(st, SLEEP)
    def addrs(name):
        cla = cfg.endpoints[name]
        return sorted((e["endpoint"]["address"]["socket_address"]["address"],
                       e["endpoint"]["address"]["socket_address"]["port_value"])
                      for g in cla["endpoints"] for e in g["lb_endpoints"])
    pods = {p.name: p for p in st.pods("prod")}
    v1 = sorted((p.ip, 9080) for p in pods.values() if p.labels["version"] == "v1")
    v2 = sorted((p.ip, 9080) for p in pods.values() if p.labels["version"] == "v2")
    assert addrs(f"outbound|9080|v1|{REVIEWS}") == v1 and len(v1) == 2
    assert addrs(f"outbound|9080|v2|{REVIEWS}") == v2 and len(v2) == 1
    assert addrs(f"outbound|9080||{REVIEWS}") == sorted(v1 + v2)
    # a pod that is not ready leaves every endpoint list (Istio <= 1.30 leaves it out of EDS)
    st.set_pod(next(p for p in pods if "reviews-v2" in p), "prod", ready=False)
    cfg = build_config(st, SLEEP)
    assert cfg.endpoints[f"outbound|9080|v2|{REVIEWS}"]["endpoints"] == []
    # web: numeric targetPort 8080
    assert {a[1] for a in addrs_of(cfg, "outbound|80||web.default.svc.cluster.local")} == {8080}


def addrs_of(cfg, name):
    return [(e["endpoint"]["address"]["socket_address"]["address"],
             e["endpoint"]["address"]["socket_address"]["port_value"])
            for g in cfg.endpoints[name]["endpoints"] for e in g["lb_endpoints"]]


# ---------------------------------------------------------------------------------------- domains

def test_vhost_domains_depend_on_client_namespace():
    st = make_state()
    vip = st.cluster_ip(st.get(Service, "reviews", "prod"))
    other = build_config(st, SLEEP)
    vh = vhost(other, "9080", f"{REVIEWS}:9080")
    assert vh["domains"] == [REVIEWS, REVIEWS + ".", "reviews.prod", "reviews.prod.svc", vip]
    same = build_config(st, ProxyIdentity("sidecar", "prod", {"app": "sleep"}, "127.66.0.3"))
    vh = vhost(same, "9080", f"{REVIEWS}:9080")
    assert vh["domains"] == [REVIEWS, REVIEWS + ".", "reviews", "reviews.prod.svc", "reviews.prod", vip]
    rc = other.routes["9080"]
    assert rc["validate_clusters"] is False and rc["ignore_port_in_host_matching"] is True
    assert rc["virtual_hosts"][-1]["name"] == "allow_any"
    assert rc["virtual_hosts"][-1]["domains"] == ["*"]


def test_a_service_entry_naming_a_cluster_local_host_gets_its_short_names():
    """The host's name decides the short forms, not the registry (GenerateAltVirtualHosts): a
    ServiceEntry for `reviews.prod.svc.cluster.local` without any Service answers to `reviews`
    from prod, to `reviews.prod` elsewhere, like the Service would; `api.example.com` to itself."""
    se = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews.prod.svc.cluster.local, api.example.com]
  ports: [{name: http, number: 9080, protocol: HTTP}]
"""
    st = ClusterState(strict_namespaces=False)
    st.apply(load(se))
    other = build_config(st, SLEEP)
    assert vhost(other, "9080", f"{REVIEWS}:9080")["domains"] == [
        REVIEWS, REVIEWS + ".", "reviews.prod", "reviews.prod.svc"]
    same = build_config(st, ProxyIdentity("sidecar", "prod", {"app": "sleep"}, "127.66.0.3"))
    assert vhost(same, "9080", f"{REVIEWS}:9080")["domains"] == [
        REVIEWS, REVIEWS + ".", "reviews", "reviews.prod.svc", "reviews.prod"]
    assert vhost(same, "9080", "api.example.com:9080")["domains"] == ["api.example.com", "api.example.com."]


def test_an_unknown_vs_host_goes_where_the_vs_owns_a_service_not_where_its_wildcard_lost():
    """A VirtualService's host that is no Service gets a virtual host on each port where the VS
    owns an HTTP Service; a wildcard that lost the Service to an exact host owns none there
    (route.go separateVSHostsAndServices, mostSpecificWildcardVsIndex; fidelity g0078)."""
    wild = virtual_service("wild", ["reviews.example.com", "*.prod.svc.cluster.local"], """
        - route: [{destination: {host: reviews.prod.svc.cluster.local}}]""", namespace="istio-system")
    exact = virtual_service("exact", [REVIEWS], """
        - route: [{destination: {host: reviews.prod.svc.cluster.local}}]""", namespace="prod")

    def names(cfg):
        return [v["name"] for v in cfg.routes["9080"]["virtual_hosts"]]
    assert "reviews.example.com:9080" in names(build_config(make_state(wild), SLEEP))
    assert "reviews.example.com:9080" not in names(build_config(make_state(wild, exact), SLEEP))


def test_a_destination_without_port_takes_the_listeners_port_in_a_sidecar():
    """route.GetDestinationCluster looks the destination up in the route configuration's registry:
    a sidecar's for port 80 holds only Services with port 80, so `reviews` (9080 only) without a
    port becomes outbound|80||reviews…, a cluster that does not exist (503 NC, as the oracle
    answers); a gateway's registry holds every Service, so there its only port, 9080, is used."""
    vs = virtual_service("web-to-reviews", ["web", "shop.example.com"], """
        - route: [{destination: {host: reviews.prod.svc.cluster.local}}]""", gateways=["mesh", "gw"])
    cfg = build_config(make_state(gateway("gw", ["shop.example.com"]), vs), SLEEP)
    side = vhost(cfg, "80", "web.default.svc.cluster.local:80")["routes"][0]
    assert side["route"]["cluster"] == f"outbound|80||{REVIEWS}"
    assert f"outbound|80||{REVIEWS}" not in {c["name"] for c in cfg.clusters}
    gw = build_config(make_state(gateway("gw", ["shop.example.com"]), vs), GATEWAY)
    assert vhost(gw, "http.8080", "shop.example.com:80")["routes"][0]["route"]["cluster"] == f"outbound|9080||{REVIEWS}"


# ---------------------------------------------------------------------------------------- routes

def test_default_route_has_istio_timeout_and_retry_policy():
    cfg = build_config(make_state(), SLEEP)
    routes = vhost(cfg, "9080", f"{REVIEWS}:9080")["routes"]
    assert len(routes) == 1 and routes[0]["name"] == "default"
    action = routes[0]["route"]
    assert action["cluster"] == f"outbound|9080||{REVIEWS}"
    assert action["timeout"] == "0s"
    rp = action["retry_policy"]
    assert rp["num_retries"] == 2
    assert rp["retry_on"] == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    assert "retriable_status_codes" not in rp
    assert rp["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert int(rp["host_selection_retry_max_attempts"]) == 5


def test_seed_virtual_service_first_match_wins_and_no_default_route():
    cfg = build_config(make_state(SEED_VS_DR), SLEEP)
    routes = vhost(cfg, "9080", f"{REVIEWS}:9080")["routes"]
    assert [r["name"] for r in routes] == ["reviews-v2-routes", "reviews-v1-route"]
    assert routes[0]["match"] == {"prefix": "/wpcatalog", "case_sensitive": True}
    assert routes[0]["route"]["cluster"] == f"outbound|9080|v2|{REVIEWS}"
    assert routes[1]["match"]["prefix"] == "/"
    assert routes[1]["route"]["cluster"] == f"outbound|9080|v1|{REVIEWS}"
    assert not any(r["name"] == "default" for r in routes)


def test_vs_without_catch_all_has_no_fallback_and_catch_all_stops_emission():
    vs = virtual_service("r", ["reviews"], namespace="prod", http="""
  - name: a
    match: [{uri: {exact: /a}, name: m1}, {headers: {end-user: {exact: jason}}, name: m2}]
    route: [{destination: {host: reviews}}]
  - name: all
    match: [{uri: {prefix: /}}]
    route: [{destination: {host: reviews}}]
  - name: never
    route: [{destination: {host: reviews}}]
""")
    routes = vhost(build_config(make_state(vs), SLEEP), "9080", f"{REVIEWS}:9080")["routes"]
    assert [r["name"] for r in routes] == ["a.m1", "a.m2", "all"]
    assert routes[1]["match"]["headers"] == [{"name": "end-user", "string_match": {"exact": "jason"}}]
    only = vs.split("  - name: all")[0]
    routes = vhost(build_config(make_state(only), SLEEP), "9080", f"{REVIEWS}:9080")["routes"]
    assert [r["name"] for r in routes] == ["a.m1", "a.m2"], "no route appended: unmatched → 404 NR"


def test_short_names_expand_in_the_vs_namespace_and_dotted_names_do_not():
    vs = virtual_service("r", ["reviews"], namespace="prod", http="""
  - match: [{uri: {prefix: /dotted}}]
    route: [{destination: {host: reviews.prod, subset: v1}}]
  - route: [{destination: {host: nothere}}]
""")
    routes = vhost(build_config(make_state(vs), SLEEP), "9080", f"{REVIEWS}:9080")["routes"]
    assert routes[0]["route"]["cluster"] == "outbound|9080|v1|reviews.prod"
    # unknown host: the name is built anyway (listener port), the cluster does not exist → NC
    assert routes[1]["route"]["cluster"] == "outbound|9080||nothere.prod.svc.cluster.local"


def test_weights_and_destination_ports():
    vs = virtual_service("w", ["web"], http="""
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: web, port: {number: 80}}, weight: 80}
    - {destination: {host: web, port: {number: 9000}}, weight: 20}
    - {destination: {host: web}, weight: 0}
  - match: [{uri: {prefix: /one}}]
    route:
    - {destination: {host: web}, weight: 100}
    - {destination: {host: web, port: {number: 9000}}, weight: 0}
  - route: [{destination: {host: web}}]
""")
    cfg = build_config(make_state(vs), SLEEP)
    for port in ("80", "9000"):
        routes = vhost(cfg, port, f"web.default.svc.cluster.local:{port}")["routes"]
        wc = routes[0]["route"]["weighted_clusters"]["clusters"]
        assert wc == [{"name": "outbound|80||web.default.svc.cluster.local", "weight": 80},
                      {"name": "outbound|9000||web.default.svc.cluster.local", "weight": 20}]
        # multi-port service, no port given → the listener's port
        assert routes[1]["route"]["cluster"] == f"outbound|{port}||web.default.svc.cluster.local"
        assert routes[2]["route"]["cluster"] == f"outbound|{port}||web.default.svc.cluster.local"


def test_timeout_retries_fault_mirror_rewrite_redirect():
    vs = virtual_service("r", ["reviews"], namespace="prod", http="""
  - name: redirect
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - name: knobs
    match: [{uri: {prefix: /api}, ignoreUriCase: true}]
    rewrite: {uri: /v2/api, authority: reviews.internal}
    timeout: 1.5s
    retries: {attempts: 4, perTryTimeout: 500ms, retryOn: "5xx,503,reset"}
    fault:
      delay: {fixedDelay: 2s}
      abort: {httpStatus: 503, percentage: {value: 12.5}}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 10}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: noretry
    retries: {attempts: 0}
    route: [{destination: {host: reviews, subset: v1}}]
""")
    routes = vhost(build_config(make_state(vs), SLEEP), "9080", f"{REVIEWS}:9080")["routes"]
    red = routes[0]
    assert red["redirect"] == {"path_redirect": "/new", "response_code": "FOUND"}
    r = routes[1]
    assert r["match"]["case_sensitive"] is False
    a = r["route"]
    assert a["timeout"] == "1.5s"
    assert a["prefix_rewrite"] == "/v2/api" and a["host_rewrite_literal"] == "reviews.internal"
    rp = a["retry_policy"]
    assert rp["num_retries"] == 4 and rp["per_try_timeout"] == "0.5s"
    assert rp["retry_on"] == "5xx,reset,retriable-status-codes" and rp["retriable_status_codes"] == [503]
    fault = r["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["delay"]["fixed_delay"] == "2s"
    assert fault["delay"]["percentage"]["numerator"] == 0, "percentage unset means 0 %: never delays"
    assert fault["abort"] == {"http_status": 503,
                              "percentage": {"numerator": 125000, "denominator": "MILLION"}}
    assert a["request_mirror_policies"] == [{
        "cluster": f"outbound|9080|v2|{REVIEWS}",
        "runtime_fraction": {"default_value": {"numerator": 100000, "denominator": "MILLION"}}}]
    assert "retry_policy" not in routes[2]["route"], "attempts: 0 → no retry policy at all"


def test_go_durations_of_any_shape_load_validate_and_translate():
    """Istio takes any Go duration the CRD takes (time.ParseDuration): `1m30s` is 90 s everywhere —
    the loader, the webhook checks, the analyzers and the translator read it the same way, so the
    rule keeps its route (it was dropped with a warning while three parsers disagreed)."""
    from meshlab import analyze

    vs = virtual_service("r", ["reviews"], namespace="prod", http="""
  - timeout: 1m30s
    retries: {attempts: 2, perTryTimeout: 1m0.5s}
    fault: {delay: {fixedDelay: .5s, percentage: {value: 1}}}
    route: [{destination: {host: reviews}}]
""")
    objs = load(vs)                                   # the CRD and the webhook checks take it
    assert not [f for f in analyze([*load(APPS), *objs]) if f.code == "IST0106"]
    cfg = build_config(make_state(vs), SLEEP)
    assert not [w for w in cfg.warnings if "left out" in w], cfg.warnings
    (route,) = vhost(cfg, "9080", f"{REVIEWS}:9080")["routes"]
    assert route["route"]["timeout"] == "90s"
    assert route["route"]["retry_policy"]["per_try_timeout"] == "60.5s"
    assert route["typed_per_filter_config"]["envoy.filters.http.fault"]["delay"]["fixed_delay"] == "0.5s"


def test_source_labels_and_namespace_are_decided_per_proxy():
    vs = virtual_service("r", ["reviews"], namespace="prod", http="""
  - name: from-sleep
    match: [{sourceLabels: {app: sleep}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: from-prod
    match: [{sourceNamespace: prod}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rest
    route: [{destination: {host: reviews, subset: v1}}]
""")
    st = make_state(vs)
    names = lambda proxy: [r["name"] for r in vhost(build_config(st, proxy), "9080", f"{REVIEWS}:9080")["routes"]]
    # a match on sourceLabels or sourceNamespace alone translates to prefix "/": for the proxies it
    # selects it is a catch-all, and istiod emits nothing after it (core/route/route.go IsCatchAllRoute)
    assert names(SLEEP) == ["from-sleep"]
    assert names(ProxyIdentity("sidecar", "prod", {"app": "other"}, "127.66.0.4")) == ["from-prod"]
    assert names(ProxyIdentity("sidecar", "default", {"app": "other"}, "127.66.0.4")) == ["rest"]


def test_first_virtual_service_owns_a_host_on_sidecars():
    two = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: first, namespace: prod}
spec:
  hosts: [reviews]
  http: [{name: first, route: [{destination: {host: reviews, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second, namespace: prod}
spec:
  hosts: [reviews]
  http: [{name: second, route: [{destination: {host: reviews, subset: v2}}]}]
"""
    routes = vhost(build_config(make_state(two), SLEEP), "9080", f"{REVIEWS}:9080")["routes"]
    assert [r["name"] for r in routes] == ["first"]


# ---------------------------------------------------------------------------------------- clusters

def test_istio_defaults_on_clusters():
    c = cluster(build_config(make_state(), SLEEP), f"outbound|9080||{REVIEWS}")
    assert c["lb_policy"] == "LEAST_REQUEST"
    assert c["connect_timeout"] == "10s"
    th = c["circuit_breakers"]["thresholds"][0]
    assert (th["max_connections"], th["max_pending_requests"], th["max_requests"], th["max_retries"]) == (MAX,) * 4
    assert "outlier_detection" not in c and "common_lb_config" not in c


DR_PRECEDENCE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
    portLevelSettings:
    - port: {number: 9000}
      connectionPool: {http: {http1MaxPendingRequests: 1}, tcp: {maxConnections: 1}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
  - name: pl
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {tcp: {connectTimeout: 250ms}}
      portLevelSettings:
      - port: {number: 80}
        loadBalancer: {simple: LEAST_REQUEST}
"""


def test_traffic_policy_precedence():
    cfg = build_config(make_state(DR_PRECEDENCE), SLEEP)
    web = "web.default.svc.cluster.local"
    top = cluster(cfg, f"outbound|80||{web}")
    assert top["lb_policy"] == "ROUND_ROBIN"
    assert top["outlier_detection"]["consecutive_5xx"] == 3
    assert top["outlier_detection"]["enforcing_consecutive_5xx"] == 100
    assert top["outlier_detection"]["max_ejection_percent"] == 100
    assert top["outlier_detection"]["enforcing_success_rate"] == 0
    assert top["common_lb_config"]["healthy_panic_threshold"] == {"value": 0.0}
    # port-level replaces whole blocks: LB and outlier fall back to the defaults on port 9000
    p9000 = cluster(cfg, f"outbound|9000||{web}")
    assert p9000["lb_policy"] == "LEAST_REQUEST"
    assert "outlier_detection" not in p9000
    th = p9000["circuit_breakers"]["thresholds"][0]
    assert (th["max_connections"], th["max_pending_requests"], th["max_requests"]) == (1, 1, MAX)
    # subset policy overrides only the blocks it sets
    v1 = cluster(cfg, f"outbound|80|v1|{web}")
    assert v1["lb_policy"] == "RANDOM" and v1["outlier_detection"]["consecutive_5xx"] == 3
    v1_9000 = cluster(cfg, f"outbound|9000|v1|{web}")
    assert v1_9000["lb_policy"] == "RANDOM" and "outlier_detection" not in v1_9000
    # subset port-level replaces everything, even blocks it leaves unset
    pl80 = cluster(cfg, f"outbound|80|pl|{web}")
    assert pl80["lb_policy"] == "LEAST_REQUEST" and pl80["connect_timeout"] == "10s"
    assert "outlier_detection" not in pl80
    pl9000 = cluster(cfg, f"outbound|9000|pl|{web}")
    assert pl9000["connect_timeout"] == "0.25s"


def test_consistent_hash_sets_ring_hash_and_route_hash_policy():
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: prod}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"""
    cfg = build_config(make_state(dr), SLEEP)
    assert cluster(cfg, f"outbound|9080||{REVIEWS}")["lb_policy"] == "RING_HASH"
    action = vhost(cfg, "9080", f"{REVIEWS}:9080")["routes"][0]["route"]
    assert action["hash_policy"] == [{"header": {"header_name": "x-user"}}]
    # the default route keeps previous_hosts even when it hashes (BuildDefaultHTTPOutboundRoute
    # converts the mesh's default policy without the hash; the oracle agrees: test_resilience_oracle)
    assert action["retry_policy"]["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"


def test_destination_rule_lookup_prefers_client_namespace():
    drs = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-prod, namespace: prod}
spec: {host: reviews, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-default, namespace: default}
spec: {host: reviews.prod.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: RANDOM}}}
"""
    st = make_state(drs)
    assert cluster(build_config(st, SLEEP), f"outbound|9080||{REVIEWS}")["lb_policy"] == "RANDOM"
    prod = ProxyIdentity("sidecar", "prod", {}, "127.66.0.5")
    assert cluster(build_config(st, prod), f"outbound|9080||{REVIEWS}")["lb_policy"] == "ROUND_ROBIN"


# ---------------------------------------------------------------------------------------- gateway

GW = gateway("gw") + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: web, port: {number: 80}}}]
  - match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: web, port: {number: 9000}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge-2}
spec:
  hosts: [shop.example.com]
  gateways: [default/gw]
  http:
  - match: [{uri: {prefix: /ghost}}]
    route: [{destination: {host: ghost}}]
"""


def test_gateway_listener_route_names_and_vs_merge():
    cfg = build_config(make_state(GW), GATEWAY)
    assert [l["name"] for l in cfg.listeners] == ["0.0.0.0_8080"]
    assert cfg.listeners[0]["address"]["socket_address"] == {"address": "127.66.0.2", "port_value": 8080}
    assert set(cfg.routes) == {"http.8080"}
    vh = vhost(cfg, "http.8080", "shop.example.com:80")
    assert vh["domains"] == ["shop.example.com"]
    # VSs concatenated in order, catch-all moved last; /admin after the catch-all is never emitted
    assert [r["match"].get("prefix") for r in vh["routes"]] == ["/ghost", "/"]
    assert vh["routes"][0]["route"]["cluster"] == "outbound|80||ghost.default.svc.cluster.local"
    # the sidecar does not see gateway-only VSs
    side = build_config(make_state(GW), SLEEP)
    assert vhost(side, "80", "web.default.svc.cluster.local:80")["routes"][0]["name"] == "default"


@pytest.mark.parametrize("entry, bound", [
    ("public-gw", False),                       # means default/public-gw, which does not exist
    ("istio-system/public-gw", True), ("public-gw.istio-system.svc.cluster.local", True),
    ("public-gw.istio-system", True),
])
def test_gateway_names_resolve_in_the_virtual_service_namespace(entry: str, bound: bool):
    """istiod's resolveGatewayName: a VirtualService in `default` naming `public-gw` is bound to
    default/public-gw, not to the Gateway istio-system/public-gw."""
    gw_vs = gateway("public-gw", namespace="istio-system") + "---\n" + virtual_service(
        "front", ["*"], "- route: [{destination: {host: web, port: {number: 80}}}]", gateways=[entry])
    vhs = build_config(make_state(gw_vs), GATEWAY).routes["http.8080"]["virtual_hosts"]
    assert (vhs[0]["name"] != "blackhole:80") is bound


@pytest.mark.parametrize("gateways, field", [
    ("[./public-gw]", "spec.gateways[0]"), ("[/public-gw]", "spec.gateways[0]"),
    ("[istio-system/public_gw]", "spec.gateways[0]"), ("[istio-system/a.b, mesh]", "spec.gateways[0]"),
])
def test_gateway_names_istio_refuses_are_refused_with_the_field(gateways: str, field: str):
    """Istio's validateGatewayNames: `<namespace>/<name>`, both RFC 1123 labels; `./gw` is no
    namespace (kubectl apply fails on the webhook)."""
    text = virtual_service("front", ["*"], "- route: [{destination: {host: web, port: {number: 80}}}]") \
        .replace("spec:\n", f"spec:\n  gateways: {gateways}\n", 1)
    with pytest.raises(ManifestError) as e:
        load(text)
    assert field in str(e.value)


def test_gateway_without_virtual_service_has_a_routeless_blackhole():
    cfg = build_config(make_state(gateway("gw")), GATEWAY)
    vhs = cfg.routes["http.8080"]["virtual_hosts"]
    assert vhs == [{"name": "blackhole:80", "domains": ["*"], "routes": []}]
    # a gateway has BlackHoleCluster, and no PassthroughCluster (core/cluster.go)
    names = {c["name"] for c in cfg.clusters}
    assert "BlackHoleCluster" in names and "PassthroughCluster" not in names


def test_unnamed_ports_are_sniffed_on_the_service_address():
    svc = """
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: web}
  ports: [{port: 7000}]
"""
    st = make_state(svc)
    cfg = build_config(st, SLEEP)
    vip = st.cluster_ip(st.get(Service, "plain", "default"))
    # Istio sniffs the protocol on the Service's own address: HTTP goes to route config
    # <host>:<port>, whose one virtual host takes any Host; other bytes to the Service's cluster
    lis = next(l for l in cfg.listeners if l["name"] == f"{vip}_7000")
    assert lis["address"]["socket_address"] == {"address": vip, "port_value": 7000}
    assert [f["name"] for f in lis["listener_filters"]] == ["envoy.filters.listener.http_inspector"]
    assert lis["filter_chains"][0]["filter_chain_match"]["application_protocols"] == ["http/1.1", "h2c"]
    assert lis["default_filter_chain"]["filters"][0]["typed_config"]["cluster"] == \
        "outbound|7000||plain.default.svc.cluster.local"
    rc = cfg.routes["plain.default.svc.cluster.local:7000"]
    assert [(v["name"], v["domains"]) for v in rc["virtual_hosts"]] == [("plain.default.svc.cluster.local:7000", ["*"])]
    assert "0.0.0.0_7000" not in {l["name"] for l in cfg.listeners}


def test_tcp_port_gets_a_tcp_proxy_listener_and_unknown_vs_hosts_live_on_port_80():
    extra = service("db", 5432, port_name="tcp-db") + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  http: [{route: [{destination: {host: web, port: {number: 80}}}]}]
"""
    st = make_state(extra)
    cfg = build_config(st, SLEEP)
    vip = st.cluster_ip(st.get(Service, "db", "default"))
    tcp = next(l for l in cfg.listeners if l["name"] == f"{vip}_5432")
    flt = tcp["filter_chains"][0]["filters"][0]["typed_config"]
    assert flt["cluster"] == "outbound|5432||db.default.svc.cluster.local"
    assert tcp["address"]["socket_address"] == {"address": vip, "port_value": 5432}
    assert "5432" not in cfg.routes
    ext = vhost(cfg, "80", "api.example.com:80")
    assert ext["domains"] == ["api.example.com"]
    assert not any(v["name"].startswith("api.example.com") for v in cfg.routes["9000"]["virtual_hosts"])


def test_service_entries():
    se = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local-api}
spec:
  hosts: [api.internal.example]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints: [{address: 127.66.9.9}, {address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: google}
spec:
  hosts: [www.googleapis.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
"""
    cfg = build_config(make_state(se), SLEEP)
    name = "outbound|8000||api.internal.example"
    assert addrs_of(cfg, name) == [("127.66.9.9", 8000)]
    assert any("10.0.0.1" in w for w in cfg.warnings), "a non-loopback endpoint is reported"
    assert any("www.googleapis.com" in w for w in cfg.warnings)
    vh = vhost(cfg, "8000", "api.internal.example:8000")
    assert vh["domains"][0] == "api.internal.example"


# ---------------------------------------------------------------------------------------- Envoy

KITCHEN_SINK = docs(SEED_VS_DR, DR_PRECEDENCE, GW, service("db", 5432, port_name="tcp-db")) + """---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8081}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local-api}
spec:
  hosts: [api.internal.example]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.66.9.9}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pass}
spec:
  host: api.internal.example
  trafficPolicy:
    loadBalancer: {simple: PASSTHROUGH}
    connectionPool: {http: {maxRequestsPerConnection: 1, idleTimeout: 5s, h2UpgradePolicy: UPGRADE}, tcp: {tcpKeepalive: {time: 10s, interval: 5s, probes: 3}, maxConnectionDuration: 1h}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hashes, namespace: prod}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: 10s, path: /}}, warmupDurationSecs: 10s}}
  subsets:
  - {name: h1, labels: {version: v1}, trafficPolicy: {loadBalancer: {consistentHash: {maglev: {tableSize: 65537}, useSourceIp: true}}}}
  - {name: h2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 10s}, outlierDetection: {consecutiveGatewayErrors: 2, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2, minHealthPercent: 20}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-mesh}
spec:
  hosts: [web]
  http:
  - match: [{headers: {x-a: {regex: "v[0-9]+"}, x-b: {}}, queryParams: {q: {exact: "1"}}, method: {exact: GET}, withoutHeaders: {x-c: {prefix: z}}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}, delay: {fixedDelay: 10ms, percentage: {value: 50}}}
    headers: {request: {set: {x-set: "1"}, add: {x-add: "2"}, remove: [x-rm]}, response: {set: {x-r: "1"}}}
    route: [{destination: {host: web, subset: v1, port: {number: 80}}, headers: {request: {set: {x-d: "1"}}}}]
  - match: [{uri: {regex: "/r/.*"}}]
    rewrite: {uriRegexRewrite: {match: "^/r/(.*)", rewrite: "/\\\\1"}}
    route: [{destination: {host: web}, weight: 50}, {destination: {host: web, subset: pl}, weight: 50}]
  - match: [{uri: {prefix: /cors}}]
    corsPolicy: {allowOrigins: [{exact: "https://a.example"}, {regex: ".*[.]b[.]example"}], allowMethods: [GET, POST], allowHeaders: [x-a], maxAge: 24h, allowCredentials: true}
    route: [{destination: {host: web}}]
  - directResponse: {status: 204, body: {string: hi}}
"""


def _assert_envoy_runs(envoy, cfg, context: str = "") -> None:
    """Envoy's own account (admin config_dump) matches the config pushed: exactly its active
    clusters and listeners, and every route config (a removed listener drains for a while and
    keeps its route config meanwhile, so extra route configs are allowed)."""
    dump = {c["@type"].rsplit(".", 1)[1]: c for c in envoy.config_dump(include_eds=False)["configs"]}
    section = lambda kind, key: dump.get(kind, {}).get(key, [])   # Envoy leaves out empty sections
    clusters = {c["cluster"]["name"] for c in section("ClustersConfigDump", "dynamic_active_clusters")}
    listeners = {l["name"] for l in section("ListenersConfigDump", "dynamic_listeners") if "active_state" in l}
    routes = {r["route_config"]["name"] for r in section("RoutesConfigDump", "dynamic_route_configs")}
    assert clusters == {c["name"] for c in cfg.clusters}, context
    assert listeners == {l["name"] for l in cfg.listeners}, context
    assert set(cfg.routes) <= routes, context


def test_generated_configs_are_accepted_by_real_envoy(tmp_path):
    from meshlab.backends.local.addresses import AddressLease
    from meshlab.envoy import Envoy

    lease = AddressLease()
    try:
        st = make_state(KITCHEN_SINK)
        for name, ident in (("sidecar", ProxyIdentity("sidecar", "default", {"app": "sleep"}, lease.sidecar_ip)),
                            ("gateway", ProxyIdentity("gateway", "istio-system",
                                                      {"istio": "ingressgateway"}, lease.gateway_ip))):
            cfg = build_config(st, ident)
            e = Envoy(name, tmp_path / name)
            try:
                e.start(cfg)   # raises EnvoyConfigRejected with Envoy's words if anything is wrong
                _assert_envoy_runs(e, cfg)
                e.push(build_config(make_state(SEED_VS_DR), ident))
                e.push(cfg)
                _assert_envoy_runs(e, cfg, "a push back leaves exactly the config pushed")
            finally:
                e.stop()
    finally:
        lease.release()


def test_privileged_ports_move_only_their_socket(monkeypatch):
    """Where the lab may not bind port 80 (Binder's unprivileged user), the listener keeps
    Istio's name and route config but binds 10080; the probe asks host_port()."""
    from meshlab._ports import host_port
    from meshlab.istiod.listeners import gateway_listen_port

    monkeypatch.setenv("MESHLAB_ALIAS_LOW_PORTS", "1")
    assert host_port(80) == 10080 and host_port(9080) == 9080
    assert gateway_listen_port(80) == 8080 and gateway_listen_port(81) == 10081
    cfg = build_config(make_state(), SLEEP)
    lis = next(l for l in cfg.listeners if l["name"] == "0.0.0.0_80")
    assert lis["address"]["socket_address"]["port_value"] == 10080
    assert lis["filter_chains"][0]["filters"][0]["typed_config"]["rds"]["route_config_name"] == "80"
    assert "web.default.svc.cluster.local:80" in {v["name"] for v in cfg.routes["80"]["virtual_hosts"]}


def test_extra_vs_hosts_follow_the_ports_of_the_services_the_vs_matches_and_port_80():
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: prod}
spec:
  hosts: [reviews, reviews.internal.example]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"""
    cfg = build_config(make_state(vs), SLEEP)
    extra = vhost(cfg, "9080", "reviews.internal.example:9080")
    assert extra["domains"] == ["reviews.internal.example"]
    assert extra["routes"][0]["route"]["cluster"] == f"outbound|9080|v1|{REVIEWS}"
    # route config "80" holds the hosts of a VS that matches no HTTP Service on port 80 — its
    # unknown hosts, and even its Services' names (only the FQDN) — as Istio's own code answers
    # (core/route/route.go separateVSHostsAndServices: the registry is port 80's Services)
    assert vhost(cfg, "80", "reviews.internal.example:80")["domains"] == ["reviews.internal.example"]
    assert vhost(cfg, "80", f"{REVIEWS}:80")["domains"] == [REVIEWS]


def test_header_operations_of_route_and_single_destination_merge():
    cfg = build_config(make_state(KITCHEN_SINK), SLEEP)
    route = vhost(cfg, "80", "web.default.svc.cluster.local:80")["routes"][0]
    added = {(h["header"]["key"], h["append_action"]) for h in route["request_headers_to_add"]}
    assert added == {("x-set", "OVERWRITE_IF_EXISTS_OR_ADD"), ("x-add", "APPEND_IF_EXISTS_OR_ADD"),
                     ("x-d", "OVERWRITE_IF_EXISTS_OR_ADD")}
    assert route["request_headers_to_remove"] == ["x-rm"]
    assert route["route"]["cluster"] == "outbound|80|v1|web.default.svc.cluster.local"
    m = route["match"]
    assert [h["name"] for h in m["headers"]] == ["x-a", "x-b", ":method", "x-c"]
    assert m["headers"][1] == {"name": "x-b", "present_match": True}
    assert m["headers"][3]["invert_match"] is True
    assert m["query_parameters"] == [{"name": "q", "string_match": {"exact": "1"}}]


def test_every_istio_sample_translates_and_real_envoy_accepts_it(tmp_path, reference_dir):
    """Each Istio sample manifest, on top of Bookinfo, becomes config a real Envoy accepts
    (every sample loads: test_samples_load.py holds that contract)."""
    from meshlab.backends.local.addresses import AddressLease
    from meshlab.envoy import Envoy

    samples = sorted((reference_dir / "istio-samples").glob("*.yaml"))
    assert len(samples) >= 20, f"only {len(samples)} Istio samples under {reference_dir}"
    lease = AddressLease()
    sidecar = ProxyIdentity("sidecar", "default", {"app": "sleep"}, lease.sidecar_ip)
    gateway = ProxyIdentity("gateway", "istio-system", {"istio": "ingressgateway"}, lease.gateway_ip)
    envoys = {n: Envoy(n, tmp_path / n) for n in ("s", "g")}
    try:
        base = load(reference_dir / "istio-samples" / "bookinfo__platform__kube__bookinfo.yaml")
        envoys["s"].start()
        envoys["g"].start()
        for sample in samples:
            objs = load(sample)
            pods, vips = itertools.count(1), itertools.count(1)
            st = ClusterState(pod_ip=lambda p: f"{lease.prefix}.1.{next(pods)}",
                              cluster_ip=lambda s: f"{lease.prefix}.2.{next(vips)}",
                              strict_namespaces=False)
            st.apply([o for o in base + objs if o.kind != "UnmodelledObject"])
            for key, ident in (("s", sidecar), ("g", gateway)):
                cfg = build_config(st, ident)
                envoys[key].push(cfg)  # raises EnvoyConfigRejected otherwise
                _assert_envoy_runs(envoys[key], cfg, sample.name)
    finally:
        for e in envoys.values():
            e.stop()
        lease.release()


def test_virtual_service_hosts_match_services_whatever_their_case():
    """istiod lower-cases a VirtualService's hosts before matching Services (core/httproute.go):
    `Reviews.default.svc.cluster.local` routes the Service reviews."""
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: upper}
spec:
  hosts: [Web.default.svc.cluster.local]
  http:
  - name: shout
    route: [{destination: {host: web}}]
"""
    cfg = build_config(make_state(docs(service("web", 80), vs)), SLEEP)
    assert [r["name"] for r in vhost(cfg, "80", "web.default.svc.cluster.local:80")["routes"]] == ["shout"]


def test_catch_all_follows_the_translated_route():
    """istiod stops emitting a VirtualService's routes after the first catch-all *Envoy* route: an
    empty match, `regex: ".*"`, or only `port` are catch-alls; `regex: "/.*"` is not (route.go)."""
    def names(http: str) -> list[str]:
        cfg = build_config(make_state(virtual_service("r", ["reviews"], namespace="prod", http=http)), SLEEP)
        return [r["name"] for r in vhost(cfg, "9080", f"{REVIEWS}:9080")["routes"]]
    tail = """
  - name: after
    route: [{destination: {host: reviews}}]
"""
    assert names("""
  - name: empty
    match: [{}]
    route: [{destination: {host: reviews}}]""" + tail) == ["empty"]
    assert names("""
  - name: any
    match: [{uri: {regex: ".*"}}]
    route: [{destination: {host: reviews}}]""" + tail) == ["any"]
    assert names("""
  - name: port
    match: [{port: 9080}]
    route: [{destination: {host: reviews}}]""" + tail) == ["port"]
    assert names("""
  - name: slash
    match: [{uri: {regex: "/.*"}}]
    route: [{destination: {host: reviews}}]""" + tail) == ["slash", "after"]


def test_https_redirect_server_without_virtual_service_gets_a_redirect_only_virtual_host():
    """istiod (core/gateway.go): a server with tls.httpsRedirect adds, for each of its hosts no
    VirtualService covers, a route-less virtual host requiring TLS — named and matched by the host
    as written — and virtual hosts with the same routes collapse into one."""
    gw = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw0, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [default/reviews.example.com, prod/*]
    tls: {httpsRedirect: true}
"""
    cfg = build_config(make_state(gw), GATEWAY)
    assert cfg.routes["http.8080"]["virtual_hosts"] == [{
        "name": "default/reviews.example.com:80", "domains": ["default/reviews.example.com", "prod/*"],
        "routes": [], "include_request_attempt_count": True, "require_tls": "ALL"}]


def test_setting_the_authority_header_is_a_host_rewrite():
    """Envoy refuses to set `:authority` or `host` as a header (the whole route configuration is
    rejected); istiod turns them into host_rewrite_literal (core/route/route.go
    TranslateHeadersOperations): the rule's own wins over a lone destination's. A rule may set
    the authority in one place only: Istio's webhook refuses two (validateAuthorityRewrite)."""
    def route(http: str) -> dict:
        cfg = build_config(make_state(virtual_service("r", ["reviews"], namespace="prod", http=http)), SLEEP)
        return vhost(cfg, "9080", f"{REVIEWS}:9080")["routes"][0]
    r = route("""
  - headers: {request: {set: {":authority": set.example, x-a: "1"}, remove: [x-b]}}
    route: [{destination: {host: reviews}, headers: {request: {set: {host: dest.example}}}}]""")
    assert r["route"]["host_rewrite_literal"] == "set.example"
    assert [h["header"]["key"] for h in r["request_headers_to_add"]] == ["x-a"]
    assert r["request_headers_to_remove"] == ["x-b"]
    r = route("""
  - rewrite: {authority: rewrite.example}
    route: [{destination: {host: reviews}, headers: {request: {set: {host: dest.example}}}}]""")
    assert r["route"]["host_rewrite_literal"] == "rewrite.example"
    for twice in ("""
  - rewrite: {authority: rewrite.example}
    headers: {request: {set: {host: set.example}}}
    route: [{destination: {host: reviews}}]""", """
  - headers: {request: {set: {":authority": set.example}, add: {host: add.example}}}
    route: [{destination: {host: reviews}}]"""):
        with pytest.raises(ManifestError) as e:
            load(virtual_service("r", ["reviews"], namespace="prod", http=twice))
        assert "spec.http[0].headers.request" in str(e.value) and "authority" in str(e.value)
    r = route("""
  - route: [{destination: {host: reviews}, headers: {request: {set: {host: dest.example}}}}]""")
    assert r["route"]["host_rewrite_literal"] == "dest.example" and "request_headers_to_add" not in r


def test_a_service_goes_to_the_virtual_service_naming_it_most_specifically():
    """An older VirtualService for *.prod.svc.cluster.local and a newer one for reviews.prod: the
    Service goes to the exact host, whatever the age (model/sidecar.go
    computeWildcardHostVirtualServiceIndex)."""
    st = make_state(virtual_service("wild", ["*.prod.svc.cluster.local"], namespace="prod", http="""
  - name: wild
    route: [{destination: {host: reviews}}]"""))
    st.apply(load(virtual_service("exact", ["reviews"], namespace="prod", http="""
  - name: exact
    route: [{destination: {host: reviews}}]""")))
    cfg = build_config(st, SLEEP)
    assert [r["name"] for r in vhost(cfg, "9080", f"{REVIEWS}:9080")["routes"]] == ["exact"]
