"""meshlab against Istio's own code (fidelity/README.md): the goldens, the lab, the translator.

- Every scenario of the corpus has a golden answer made for exactly its request (no Go needed).
- With the oracle built (`make test` builds it when Go is there; CI must), the oracle is asked
  again and every golden must be what it answers now.
- The lab's real Envoy answers the calls of the `test` set as the goldens say (route, cluster,
  status, flags; weighted shares within 5 sigma), or a named warning says what it does not model.
- meshlab's translator produces the clusters, listeners, route configurations, virtual hosts,
  domains and route names istiod produces for the same state and proxies, for every scenario.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fidelity import corpus, oracle, routes  # noqa: E402
from fidelity.compare import judge  # noqa: E402


@pytest.fixture(scope="module")
def everything():
    items = corpus.scenarios("all")
    if not corpus.REFERENCE.is_dir():
        from conftest import missing_reference
        missing_reference(corpus.REFERENCE)
    return items


def test_the_corpus_is_large_and_covers_every_group(everything):
    groups = {s.group for s in everything}
    assert {"chapters", "tests", "samples", "generated"} <= groups, groups
    assert len(everything) >= 300
    assert sum(len(s.calls) for s in everything) >= 1000


def test_every_chapter_has_its_states_in_the_corpus():
    """Each chapter in notebooks/ has the states it passes through in corpus/chapters.yaml (that they
    are exactly the ones it passes through now is checked where the chapter runs: test_notebooks)."""
    missing = corpus.chapters_without_states()
    assert not missing, "\n".join(
        [f"{len(missing)} chapter(s) have no state in fidelity/corpus/chapters.yaml, so Istio's own code "
         "never judged what they show. Record each one (runs the chapter, ~1 min) and ask the oracle:"]
        + [f"  {m}: {corpus.record_command(m)}" for m in missing])


def test_a_chapter_without_states_is_named_with_the_command_that_records_it(tmp_path):
    for name in ("00-orientation", "05-resilience"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert corpus.chapters_without_states(tmp_path) == ["05-resilience"]
    assert "fidelity.record chapters --chapter 05" in corpus.record_command("05-resilience")


def test_every_scenario_has_a_golden_made_for_its_request(everything):
    stale = routes.stale(everything)
    assert not stale, (f"{len(stale)} goldens are missing or stale, e.g. {stale[:5]}: "
                       "run `make fidelity-golden` (needs Go) and commit fidelity/golden/")
    assert not routes.orphans(everything), "golden files no scenario owns: `make fidelity-golden` removes them"


@pytest.mark.slow
@pytest.mark.timeout(1800)     # ~500 oracle runs: 452 s at load 12 on the shared 2 cores (bench/README.md, Fidelity)
def test_the_goldens_are_what_istio_answers_now(everything):
    """The oracle asked again (Go needed; CI has it): any golden that changed is stale."""
    if not oracle.available():
        message = f"the oracle is not built ({oracle.ORACLE}): `make oracle` needs Go"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must build it", pytrace=False)
        pytest.skip(message)
    fresh = routes.regenerate(everything, write=False, log=lambda *_: None)
    changed = [name for name, answer in fresh.items() if answer != oracle.read_golden(name)]
    assert not changed, (f"{len(changed)} goldens differ from what the oracle answers now, e.g. {changed[:5]}; "
                         "run `make fidelity-golden` and commit fidelity/golden/")


@pytest.mark.timeout(900)
def test_the_translator_builds_what_istiod_builds(everything):
    """Every scenario's proxy configs, cluster by cluster and virtual host by virtual host, are
    istiod's, or a named known difference (fidelity/known.py) explains the item."""
    res = routes.run(everything, lab=False, log=lambda *_: None)
    assert not res.problems, res.problems[:5]
    assert not res.config, "\n".join(f"{k}: {v}" for k, v in list(res.config.items())[:10])


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_lab_answers_as_istio_does():
    items = corpus.scenarios("test")
    lines: list[str] = []
    res = routes.run(items, log=lines.append)
    c = res.counts()
    assert c["calls"] >= 500, c
    assert c["agree"] + c["unmodelled"] == c["calls"], "\n".join(lines[:40])


# ---- the verdict itself (my own logic, on hand-made rows)

def _row(status=200, flags="-", cluster="outbound|9080||r.default.svc.cluster.local", route="", error="", upstream="1.2.3.4:9080"):
    return {"status": status, "flags": flags, "cluster": cluster, "route": route, "error": error,
            "upstream": upstream if cluster else ""}


def _entry(outcomes, route="", index=0):
    return {"call": "c", "route": route, "routeIndex": index,
            "outcomes": [{"percent": p, "outcome": o} for p, o in outcomes]}


UP_A = {"kind": "upstream", "flags": "-", "cluster": "A"}
UP_B = {"kind": "upstream", "flags": "-", "cluster": "B"}


def test_judge_compares_status_flags_cluster_and_route():
    assert judge("s", _entry([(100, UP_A)], route="r"), [_row(cluster="A", route="r")]).kind == "agree"
    assert judge("s", _entry([(100, UP_A)], route="r"), [_row(cluster="B", route="r")]).kind == "disagree"
    assert judge("s", _entry([(100, UP_A)], route="r"), [_row(cluster="A", route="x")]).kind == "disagree"
    nc = {"kind": "local_reply", "status": 503, "flags": "NC"}
    assert judge("s", _entry([(100, nc)]), [_row(503, "NC", cluster="")]).kind == "agree"
    assert judge("s", _entry([(100, nc)]), [_row(503, "UH", cluster="")]).kind == "disagree"
    assert judge("s", {"call": "c", "decided": {"kind": "dns"}}, [_row(0, "", "", error="dns")]).kind == "agree"


def test_judge_checks_shares_with_a_binomial_bound():
    e = _entry([(80, UP_A), (20, UP_B)])
    good = [_row(cluster="A")] * 160 + [_row(cluster="B")] * 40
    assert judge("s", e, good).kind == "agree"
    skewed = [_row(cluster="A")] * 100 + [_row(cluster="B")] * 100
    assert judge("s", e, skewed).kind == "disagree"
    assert judge("s", _entry([(100, UP_A)]), [_row(cluster="A")], ["tls-server: not modelled"]).kind == "unmodelled"


def test_known_differences_name_only_what_they_explain():
    """A known difference (fidelity/known.py) turns a disagreement into a named, counted unmodelled
    call only where its rule holds: an invalid Host, an HTTP/2 cluster the HTTP/1.1 pods refuse."""
    from types import SimpleNamespace

    from fidelity.known import explain_call
    from fidelity.scenario import Call
    h2 = SimpleNamespace(warnings=[], clusters=[{"name": "A", "typed_extension_protocol_options": {
        "x": {"explicit_http_config": {"http2_protocol_options": {}}}}}, {"name": "B"}])
    entry = _entry([(100, UP_A)])
    call = Call.from_yaml({"url": "http://reviews:9080/"})
    assert explain_call(entry, call, [_row(502, "UPE", cluster="A")], h2).code == "http1-pods"
    assert explain_call(entry, call, [_row(502, "UPE", cluster="B")], h2) is None
    assert explain_call(entry, call, [_row(503, "UF", cluster="A")], h2) is None
    bad_host = Call.from_yaml({"url": "http://reviews:9080/", "headers": {"host": "/a"}})
    assert explain_call(entry, bad_host, [_row(400, "DPE", cluster="")], h2).code == "invalid-authority"
    assert explain_call(entry, call, [_row(400, "DPE", cluster="")], h2) is None


def test_a_passthrough_nobody_answers_is_a_known_difference():
    from fidelity.known import explain_call
    from fidelity.scenario import Call
    entry = _entry([(100, {"kind": "passthrough", "flags": "-", "cluster": "PassthroughCluster"})])
    call = Call.from_yaml({"url": "http://reviews:80/"})
    assert explain_call(entry, call, [_row(0, "", "", error="reset")], None).code == "passthrough-to-nothing"
    assert explain_call(_entry([(100, UP_A)]), call, [_row(0, "", "", error="reset")], None) is None
