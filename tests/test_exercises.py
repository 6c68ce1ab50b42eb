"""Every exercise's checker says right to a right answer, wrong to a wrong one, and waits for None."""

from __future__ import annotations

import pytest

from meshlab.exercises import EXERCISES, Verdict, check
from _probe_frames import frame, split_probe

STICKY = frame([{"pod": "reviews-v1-a", "version": "v1", "conn": 0}] * 10)
FIRST_V2 = frame([{"pod": "reviews-v2-b", "version": "v2"}, {"pod": "reviews-v1-a", "version": "v1"}])
SLOW = "reviews-v2-b"
LB_RESULTS = {
    "ROUND_ROBIN": frame([{"pod": p, "version": "v1"} for p in ["reviews-v1-a", SLOW] * 10]),
    "RANDOM": frame([{"pod": p, "version": "v1"} for p in ["reviews-v1-a"] * 11 + [SLOW] * 9]),
    "LEAST_REQUEST": frame([{"pod": p, "version": "v1"} for p in ["reviews-v1-a"] * 17 + [SLOW] * 3]),
}

# exercise id -> (right answer, wrong answer, data)
CASES = {
    "0.first-version": ("v2", "v1", {"probe": FIRST_V2}),
    "0.columns": (["version", "pod"], ["status", "pod"], {}),
    "1.keepalive-pods": (1, 2, {"probe": STICKY}),
    "1.balances": ("connections", "requests", {}),
    "2.cluster-name": ("outbound|9080||reviews.default.svc.cluster.local",
                       "outbound|9080|reviews.default.svc.cluster.local", {}),
    "2.slow-pod-policy": ("least_request", "ROUND_ROBIN", {"results": LB_RESULTS, "slow_pod": SLOW}),
    "3.weights": ({"v1": 90, "v2": 10}, {"v1": 10, "v2": 90}, {}),
    "3.wpcatalog": ({"/wpcatalog/items": "v2", "/wpcatalogue": "v2", "/reviews/1": "v1", "/": "v1"},
                    {"/wpcatalog/items": "v2", "/wpcatalogue": "v1", "/reviews/1": "v1", "/": "v1"}, {}),
    "4.flags": ({"no-service": "NC", "undefined-subset": "nc", "empty-subset": "UH"},
                {"no-service": "NR", "undefined-subset": "NC", "empty-subset": "UH"}, {}),
    "4.safe-order": (["DestinationRule", "VirtualService"], ["VirtualService", "DestinationRule"], {}),
    "4.seed": ("b", "a", {}),
}


def test_every_registered_exercise_has_a_case():
    assert set(CASES) == set(EXERCISES)


@pytest.mark.parametrize("ex", sorted(CASES))
def test_right_wrong_and_unanswered(ex):
    right, wrong, data = CASES[ex]
    r = check(ex, right, **data)
    assert r.ok is True and bool(r) and "Hint" not in r.message
    w = check(ex, wrong, **data)
    assert w.ok is False and not w and w.message.startswith("Hint:")
    assert check(ex, None, **data).ok is None
    assert "Not yet" in w._repr_html_() and "Right" in r._repr_html_()


def test_measured_answers_follow_the_learners_own_data():
    # the same answer is right for one probe and wrong for another
    spread = split_probe(30, 0.5, seed=1)
    assert not check("1.keepalive-pods", 1, probe=spread)
    assert check("1.keepalive-pods", spread.pod.nunique(), probe=spread)
    flipped = dict(LB_RESULTS, RANDOM=frame([{"pod": "reviews-v1-a", "version": "v1"}] * 20))
    assert check("2.slow-pod-policy", "RANDOM", results=flipped, slow_pod=SLOW)
    assert not check("2.slow-pod-policy", "LEAST_REQUEST", results=flipped, slow_pod=SLOW)


def test_weights_accept_any_nine_to_one_ratio():
    assert check("3.weights", {"v1": 9, "v2": 1})
    assert check("3.weights", {"v1": 45, "v2": 5})


def test_right_answers_in_another_plausible_form_are_right():
    assert check("3.weights", (90, 10)) and check("3.weights", [90, 10])   # (v1, v2)
    assert check("3.weights", {"V1": 90, "V2": 10}) and check("3.weights", {"v1": 0.9, "v2": 0.1})
    assert not check("3.weights", (10, 90))
    assert check("4.flags", {"no-service": "503 NC", "undefined-subset": "nc", "empty-subset": "uh "})
    assert check("4.flags", {"No Service": "NC", "undefined_subset": "NC", "empty-subset": "UH"})
    assert check("4.safe-order", ("destination rule", "virtual-service"))
    assert check("4.safe-order", ["DR", "vs"]) and not check("4.safe-order", ["VS", "DR"])
    assert check("3.wpcatalog", {" /wpcatalog/items": "V2", "/wpcatalogue": "v2", "/reviews/1": "v1", "/": "V1"})
    assert check("0.first-version", " V2 ", probe=FIRST_V2) and check("1.balances", "Connection")
    assert check("2.slow-pod-policy", "least request", results=LB_RESULTS, slow_pod=SLOW)
    assert check("1.keepalive-pods", "1", probe=STICKY) and not check("1.keepalive-pods", " 3 ", probe=STICKY)


def test_wrong_shape_gets_a_message_not_a_traceback():
    v = check("3.weights", 90)
    assert v.ok is False and "dict" in v.message
    v = check("4.flags", ["NC", "NC", "UH"])
    assert v.ok is False and "dict" in v.message
    v = check("1.keepalive-pods", "one", probe=STICKY)
    assert v.ok is False and "number" in v.message
    v = check("4.seed", "d")
    assert v.ok is False and "letter" in v.message


def test_missing_data_and_unknown_exercise_are_clear_errors():
    with pytest.raises(TypeError, match="probe="):
        check("1.keepalive-pods", 1)
    with pytest.raises(KeyError, match="no exercise"):
        check("9.nope", 1)


def test_verdict_repr_is_readable():
    assert repr(Verdict("x", True, "ok")).startswith("✅")


def test_code_in_messages_renders_as_code():
    html = check("1.keepalive-pods", None, probe=STICKY)._repr_html_()
    assert "<code>sticky.pod.nunique()</code>" in html and "`" not in html
