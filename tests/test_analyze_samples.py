"""Istio's own sample manifests must not produce false Error findings.

Each Bookinfo networking sample is analyzed the way the Istio docs apply it: on top of the Bookinfo
platform (`bookinfo.yaml`) and, unless it brings its own, `destination-rule-all.yaml`. The only
Errors allowed are ones `istioctl analyze` itself reports on a live cluster for the same objects
(listed with the reason); each of those must actually be found, so the test fails both ways.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshlab.analysis import analyze
from meshlab.manifests import load

from conftest import REFERENCE

SAMPLES = REFERENCE / "istio-samples"
pytestmark = pytest.mark.usefixtures("reference_dir")     # skipped without the samples; failed in CI

PLATFORM = "bookinfo__platform__kube__bookinfo.yaml"
DR_ALL = "bookinfo__networking__destination-rule-all.yaml"

#: (code, resource, message fragment) → why Istio reports it too.
TRUE_ERRORS = {
    ("IST0173", "DestinationRule default/ratings", "v2-mysql "):
        "destination-rule-all defines subset v2-mysql but bookinfo.yaml deploys no ratings-v2-mysql pod",
    ("IST0173", "DestinationRule default/ratings", "v2-mysql-vm"):
        "same for v2-mysql-vm (a VM workload the sample does not deploy)",
    ("IST0101", "VirtualService istio-system/cert-manager", "cert-manager-resolver"):
        "the cert-manager sample routes to a Service cert-manager creates, which is not installed",
}


def _scenario(name: str) -> list[Path]:
    f = SAMPLES / name
    if not name.startswith("bookinfo__networking__"):
        return [f]
    own_drs = any(o.kind == "DestinationRule" for o in load(f))
    return [SAMPLES / PLATFORM] + ([] if own_drs or name == DR_ALL else [SAMPLES / DR_ALL]) + [f]


def _names() -> list[str | None]:
    """The samples, or one None so that the tests still run (and say the samples are missing)."""
    return sorted(p.name for p in SAMPLES.glob("*.yaml")) if SAMPLES.is_dir() else [None]


@pytest.mark.parametrize("name", _names())
def test_sample_has_no_false_errors(name: str) -> None:
    files = _scenario(name)
    errors = [f for f in analyze(files) if f.level == "Error"]
    unexpected = [str(f) for f in errors
                  if not any(f.code == c and f.origin == o and frag in f.message + " " for c, o, frag in TRUE_ERRORS)]
    assert unexpected == [], f"false Error findings for {name}: {unexpected}"


def test_the_true_errors_are_found() -> None:
    seen = {(f.code, f.origin, f.message) for n in _names() if n for f in analyze(_scenario(n)) if f.level == "Error"}
    for (code, origin, frag), why in TRUE_ERRORS.items():
        assert any(c == code and o == origin and frag in m + " " for c, o, m in seen), f"missing {code} {origin}: {why}"


def test_bookinfo_with_all_v1_is_error_free_once_subsets_have_pods() -> None:
    """Bookinfo + reviews v1..v3 pods + all-v1 routing: only the mysql subsets lack pods."""
    found = analyze([SAMPLES / PLATFORM, SAMPLES / DR_ALL, SAMPLES / "bookinfo__networking__bookinfo-gateway.yaml",
                     SAMPLES / "bookinfo__networking__virtual-service-all-v1.yaml"])
    assert {(f.code, f.origin) for f in found if f.level == "Error"} == {("IST0173", "DestinationRule default/ratings")}
    # The gateway VirtualService sends to productpage without subset while all-v1 routes by subset (Istio: IST0140).
    assert ("IST0140", "VirtualService default/bookinfo") in {(f.code, f.origin) for f in found}
