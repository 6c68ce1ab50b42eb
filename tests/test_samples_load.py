"""Every Istio sample manifest in ../shared/reference/istio-samples/ loads (one apply per file);
kinds meshlab does not model are kept and reported as notes, never dropped or refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshlab.manifests import load
from meshlab.objects import UnmodelledObject
from conftest import REFERENCE

SAMPLES = sorted((REFERENCE / "istio-samples").glob("*.yaml"))


@pytest.mark.parametrize("path", SAMPLES or [None], ids=[p.name for p in SAMPLES] or ["no-samples"])
def test_istio_sample_loads(path: Path | None, reference_dir: Path) -> None:
    assert path is not None, f"{reference_dir / 'istio-samples'} holds no *.yaml"
    objs = load(path)
    raw = [d for d in yaml.safe_load_all(path.read_text()) if d]
    # nothing dropped: one object per document, in order, same kind and name
    assert [(o.kind, o.name) for o in objs] == [(d["kind"], d["metadata"]["name"]) for d in raw]
    unmodelled = [o for o in objs if isinstance(o, UnmodelledObject)]
    assert [n.object for n in objs.notes] == [o.ref for o in unmodelled]
    for o in objs:
        assert o.source is not None and o.source.file == str(path) and o.source.line
        assert o.namespace is not None or not o.NAMESPACED


def test_samples_cover_the_modelled_kinds(reference_dir: Path) -> None:
    kinds = {o.kind for p in SAMPLES for o in load(p) if not isinstance(o, UnmodelledObject)}
    assert {"Service", "Deployment", "VirtualService", "DestinationRule", "Gateway", "ServiceEntry"} <= kinds


def test_the_whole_sample_folder_at_once_warns_of_the_duplicates(reference_dir: Path) -> None:
    # The samples are alternatives (reviews routed 80/20, 50/50, …): applied together, as
    # `kubectl apply -f istio-samples/` does, each later file replaces the earlier definition.
    from meshlab.manifests import load_report
    report = load_report(reference_dir / "istio-samples")
    assert not report.problems
    assert report.warnings and all("given again at" in w.message for w in report.warnings)
    reviews = [o for o in report.objects if o.ref == "VirtualService default/reviews"]
    assert len(reviews) == 1 and reviews[0].source.file.endswith("virtual-service-reviews-v3.yaml")
