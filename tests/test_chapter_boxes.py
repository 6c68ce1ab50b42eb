"""The chapters' "On a real cluster" boxes: commands a learner types on the cluster `meshlab up`
makes, so they must be true of it — the pinned Istio release's samples, EndpointSlices (Endpoints
is deprecated since Kubernetes 1.33), and an access-log grep that matches the JSON log the
course's install configures (checked against a real Envoy writing that very format).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from meshlab.backends.kind.config import ISTIO_VERSION

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def _markdown() -> dict[str, str]:
    return {p.stem: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "markdown")
            for p in CHAPTERS}


def test_istio_sample_urls_name_the_pinned_release_branch() -> None:
    urls = [u for text in _markdown().values()
            for u in re.findall(r"https://raw\.githubusercontent\.com/istio/istio/([^/\s]+)/", text)]
    assert urls, "no Istio sample URL in the chapters: this test would check nothing"
    assert set(urls) == {f"release-{ISTIO_VERSION.rsplit('.', 1)[0]}"}


def test_endpoints_are_shown_as_endpointslices() -> None:
    text = "\n".join(_markdown().values())
    assert "kubectl get endpointslices -l kubernetes.io/service-name=reviews" in text
    assert not re.search(r"kubectl get (endpoints|ep)\b", text)


def _box_grep(chapter: str) -> list[str]:
    """The grep command (its options and pattern) the box runs over the ingress gateway's log."""
    line = next(ln for ln in _markdown()[chapter].splitlines() if "kubectl logs deploy/istio-ingressgateway" in ln)
    m = re.search(r"grep((?: -[A-Za-z]+)*) '([^']+)'", line)
    return ["grep", *m.group(1).split(), m.group(2)]


@pytest.mark.skipif(shutil.which("grep") is None, reason="needs grep")
def test_the_access_log_grep_matches_the_json_log_lines_of_503_nc_and_no_others() -> None:
    from meshlab import Lab

    grep = _box_grep("04-the-503-case")
    manifests = NOTEBOOKS / "manifests"
    with Lab() as lab:                 # the local backend's Envoy writes the access-log format the install sets
        lab.apply(manifests / "01-service")
        lab.apply(manifests / "04-503" / "gateway.yaml")
        ok = lab.probe("http://reviews.example.com/", via="gateway", n=5, seed=1)
        lab.delete(manifests / "01-service" / "reviews-service.yaml")
        nc = lab.probe("http://reviews.example.com/", via="gateway", n=5, seed=1)
        log = Path(lab.backend.envoy("gateway").access_log_path)      # type: ignore[attr-defined]
        assert set(ok["status"]) == {200} and set(nc["flags"]) == {"NC"}
        found = subprocess.run([*grep, str(log)], capture_output=True, text=True).stdout.splitlines()
    assert len(found) == 5 and all('"response_code":503' in ln for ln in found)
