"""One apply-order rule (`meshlab.backends.base.apply_steps`), the same steps on every backend.

`Lab.apply(objs, order=[...])` used to run two different sequences: the local backend applied the
kinds not listed first, the kind backend the listed kinds first (so a VirtualService reached the
API server before the Namespace it lives in). Both now take their steps from one rule; this test
runs `Lab.apply` on the local backend (a real lab) and on the kind backend's own code path with
its Kubernetes client replaced by an in-memory API (a real API server is another test's job), and
compares what each sent, step by step.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshlab.backends import base
from meshlab.lab import Lab
from meshlab.manifests import load

from _fake_kube import FakeKube, rec_json
from _manifests import deployment, destination_rule, docs, namespace, service, virtual_service

OBJECTS = docs(
    virtual_service("web", ["web"], "  - route:\n    - destination: {host: web, subset: v1}\n", namespace="shop"),
    destination_rule("web", ["v1"], namespace="shop"),
    namespace("shop"),
    service("web", namespace="shop"),
    deployment("web", "v1", namespace="shop"),
)
ORDER = ["VirtualService", "DestinationRule"]
#: What the rule says: the ground first (namespace, then workloads), then each listed kind alone.
EXPECTED = [["Namespace", "Service", "Deployment"], ["VirtualService"], ["DestinationRule"]]


def _steps(events: list[Any]) -> list[list[str]]:
    """Kinds sent, split into steps at the waits between steps."""
    steps: list[list[str]] = [[]]
    for e in events:
        if e == "gap":
            steps.append([])
        else:
            steps[-1].append(e)
    return steps


def _record_gaps(monkeypatch: pytest.MonkeyPatch, events: list[Any]) -> None:
    monkeypatch.setattr(base, "time", SimpleNamespace(sleep=lambda s: events.append("gap")))


def test_lab_apply_with_order_runs_the_same_steps_on_both_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [[o.kind for o in step] for step in base.apply_steps(load(OBJECTS), ORDER)] == EXPECTED

    # kind: the backend's own apply, its client an in-memory API that records what it is sent
    kube = FakeKube()
    kube.script[("Deployment", "shop", "web-v1")] = [rec_json("deployment_available.json")]
    kind_events: list[Any] = []
    real_apply = kube.apply

    def sent(manifest: dict[str, Any], *, dry_run: bool = False) -> Any:
        if not dry_run:
            kind_events.append(manifest["kind"])
        return real_apply(manifest, dry_run=dry_run)
    kube.apply = sent  # type: ignore[method-assign]
    _record_gaps(monkeypatch, kind_events)
    kind_lab = Lab(backend="kind", kube=kube, image="meshlab/demo:test", settle_s=0, poll_s=0)
    kind_lab.apply(OBJECTS, order=ORDER, gap=0.25)
    assert _steps(kind_events) == EXPECTED

    # local: a real lab; what reaches its cluster state, call by call
    local_events: list[Any] = []
    _record_gaps(monkeypatch, local_events)
    with Lab(backend="local") as local_lab:
        state = local_lab.backend.state
        real_state_apply = state.apply

        def stored(objects: Any) -> Any:
            objects = list(objects)
            local_events.extend(o.kind for o in objects)
            return real_state_apply(objects)
        monkeypatch.setattr(state, "apply", stored)
        local_lab.apply(OBJECTS, order=ORDER, gap=0.25)
        assert {(o.kind, o.name) for o in local_lab.objects()} >= {("VirtualService", "web"), ("Namespace", "shop")}
    assert _steps(local_events) == EXPECTED


def test_an_order_naming_no_kind_meshlab_knows_is_refused_before_anything_is_applied() -> None:
    with pytest.raises(base.LabError, match="VirtualServce"):
        base.apply_steps(load(OBJECTS), ["VirtualServce"])
    assert [[o.kind for o in s] for s in base.apply_steps(load(OBJECTS), "DestinationRule")] == \
        [["Namespace", "Service", "Deployment", "VirtualService"], ["DestinationRule"]]
    assert len(base.apply_steps(load(OBJECTS), None)) == 1


@pytest.mark.parametrize("backend", ["local", "kind", "cluster"])
def test_a_lab_keyword_the_backend_does_not_take_is_an_error_on_every_backend(backend: str) -> None:
    """`Lab(backend="kind", sed=1)` was silently accepted (the kind backend swallowed any keyword)."""
    from meshlab.errors import LabOptionError

    with pytest.raises(LabOptionError, match=r"no option 'sed'.*its options: .*\b(seed|context)\b"):
        Lab(backend=backend, sed=1)


def test_each_backend_takes_its_own_options() -> None:
    """The options a backend documents get past the check (and fail, if at all, for their own reason)."""
    from meshlab.errors import ContextError
    from meshlab.lab import backend_options

    assert {"seed", "workdir", "start_timeout"} <= set(backend_options("local"))
    assert {"context", "namespace", "image", "kube", "settle_s"} <= set(backend_options("cluster"))
    assert backend_options("cluster") == backend_options("kind")
    from meshlab.lab import LabOptions    # the typed options are exactly the backends' keywords
    assert set(LabOptions.__annotations__) == set(backend_options("local")) | set(backend_options("kind"))
    with pytest.raises(ContextError, match="context named explicitly"):   # not a LabOptionError
        Lab(backend="cluster", namespace="alice", image="registry.example.com/meshlab/demo:1")
