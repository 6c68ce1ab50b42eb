"""`meshlab analyze` agrees with Istio's own analyzers on every input of the corpus
(fidelity/analyze.py: chapters, Istio's samples, the analyzer tests' inputs, seeded mutants),
compared with the oracle's answers kept in fidelity/golden/analyze.json (a machine without Go
compares with those; with the oracle built, an input whose golden is stale is asked again, and
`make fidelity-analyze-golden` rewrites the goldens)."""

from __future__ import annotations

import pytest

from fidelity import analyze as fa

pytestmark = [pytest.mark.usefixtures("reference_dir"),   # the samples are part of the corpus
              pytest.mark.slow]


def test_every_input_agrees_with_istios_analyzers() -> None:
    # with the oracle built, inputs whose golden is stale are asked again (not written back);
    # without it a stale golden fails, saying to run `make fidelity-analyze-golden`
    verdicts = fa.run(fa.corpus(), use_oracle=fa.ORACLE.exists())
    assert len(verdicts) >= 220
    assert {v.input.group for v in verdicts} == {"chapters", "samples", "tests", "mutants"}
    disagreements = {v.input.name: v.reasons() for v in verdicts if not v.agree}
    assert disagreements == {}
    # every documented difference still exists (a stale entry would hide nothing and mislead)
    used = {d.split("[", 1)[1].split("]", 1)[0] for v in verdicts for d in v.documented}
    assert used == set(fa.DOCUMENTED)


def test_a_difference_is_a_disagreement() -> None:
    """The comparison can fail: the same input judged against a changed answer disagrees."""
    inp = next(i for i in fa.test_inputs() if "IST0145 two gateways" in i.name)
    mesh, mesh_exit = fa.meshlab_side(inp.text)
    assert ("IST0145", "Error", "Gateway", "default", "a") in mesh and mesh_exit == 79
    v = fa.Verdict(inp, mesh, mesh - {("IST0145", "Error", "Gateway", "default", "a")}, mesh_exit, mesh_exit)
    assert not v.agree and v.reasons() == ["meshlab reports, Istio does not: Error [IST0145] Gateway default/a"]
    assert fa.Verdict(inp, mesh, set(mesh), mesh_exit, 0).reasons() == ["exit status: meshlab 79, Istio 0"]


def test_the_cluster_the_oracle_judges_holds_the_derived_pods() -> None:
    """Deployments become Pods (with the injector's sidecar in an injected namespace), as on a
    live cluster; Istio's default install and the course's injected `default` namespace are there."""
    inp = next(i for i in fa.test_inputs() if "IST0137 one targetPort" in i.name)
    objs = fa.cluster_objects(inp.text)
    pods = [o for o in objs if o["kind"] == "Pod" and o["metadata"]["namespace"] == "default"]
    assert pods and all(any(c["name"] == "istio-proxy" for c in p["spec"]["containers"]) for p in pods)
    default = next(o for o in objs if o["kind"] == "Namespace" and o["metadata"]["name"] == "default")
    assert default["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert not any(o["kind"] == "Namespace" and o["metadata"]["name"] == "kube-system" for o in objs)
