"""Every exercise's checker says right to a right answer, wrong to a wrong one (and which part is
wrong), lists the choices for an answer outside them, and waits for None. Predictions are judged
against the learner's own measurement and always show it. YAML exercises are judged by traffic
through a real lab (the local backend), which they leave as they found it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from meshlab.exercises import EXERCISES, Verdict, check
from _probe_frames import dns_probe, frame, split_probe

STICKY = frame([{"pod": "reviews-v1-a", "version": "v1", "conn": 0}] * 10)
FIRST_V2 = frame([{"pod": "reviews-v2-b", "version": "v2"}, {"pod": "reviews-v1-a", "version": "v1"}])
SLOW = "reviews-v2-b"
LB_RESULTS = {
    "ROUND_ROBIN": frame([{"pod": p, "version": "v1"} for p in ["reviews-v1-a", SLOW] * 10]),
    "RANDOM": frame([{"pod": p, "version": "v1"} for p in ["reviews-v1-a"] * 11 + [SLOW] * 9]),
    "LEAST_REQUEST": frame([{"pod": p, "version": "v1"} for p in ["reviews-v1-a"] * 17 + [SLOW] * 3]),
}
SEEN = {p: frame([{"pod": f"reviews-{v}-a", "version": v, "subset": v}] * 5)
        for p, v in {"/wpcatalog/items": "v2", "/wpcatalogue": "v2", "/reviews/1": "v1", "/": "v1"}.items()}
NC = frame([{"status": 503, "flags": "NC", "pod": "", "details": "cluster_not_found"}] * 5)
SPLIT = split_probe(200, 0.2, seed=7)                   # v2 ≈ 40 of 200
V2 = int((SPLIT["subset"] == "v2").sum())

# exercise id -> (right answer, wrong answer, data)
CASES = {
    "0.predict-versions": ("both", "one", {"probe": split_probe(20, 0.5, seed=1)}),
    "0.first-version": ("v2", "v1", {"probe": FIRST_V2}),
    "0.columns": (["version", "pod"], ["status", "pod"], {}),
    "1.keepalive-pods": (1, 2, {"probe": STICKY}),
    "1.balances": ("connections", "requests", {}),
    "2.predict-meshed-pods": (2, 1, {"probe": split_probe(30, 0.5, seed=1)}),
    "2.cluster-name": ("outbound|9080||ratings.bookinfo.svc.cluster.local",
                       "outbound|9080||ratings.default.svc.cluster.local", {}),
    "2.slow-pod-policy": ("least_request", "ROUND_ROBIN", {"results": LB_RESULTS, "slow_pod": SLOW}),
    "3.predict-v2-count": (V2, 120, {"probe": SPLIT}),
    "3.weights": ({"v1": 90, "v2": 10}, {"v1": 10, "v2": 90}, {}),
    "3.wpcatalog": ({"/wpcatalog/items": "v2", "/wpcatalogue": "v2", "/reviews/1": "v1", "/": "v1"},
                    {"/wpcatalog/items": "v2", "/wpcatalogue": "v1", "/reviews/1": "v1", "/": "v1"},
                    {"seen": SEEN}),
    "4.predict-no-service": ({"inside": "dns error", "gateway": "503 NC"}, {"inside": "503", "gateway": "503 NC"},
                             {"inside": dns_probe(5), "outside": NC}),
    "4.predict-undefined-subset": ("503 NC", "503 UH", {"probe": NC}),
    "4.flags": ({"no-service": "NC", "undefined-subset": "nc", "empty-subset": "UH"},
                {"no-service": "NR", "undefined-subset": "NC", "empty-subset": "UH"}, {}),
    "4.safe-order": (["DestinationRule", "VirtualService"], ["VirtualService", "DestinationRule"], {}),
    "4.seed": ("b", "a", {}),
    "5.predict-dead-pod": (0, 10, {"probe": frame([{"pod": "a", "attempts": 1}] * 24 + [{"pod": "a", "attempts": 2}] * 6)}),
    "5.predict-per-try": ("504", "200", {"probe": frame([{"pod": "a"}] * 5 + [
        {"status": 504, "flags": "UT", "details": "upstream_per_try_timeout"}] * 3)}),
    "5.predict-post": ("more than 20", "exactly 20", {"probe": frame([{"pod": "a"}] * 20),
                                                      "log": pd.DataFrame({"request_id": [f"r{i % 20}" for i in range(31)]})}),
    "5.default-retries": ({"attempts": 3, "retries 503": False}, {"attempts": 2, "retries 503": False},
                          {"config": {"routes": [{"route_name": "default", "num_retries": 2,
                                                  "retriable_status_codes": "-"}]}}),
    "6.predict-overflow": ("most", "none", {"probe": frame([{"pod": "a"}] * 5 + [
        {"status": 503, "flags": "UO", "details": "upstream_reset_before_response_started{overflow}"}] * 35)}),
    "6.predict-all-ejected": ("503 UH", "503", {"probe": frame([{"pod": "a", "status": 503}] * 10 + [
        {"status": 503, "flags": "UH", "details": "no_healthy_upstream"}] * 20)}),
    "6.gateway-errors": ("consecutive5xxErrors", "consecutiveGatewayErrors", {}),
}
# judged by traffic through a lab: see the tests at the end
ON_A_LAB = {"3.write-destinationrule", "4.fix-with-serviceentry", "5.fix-slow-pod", "6.fix-pool"}

# chapters 7 and 8
RACED = frame([{"pod": "reviews-v1-a", "version": "v1"}, {"status": 503, "flags": "UC", "pod": "",
              "details": "upstream_reset_before_response_started{connection_termination}"}] * 6)
CANARY = frame([{"pod": "reviews-v1-a", "version": "v1", "subset": "v1"},
                {"pod": "reviews-v2-b", "version": "v2", "subset": "v2"}] * 10)
CASES.update({
    "7.predict-quiet-traffic": ("503 UC", "200", {"probe": RACED}),
    "7.reset-hides": ("b", "a", {}),
    "8.predict-canary-pods": (2, 1, {"probe": CANARY}),
    "8.failover-needs": ("b", "c", {}),
})
ON_A_LAB |= {"7.fix-idle-timeout", "8.hash-cookie"}


def test_quiet_traffic_prediction_wants_the_flag_and_accepts_200_only_when_all_worked():
    assert not check("7.predict-quiet-traffic", "503", probe=RACED)
    assert "flag" in check("7.predict-quiet-traffic", "503", probe=RACED).message
    assert check("7.predict-quiet-traffic", "200", probe=frame([{"pod": "reviews-v1-a"}] * 4))
    assert not check("7.predict-quiet-traffic", "503 NC", probe=RACED)

# chapter 9
CASES.update({
    "9.predict-segment": ("v1", "v2", {"probe": frame([{"pod": "reviews-v1-a", "version": "v1"}] * 5)}),
    "9.predict-missing-backend": ("500 NC", "503 NC", {"probe": frame([{"status": 500, "flags": "NC", "pod": "",
                                                                       "details": "cluster_not_found"}] * 5)}),
})
ON_A_LAB |= {"9.convert"}


def test_every_registered_exercise_has_a_case():
    assert set(CASES) | ON_A_LAB == set(EXERCISES)


@pytest.mark.parametrize("ex", sorted(CASES))
def test_right_wrong_and_unanswered(ex):
    right, wrong, data = CASES[ex]
    r = check(ex, right, **data)
    assert r.ok is True and bool(r) and "Hint" not in r.message
    w = check(ex, wrong, **data)
    assert w.ok is False and not w
    waiting = check(ex, None, **data)
    assert waiting.ok is None
    if EXERCISES[ex].kind == "prediction":
        # a prediction is checked against the measurement, and always shows it
        assert "Measured:" in r.message and "Measured:" in w.message and "Measured:" in waiting.message
        assert "As you predicted" in r._repr_html_() and "Not what you predicted" in w._repr_html_()
    else:
        assert "Hint:" in w.message and EXERCISES[ex].explanation not in w.message
        assert "Not yet" in w._repr_html_() and "Right" in r._repr_html_()


def test_measured_answers_follow_the_learners_own_data():
    # the same answer is right for one probe and wrong for another
    spread = split_probe(30, 0.5, seed=1)
    assert not check("1.keepalive-pods", 1, probe=spread)
    assert check("1.keepalive-pods", spread.pod.nunique(), probe=spread)
    flipped = dict(LB_RESULTS, RANDOM=frame([{"pod": "reviews-v1-a", "version": "v1"}] * 20))
    assert check("2.slow-pod-policy", "RANDOM", results=flipped, slow_pod=SLOW)
    assert not check("2.slow-pod-policy", "LEAST_REQUEST", results=flipped, slow_pod=SLOW)
    upper = dict(SEEN, **{"/wpcatalogue": SEEN["/"]})     # a lab where /wpcatalogue went to v1
    assert check("3.wpcatalog", CASES["3.wpcatalog"][1], seen=upper)
    assert check("0.predict-versions", "one", probe=STICKY)


def test_a_guess_inside_the_confidence_band_is_as_good_as_the_measurement():
    assert check("3.predict-v2-count", 40, probe=SPLIT)           # "exactly 40?" — inside the band
    v = check("3.predict-v2-count", 0, probe=SPLIT)
    assert not v and f"v2 got {V2} of 200" in v.message and "95 %" in v.message


def test_a_wrong_part_is_named_and_the_right_parts_too():
    v = check("3.wpcatalog", CASES["3.wpcatalog"][1], seen=SEEN)
    assert "Right: /wpcatalog/items, /reviews/1, /." in v.message and "Not yet: /wpcatalogue." in v.message
    v = check("4.flags", {"no-service": "NR", "undefined-subset": "NC", "empty-subset": "UH"})
    assert "Not yet: no-service." in v.message and "undefined-subset, empty-subset" in v.message
    v = check("2.cluster-name", "outbound|9080||ratings.default.svc.cluster.local")
    assert "Not yet: host (FQDN)." in v.message and "ratings.bookinfo" not in v.message
    v = check("2.cluster-name", "outbound|9080|ratings.bookinfo.svc.cluster.local")
    assert "4 fields" in v.message
    v = check("0.columns", ("status", "pod"))
    assert "`status` does not say who answered" in v.message
    v = check("3.weights", {"v1": 80, "v2": 20})
    assert "v2 gets 20 %" in v.message
    v = check("4.predict-no-service", {"inside": "dns", "gateway": "503 UH"}, inside=dns_probe(3), outside=NC)
    assert "Right: inside." in v.message and "Not yet: gateway." in v.message
    v = check("4.predict-undefined-subset", "503", probe=NC)
    assert not v and "flag" in v.message


def test_an_answer_outside_the_choices_lists_them():
    assert '"v1", "v2"' in check("0.first-version", "v3", probe=FIRST_V2).message
    assert '"request", "connection"' in check("1.balances", "packets").message
    msg = check("2.slow-pod-policy", "FASTEST", results=LB_RESULTS, slow_pod=SLOW).message
    assert all(p in msg for p in LB_RESULTS)
    assert '"v1", "v2"' in check("3.wpcatalog", dict(CASES["3.wpcatalog"][0], **{"/": "v3"}), seen=SEEN).message
    msg = check("4.flags", {"no-service": "XY", "undefined-subset": "NC", "empty-subset": "UH"}).message
    assert "'XY' is not an Envoy response flag" in msg
    assert "DestinationRule" in check("4.safe-order", ["Service", "VirtualService"]).message
    assert "the columns are" in check("0.columns", ["who", "pod"]).message
    assert '"one", "both"' in check("0.predict-versions", "three", probe=STICKY).message


def test_right_answers_in_another_plausible_form_are_right():
    assert check("3.weights", (90, 10)) and check("3.weights", [90, 10])   # (v1, v2)
    assert check("3.weights", {"V1": 90, "V2": 10}) and check("3.weights", {"v1": 0.9, "v2": 0.1})
    assert not check("3.weights", (10, 90))
    assert check("4.flags", {"no-service": "503 NC", "undefined-subset": "nc", "empty-subset": "uh "})
    assert check("4.flags", {"No Service": "NC", "undefined_subset": "NC", "empty-subset": "UH"})
    assert check("4.safe-order", ("destination rule", "virtual-service"))
    assert check("4.safe-order", ["DR", "vs"]) and not check("4.safe-order", ["VS", "DR"])
    assert check("3.wpcatalog", {" /wpcatalog/items": "V2", "/wpcatalogue": "v2", "/reviews/1": "v1", "/": "V1"},
                 seen=SEEN)
    assert check("0.first-version", " V2 ", probe=FIRST_V2) and check("1.balances", "Connection")
    assert check("2.slow-pod-policy", "least request", results=LB_RESULTS, slow_pod=SLOW)
    assert check("1.keepalive-pods", "1", probe=STICKY) and not check("1.keepalive-pods", " 3 ", probe=STICKY)
    assert check("4.predict-no-service", {"Inside": "DNS", "outside": "503 nc"}, inside=dns_probe(2), outside=NC)


def test_a_number_that_is_not_finite_is_no_answer():
    """NaN compares false with everything, so a check written as `if not <ok>: not yet` let it pass."""
    for bad in (float("nan"), float("inf")):
        v = check("3.weights", {"v1": bad, "v2": 1})
        assert v.ok is False and "finite" in v.message, v.message
        v = check("3.weights", (90, bad))
        assert v.ok is False and "finite" in v.message, v.message


def test_wrong_shape_gets_a_message_not_a_traceback():
    v = check("3.weights", 90)
    assert v.ok is False and "dict" in v.message
    v = check("4.flags", ["NC", "NC", "UH"])
    assert v.ok is False and "dict" in v.message
    v = check("1.keepalive-pods", "one", probe=STICKY)
    assert v.ok is False and "number" in v.message
    v = check("4.seed", "d")
    assert v.ok is False and "letter" in v.message
    v = check("4.predict-undefined-subset", "no cluster", probe=NC)
    assert v.ok is False and "404 NR" in v.message


def test_a_weight_for_a_subset_the_destinationrule_lacks_names_it_and_the_subsets_that_exist():
    """Chapter 3's DestinationRule defines the subsets the weights are for: an answer naming another
    says which name is no subset and which subsets there are (not only "answer with both")."""
    from meshlab.manifests import load
    dr = next(o for o in load(str(NOTEBOOKS / "manifests" / "03-subsets" / "destinationrule-subsets.yaml"))
              if o.kind == "DestinationRule")
    subsets = [s.name for s in dr.spec.subsets]
    v = check("3.weights", {"v1": 90, "v3": 10})
    assert v.ok is False
    assert "`v3` is not a subset" in v.message and f"DestinationRule `{dr.name}`" in v.message
    assert all(f"`{s}`" in v.message for s in subsets), (subsets, v.message)
    # one subset left out: named too, with the one given accepted as a subset
    v = check("3.weights", {"v1": 90})
    assert v.ok is False and "`v2`" in v.message and "not a subset" not in v.message


def test_missing_data_and_unknown_exercise_are_clear_errors():
    with pytest.raises(TypeError, match="probe="):
        check("1.keepalive-pods", 1)
    with pytest.raises(KeyError, match="no exercise"):
        check("9.nope", 1)


def test_verdict_repr_is_readable():
    assert repr(Verdict("x", True, "ok")).startswith("✅")
    assert repr(Verdict("x", False, "no", kind="prediction")).startswith("🤔")


def test_code_in_messages_renders_as_code():
    html = check("0.first-version", None, probe=FIRST_V2)._repr_html_()
    assert "<code>first.head()</code>" in html and "`" not in html


def test_the_first_version_hint_points_at_the_table():
    hint = EXERCISES["0.first-version"].hint
    assert "table" in hint and "chart" not in hint


# ------------------------------------------------------------------------------ YAML, on a real lab

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ROUTE = str(NOTEBOOKS / "manifests" / "03-subsets" / "virtualservice-80-20.yaml")
GOOD_DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""
GOOD_SE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector:
    labels: {app: reviews}
"""


def _state(lab) -> list:
    return sorted((o.key, o.to_manifest().get("spec")) for o in lab.objects() if o.kind != "Namespace")


@pytest.mark.slow
def test_write_the_destinationrule_is_judged_by_traffic_and_leaves_the_lab_alone():
    from meshlab import Lab
    with Lab() as lab:
        lab.apply(str(NOTEBOOKS / "manifests" / "01-service"))
        lab.apply(str(NOTEBOOKS / "manifests" / "03-subsets" / "destinationrule-subsets.yaml"))
        before = _state(lab)
        right = check("3.write-destinationrule", GOOD_DR, lab=lab, route=ROUTE)
        assert right.ok is True and "all 100 requests got 200" in right.message, right
        assert _state(lab) == before
        missing = check("3.write-destinationrule", GOOD_DR.replace("  - {name: v2, labels: {version: v2}}\n", ""),
                        lab=lab, route=ROUTE)
        assert missing.ok is False and "503 NC" in missing.message and "subset v2" in missing.message, missing
        crossed = check("3.write-destinationrule", GOOD_DR.replace("{version: v2}}", "{version: v1}}"),
                        lab=lab, route=ROUTE)
        assert crossed.ok is False and "subset v2 reached pods of another version" in crossed.message, crossed
        broken = check("3.write-destinationrule", GOOD_DR.replace("subsets:", "subsetz:"), lab=lab, route=ROUTE)
        assert broken.ok is False and "spec.subsetz" in broken.message and "Hint" not in broken.message
        wrong_kind = check("3.write-destinationrule", GOOD_SE, lab=lab, route=ROUTE)
        assert wrong_kind.ok is False and "asks for a DestinationRule" in wrong_kind.message
        assert _state(lab) == before        # whatever the answer, the lab is as it was


@pytest.mark.slow
def test_fix_case_1_with_a_serviceentry_is_judged_through_the_gateway():
    from meshlab import Lab
    with Lab() as lab:
        lab.apply(str(NOTEBOOKS / "manifests" / "01-service"))
        lab.apply(str(NOTEBOOKS / "manifests" / "03-subsets" / "destinationrule-subsets.yaml"))
        lab.apply(str(NOTEBOOKS / "manifests" / "04-503" / "gateway.yaml"))
        service = str(NOTEBOOKS / "manifests" / "01-service" / "reviews-service.yaml")
        with_service = check("4.fix-with-serviceentry", GOOD_SE, lab=lab)
        assert with_service.ok is False and "belongs right after case 1" in with_service.message
        lab.delete(service)
        before = _state(lab)
        right = check("4.fix-with-serviceentry", GOOD_SE, lab=lab)
        assert right.ok is True, right
        assert "Through the gateway, all 20 requests got 200" in right.message
        assert "by name, all 5 requests got dns error" in right.message   # a ServiceEntry makes no DNS name
        no_pods = check("4.fix-with-serviceentry", GOOD_SE.replace("app: reviews", "app: ratings"), lab=lab)
        assert no_pods.ok is False and "503 UH" in no_pods.message
        other_host = check("4.fix-with-serviceentry", GOOD_SE.replace(".default.", ".prod."), lab=lab)
        assert other_host.ok is False and "503 NC" in other_host.message
        back = check("4.fix-with-serviceentry", open(service).read(), lab=lab)
        assert back.ok is False and "without one" in back.message
        assert _state(lab) == before


IDLE_DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      http: {idleTimeout: 25ms}
"""


@pytest.mark.slow
def test_the_idle_timeout_fix_is_judged_by_quiet_traffic_through_real_envoy():
    from meshlab import Lab
    with Lab() as lab:
        lab.apply(str(NOTEBOOKS / "manifests" / "01-service" / "reviews-service.yaml"))
        lab.apply(str(NOTEBOOKS / "manifests" / "07-keepalive" / "reviews-keepalive.yaml"))
        lab.apply(str(NOTEBOOKS / "manifests" / "07-keepalive" / "virtualservice-retry-reset.yaml"))
        before = _state(lab)
        right = check("7.fix-idle-timeout", IDLE_DR, lab=lab)
        assert right.ok is True and "after 25 ms" in right.message, right
        assert "got 503" not in right.message or "1 got 503 UC" in right.message, right    # a stall, at most
        # below the app's 175 ms, but not by the 50 ms round trip: judged from the objects
        edge = check("7.fix-idle-timeout", IDLE_DR.replace("25ms", "150ms"), lab=lab)
        assert edge.ok is False and "too close to the app's 175 ms" in edge.message, edge
        # Envoy's idle timeout above the app's: the race is back (retries of the lab's own
        # VirtualService are off while the check measures, so they cannot hide it)
        late = check("7.fix-idle-timeout", IDLE_DR.replace("25ms", "1h"), lab=lab)
        assert late.ok is False and "503 UC" in late.message and "longer than the app does" in late.message, late
        none = check("7.fix-idle-timeout", IDLE_DR.split("  trafficPolicy")[0], lab=lab)
        assert none.ok is False and "503 UC" in none.message and "no idleTimeout" in none.message, none
        wrong_kind = check("7.fix-idle-timeout", open(NOTEBOOKS / "manifests" / "07-keepalive" /
                                                      "virtualservice-timeout.yaml").read(), lab=lab)
        assert wrong_kind.ok is False and "asks for a DestinationRule" in wrong_kind.message
        assert _state(lab) == before


COOKIE_DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: session, ttl: 0s}
"""


@pytest.mark.slow
def test_the_session_cookie_hash_is_judged_by_three_sessions_through_real_envoy():
    from meshlab import Lab
    with Lab() as lab:
        lab.apply(str(NOTEBOOKS / "manifests" / "01-service"))
        before = _state(lab)
        right = check("8.hash-cookie", COOKIE_DR, lab=lab)
        assert right.ok is True and right.message.startswith("Each session stuck to one pod"), right
        # hashing a header the sessions do not send: Envoy falls back to its load balancer
        header = check("8.hash-cookie", COOKIE_DR.replace("httpCookie: {name: session, ttl: 0s}",
                                                          "httpHeaderName: end-user"), lab=lab)
        assert header.ok is False and "Envoy does not hash on the session cookie yet" in header.message, header
        assert _state(lab) == before


@pytest.mark.slow
def test_retries_around_a_slow_pod_and_a_pool_sized_for_8_are_judged_by_traffic():
    from meshlab import Lab
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{timeout: 300ms, retries: RETRIES, route: [{destination: {host: reviews}}]}]
"""
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {connectionPool: POOL}
"""
    with Lab() as lab:
        lab.apply(str(NOTEBOOKS / "manifests" / "01-service"))
        lab.set_pod("reviews-v2", latency_ms=400)
        before = _state(lab)
        right = check("5.fix-slow-pod", vs.replace("RETRIES", "{attempts: 2, perTryTimeout: 80ms, retryOn: gateway-error}"),
                      lab=lab)
        assert right.ok is True and "all 20 requests got 200" in right.message, right
        untimed = check("5.fix-slow-pod", vs.replace("RETRIES", "{attempts: 2, perTryTimeout: 80ms}"), lab=lab)
        assert untimed.ok is False and "504 UT" in untimed.message, untimed
        longer = check("5.fix-slow-pod", vs.replace("300ms", "2s").replace("RETRIES", "{attempts: 1}"), lab=lab)
        assert longer.ok is False and "keeps it at 300ms" in longer.message, longer
        assert _state(lab) == before
        for pod in lab.pods()["name"]:
            lab.set_pod(pod, latency_ms=50)
        small = check("6.fix-pool", dr.replace("POOL", "{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 2}}"),
                      lab=lab)
        assert small.ok is False and "503 UO" in small.message, small
        sized = check("6.fix-pool", dr.replace("POOL", "{tcp: {maxConnections: 8}, http: {http1MaxPendingRequests: 8}}"),
                      lab=lab)
        assert sized.ok is True and "all 48 requests got 200" in sized.message, sized
        unlimited = check("6.fix-pool", dr.replace("  trafficPolicy: {connectionPool: POOL}\n", ""), lab=lab)
        assert unlimited.ok is False and "without connectionPool limits" in unlimited.message, unlimited
        assert _state(lab) == before
