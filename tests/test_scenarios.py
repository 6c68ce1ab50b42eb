"""The traffic scenarios of the local backend (issue 3), end to end through `meshlab.Lab`.

Real pods, real Envoy sidecar/gateway configured by meshlab's mini control plane; every status
and response flag asserted here was produced by Envoy itself and read back from its access log.
Statistical checks use seeded probes and binomial bounds of ±5 standard deviations.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest

from meshlab.lab import Lab

from conftest import REFERENCE
from _manifests import SEED_VS_DR, deployment, destination_rule, docs, gateway, namespace, service, virtual_service

SAMPLES = REFERENCE / "istio-samples"

BASE = docs(
    deployment("reviews", "v1", replicas=2),
    deployment("reviews", "v2"),
    service("reviews"),
    deployment("ratings", "v1", name="ratings", replicas=3),
    service("ratings"),
)

DR_REVIEWS = destination_rule("reviews", ["v1", "v2", "v9"])

REVIEWS_URL = "http://reviews:9080/"
RATINGS_URL = "http://ratings:9080/"
RATINGS_CLUSTER = "outbound|9080||ratings.default.svc.cluster.local"


@pytest.fixture(scope="module")
def lab():
    with Lab(seed=7) as lab:
        lab.apply(BASE)
        yield lab


@pytest.fixture(autouse=True)
def clean_istio_objects(lab):
    """Each scenario starts with no VirtualService/DestinationRule/Gateway and healthy pods."""
    yield
    istio = [o for o in lab.objects() if o.kind in ("VirtualService", "DestinationRule", "Gateway")]
    if istio:
        lab.delete(istio)
    for p in lab.pods().itertuples():
        if p.phase != "Running" or not p.ready:
            lab.restart_pod(p.name, namespace=p.namespace)


def within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# ------------------------------------------------------------------------------------ routing

def test_weighted_split_80_20(lab):
    lab.apply(DR_REVIEWS + "---\n" + virtual_service("reviews", ["reviews"], """
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"""))
    n = 600
    df = lab.probe(REVIEWS_URL, n=n, seed=1)
    assert (df.status == 200).all()
    versions = Counter(df.version)
    assert set(versions) == {"v1", "v2"}
    assert within(versions["v2"], n, 0.2), versions
    assert set(df.cluster) == {"outbound|9080|v1|reviews.default.svc.cluster.local",
                               "outbound|9080|v2|reviews.default.svc.cluster.local"}
    # the Envoy columns come from the access log: subset/cluster agree with the pod that answered
    assert (df[df.version == "v2"].subset == "v2").all()


def test_seed_prefix_to_v2_rest_to_v1(lab):
    """The learner's question: /wpcatalog → v2, everything else → v1."""
    lab.apply(DR_REVIEWS + "---\n" + virtual_service("reviews-route", ["reviews.default.svc.cluster.local"], """
  - name: reviews-v2-routes
    match: [{uri: {prefix: /wpcatalog}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
  - name: reviews-v1-route
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]
"""))
    cat = lab.probe("http://reviews:9080/wpcatalog/items", n=30, seed=2)
    rest = lab.probe("http://reviews:9080/other", n=30, seed=3)
    assert set(cat.version) == {"v2"} and set(cat.route) == {"reviews-v2-routes"}
    assert set(rest.version) == {"v1"} and set(rest.route) == {"reviews-v1-route"}
    assert rest.pod.nunique() == 2, "both v1 pods serve"


def test_header_match(lab):
    lab.apply(DR_REVIEWS + "---\n" + virtual_service("reviews", ["reviews"], """
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""))
    jason = lab.probe(REVIEWS_URL, n=20, headers={"end-user": "jason"}, seed=4)
    other = lab.probe(REVIEWS_URL, n=20, headers={"end-user": "maria"}, seed=5)
    assert set(jason.version) == {"v2"}
    assert set(other.version) == {"v1"}


def test_unmatched_path_under_a_virtual_service_is_404_nr(lab):
    lab.apply(DR_REVIEWS + "---\n" + virtual_service("reviews", ["reviews"], """
  - match: [{uri: {prefix: /wpcatalog}}]
    route: [{destination: {host: reviews, subset: v2}}]
"""))
    df = lab.probe("http://reviews:9080/elsewhere", n=5, seed=6)
    assert set(df.status) == {404} and set(df["flags"]) == {"NR"}
    assert set(df.details) == {"route_not_found"}


# ------------------------------------------------------------------------------------ 503s

def test_undefined_subset_is_503_nc(lab):
    lab.apply(DR_REVIEWS + "---\n" + virtual_service("reviews", ["reviews"],
                                        "  - route: [{destination: {host: reviews, subset: v3}}]\n"))
    df = lab.probe(REVIEWS_URL, n=5, seed=7)
    assert set(df.status) == {503} and set(df["flags"]) == {"NC"}
    assert set(df.details) == {"cluster_not_found"}


def test_subset_selecting_no_pods_is_503_uh(lab):
    lab.apply(DR_REVIEWS + "---\n" + virtual_service("reviews", ["reviews"],
                                        "  - route: [{destination: {host: reviews, subset: v9}}]\n"))
    df = lab.probe(REVIEWS_URL, n=5, seed=8)
    assert set(df.status) == {503} and set(df["flags"]) == {"UH"}
    assert set(df.details) == {"no_healthy_upstream"}


def test_gateway_route_to_a_host_without_service_is_503_nc(lab):
    lab.apply(docs(gateway("gw"), virtual_service("edge", ["shop.example.com"], gateways=["gw"], http="""
  - match: [{uri: {prefix: /ghost}}]
    route: [{destination: {host: ghost, port: {number: 9080}}}]
  - route: [{destination: {host: reviews, port: {number: 9080}}}]
""")))
    ghost = lab.probe("http://shop.example.com/ghost", n=5, via="gateway", seed=9)
    assert set(ghost.status) == {503} and set(ghost["flags"]) == {"NC"}
    assert set(ghost.cluster) == {""}, "no cluster of that name exists, so none is logged"
    ok = lab.probe("http://shop.example.com/", n=5, via="gateway", seed=10)
    assert set(ok.status) == {200} and set(ok.proxy) == {"gateway"}
    unknown_host = lab.probe("http://other.example.com/", n=3, via="gateway", seed=11)
    assert set(unknown_host.status) == {404} and set(unknown_host["flags"]) == {"NR"}


def test_fault_abort_is_fi_and_missing_percentage_never_fires(lab):
    lab.apply(virtual_service("ratings", ["ratings"], """
  - match: [{uri: {prefix: /always}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
  - fault: {abort: {httpStatus: 503}}
    route: [{destination: {host: ratings}}]
"""))
    df = lab.probe("http://ratings:9080/always", n=10, seed=12)
    assert set(df.status) == {503} and set(df["flags"]) == {"FI"}
    assert set(df.details) == {"fault_filter_abort"}
    never = lab.probe("http://ratings:9080/", n=10, seed=13)
    assert set(never.status) == {200}


def test_route_timeout_is_504_ut(lab):
    pod = lab.pods().query("name.str.startswith('ratings')").name.tolist()
    for p in pod:
        lab.set_pod(p, latency_ms=400)
    try:
        lab.apply(virtual_service("ratings", ["ratings"], """
  - timeout: 100ms
    route: [{destination: {host: ratings}}]
"""))
        df = lab.probe(RATINGS_URL, n=4, seed=14)
        assert set(df.status) == {504} and set(df["flags"]) == {"UT"}
        assert set(df.details) == {"response_timeout"}  # Envoy 1.40 (istio-semantics.md says upstream_response_timeout)
    finally:
        for p in pod:
            lab.set_pod(p, latency_ms=0)


def test_killed_pod_is_hidden_by_default_retries_then_uf_urx(lab):
    pods = sorted(lab.pods().query("name.str.startswith('ratings')").name)
    envoy = lab.backend.envoy("sidecar")
    retries = f"cluster.{RATINGS_CLUSTER}.upstream_rq_retry"
    before = envoy.stats(r"upstream_rq_retry$").get(retries, 0)
    lab.kill_pod(pods[0], notready_after=None)  # stays in EDS: Envoy keeps choosing it
    df = lab.probe(RATINGS_URL, n=60, seed=15)
    assert set(df.status) == {200}, "previous_hosts + 2 retries hide one dead pod"
    assert pods[0] not in set(df.pod)
    assert envoy.stats(r"upstream_rq_retry$")[retries] > before, "Envoy retried the dead pod"
    assert (df["attempts"] > 1).any()
    for p in pods[1:]:
        lab.kill_pod(p, notready_after=None)
    dead = lab.probe(RATINGS_URL, n=5, seed=16)
    assert set(dead.status) == {503}
    # Envoy 1.40 writes "URX,UF" (istio-semantics.md and older docs show "UF,URX")
    assert {frozenset(f.split(",")) for f in dead["flags"]} == {frozenset({"UF", "URX"})}
    assert all(d.startswith("upstream_reset_before_response_started{remote_connection_failure")
               for d in dead.details), set(dead.details)
    assert (dead["attempts"] == 3).all()


def test_circuit_breaker_overflow_is_503_uo(lab):
    pods = lab.pods().query("name.str.startswith('ratings')").name.tolist()
    for p in pods:
        lab.set_pod(p, latency_ms=300)
    try:
        lab.apply(destination_rule("ratings", traffic_policy="{connectionPool: {tcp: {maxConnections: 1}, "
                                                             "http: {http1MaxPendingRequests: 1, http2MaxRequests: 1}}}"))
        df = lab.probe(RATINGS_URL, n=24, concurrency=8, seed=17)
        uo = df[df["flags"] == "UO"]
        assert len(uo) > 0 and set(uo.status) == {503}
        assert (df.status == 200).any()
        assert set(uo.details) == {"upstream_reset_before_response_started{overflow}"}
        assert set(df.status) == {200, 503} and set(df[df.status != 200]["flags"]) == {"UO"}, "only overflows fail"
    finally:
        for p in pods:
            lab.set_pod(p, latency_ms=0)


def test_outlier_detection_ejects_a_failing_pod(lab):
    pods = sorted(lab.pods().query("name.str.startswith('ratings')").name)
    bad = pods[0]
    lab.set_pod(bad, error_rate=1.0)
    try:
        lab.apply(destination_rule("ratings", traffic_policy="{outlierDetection: {consecutive5xxErrors: 3, interval: 1s, "
                                                             "baseEjectionTime: 60s, maxEjectionPercent: 100}}"))
        df = lab.probe(RATINGS_URL, n=90, seed=18)
        errors = df[df.status >= 500]
        # the app's own 5xx pass through (not retried since Istio 1.24) until the 3rd ejects it;
        # the ejection is made on Envoy's main thread, so a request may slip in before the worker
        # sees it
        assert 3 <= len(errors) <= 5, len(errors)
        assert set(errors.pod) == {bad} and set(errors["flags"]) == {"-"}
        last_error = errors.seq.max()
        assert bad not in set(df[df.seq > last_error].pod)
        status = lab.backend.envoy("sidecar").clusters()
        flagged = [h for c in status["cluster_statuses"]
                   if c["name"] == "outbound|9080||ratings.default.svc.cluster.local"
                   for h in c.get("host_statuses", []) if h["health_status"].get("failed_outlier_check")]
        assert len(flagged) == 1
    finally:
        lab.set_pod(bad, error_rate=0.0)


def test_round_robin_is_even(lab):
    lab.apply(destination_rule("ratings", traffic_policy="{loadBalancer: {simple: ROUND_ROBIN}}"))
    df = lab.probe(RATINGS_URL, n=90, seed=19)
    counts = Counter(df.pod)
    assert len(counts) == 3 and max(counts.values()) - min(counts.values()) <= 1, counts


def test_consistent_hash_keeps_a_user_on_one_pod(lab):
    spread = lab.probe(RATINGS_URL, n=30, headers={"x-user": "alice"}, seed=25)
    assert spread.pod.nunique() > 1, "without a DR, LEAST_REQUEST spreads one user's requests"
    lab.apply(destination_rule("ratings", traffic_policy="{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}"))
    for user in ("alice", "bob", "carol"):
        df = lab.probe(RATINGS_URL, n=15, headers={"x-user": user}, seed=26)
        assert set(df.status) == {200} and df.pod.nunique() == 1, (user, set(df.pod))


def test_fault_delay_is_di_and_redirect_is_envoys_own(lab):
    lab.apply(virtual_service("ratings", ["ratings"], """
  - match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 200ms, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new}
  - route: [{destination: {host: ratings}}]
"""))
    slow = lab.probe("http://ratings:9080/slow", n=3, seed=27)
    assert set(slow.status) == {200} and set(slow["flags"]) == {"DI"}
    assert (slow.latency_ms >= 150).all()  # Envoy held each request ~200 ms (timer slack allowed)
    moved = lab.probe("http://ratings:9080/old", n=2, seed=28)
    assert set(moved.status) == {301} and set(moved.pod) == {""}


def _via_sidecar(lab, host: str, port: int, path: str) -> tuple[int, dict]:
    """One raw request through the client sidecar, returning the app's JSON echo."""
    import http.client
    import json

    from meshlab._ports import host_port

    ip = lab.backend.reconciler.proxies["sidecar"].identity.ip
    conn = http.client.HTTPConnection(ip, host_port(port), timeout=10)
    try:
        conn.request("GET", path, headers={"host": f"{host}:{port}"})
        r = conn.getresponse()
        body = r.read()
        return r.status, (json.loads(body) if r.status == 200 else {})
    finally:
        conn.close()


def test_rewrite_and_mirror_reach_the_pods(lab):
    lab.apply(DR_REVIEWS + "---\n" + virtual_service("reviews", ["reviews"], """
  - match: [{uri: {prefix: /legacy}}]
    rewrite: {uri: /v2, authority: reviews.internal}
    route: [{destination: {host: reviews, subset: v1}}]
  - mirror: {host: reviews, subset: v2}
    route: [{destination: {host: reviews, subset: v1}}]
"""))
    status, echo = _via_sidecar(lab, "reviews", 9080, "/legacy/items?x=1")
    assert status == 200 and echo["version"] == "v1"
    assert echo["path"] == "/v2/items?x=1" and echo["host"] == "reviews.internal"
    envoy = lab.backend.envoy("sidecar")
    v2 = "cluster.outbound|9080|v2|reviews.default.svc.cluster.local.upstream_rq_completed"
    before = envoy.stats(r"upstream_rq_completed$").get(v2, 0)
    df = lab.probe(REVIEWS_URL, n=10, seed=29)
    assert set(df.version) == {"v1"}, "the client only ever sees the primary's answers"
    deadline = time.monotonic() + 5
    while envoy.stats(r"upstream_rq_completed$").get(v2, 0) - before < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert envoy.stats(r"upstream_rq_completed$").get(v2, 0) - before == 10, "every request mirrored to v2"


# ------------------------------------------------------------------------------------ timing

def test_virtual_service_before_destination_rule_opens_an_nc_window(lab):
    route = virtual_service("reviews", ["reviews"], "  - route: [{destination: {host: reviews, subset: v2}}]\n")
    with lab.probing(REVIEWS_URL, rate=100, seed=20) as run:
        time.sleep(0.2)
        lab.apply(route + "---\n" + DR_REVIEWS, order=["VirtualService", "DestinationRule"], gap=0.5)
        time.sleep(0.3)
    df = run.result()
    nc = df[df["flags"] == "NC"]
    assert len(nc) > 0 and set(nc.status) == {503}
    assert set(df[df.status != 200]["flags"]) == {"NC"}, "the missing cluster is the only failure"
    assert (df[df.t > nc.t.max()].version == "v2").all()
    assert df.version.iloc[-1] == "v2"


def test_istiod_order_has_no_nc_window(lab):
    route = virtual_service("reviews", ["reviews"], "  - route: [{destination: {host: reviews, subset: v2}}]\n")
    with lab.probing(REVIEWS_URL, rate=100, seed=21) as run:
        time.sleep(0.2)
        lab.apply(route + "---\n" + DR_REVIEWS)
        time.sleep(0.3)
    df = run.result()
    assert set(df.status) == {200}
    assert df.version.iloc[-1] == "v2"


# ------------------------------------------------------------------------------------ the seed

SEED_APP = docs(
    namespace("prod"),
    deployment("reviews", "v1", replicas=None, namespace="prod"),
    deployment("reviews", "v2", replicas=None, namespace="prod"),
)
SEED_SERVICE = service("reviews", namespace="prod")
SEED_EDGE = docs(
    gateway("edge", namespace="prod"),
    virtual_service("edge", ["shop.example.com"], namespace="prod", gateways=["edge"], http="""
  - route: [{destination: {host: reviews.prod.svc.cluster.local, subset: v1, port: {number: 9080}}}]
"""))


def test_seed_question_why_the_service_matters():
    """With the Service: the VS/DR route by prefix. Without it: a meshed client cannot even
    resolve the name, and through the gateway Envoy has no cluster for the host: 503 NC."""
    with Lab(seed=5) as lab:
        lab.apply(SEED_APP + "---\n" + SEED_SERVICE + "---\n" + SEED_VS_DR + "---\n" + SEED_EDGE)
        url = "http://reviews.prod.svc.cluster.local:9080"
        assert set(lab.probe(url + "/wpcatalog", n=10, seed=1).version) == {"v2"}
        assert set(lab.probe(url + "/", n=10, seed=2).version) == {"v1"}
        assert set(lab.probe("http://shop.example.com/", n=5, via="gateway", seed=3).status) == {200}
        lab.delete(SEED_SERVICE)
        gone = lab.probe(url + "/", n=3, seed=4)
        assert set(gone.error) == {"dns"} and set(gone.status) == {0}
        edge = lab.probe("http://shop.example.com/", n=5, via="gateway", seed=5)
        assert set(edge.status) == {503} and set(edge["flags"]) == {"NC"}
        names = {c["name"] for c in lab.envoy_config("gateway")["clusters"]}
        assert not any("reviews.prod" in n for n in names), "no Service → no cluster, DR or not"


# ------------------------------------------------------------------------------------ Bookinfo

def test_bookinfo_reviews_80_20(reference_dir):
    files = ["bookinfo__platform__kube__bookinfo.yaml", "bookinfo__networking__destination-rule-all.yaml",
             "bookinfo__networking__virtual-service-reviews-80-20.yaml",
             "bookinfo__networking__bookinfo-gateway.yaml"]
    with Lab(seed=3) as lab:
        lab.apply([SAMPLES / f for f in files])
        n = 500
        df = lab.probe("http://reviews:9080/reviews/0", n=n, seed=22)
        assert (df.status == 200).all()
        counts = Counter(df.version)
        assert set(counts) == {"v1", "v2"}
        assert within(counts["v2"], n, 0.2), counts
        page = lab.probe("http://bookinfo.example.com/productpage", n=5, via="gateway", seed=23)
        assert set(page.status) == {200}
        assert set(page.cluster) == {"outbound|9080||productpage.default.svc.cluster.local"}
        elsewhere = lab.probe("http://bookinfo.example.com/nothing", n=3, via="gateway", seed=24)
        assert set(elsewhere.status) == {404} and set(elsewhere["flags"]) == {"NR"}
