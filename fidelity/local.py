"""meshlab's side: one real local Lab, reused across scenarios (apply, probe, clean up).

A scenario's objects replace the previous scenario's: Deployments (and Namespaces) that are the
same stay, so their pod processes keep running; everything else is deleted and the scenario's
applies are replayed in order, so creation order — which istiod and meshlab both use to order
VirtualServices and Services — is the scenario's. Pods' readiness is reset, then `notReady` applied.
"""

from __future__ import annotations

import json
from typing import Any

from meshlab import Lab
from meshlab.manifests import load
from meshlab.state import BUILTIN_NAMESPACES

from .scenario import Call, Scenario

_KEPT_KINDS = ("Deployment", "Namespace")


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a.to_manifest(), sort_keys=True) == json.dumps(b.to_manifest(), sort_keys=True)


class LabSession:
    """A local lab that answers scenario after scenario."""

    def __init__(self, *, seed: int = 11) -> None:
        self.lab = Lab(seed=seed)
        self.seed = seed

    def close(self) -> None:
        self.lab.close()

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, scenario: Scenario) -> None:
        steps = [load(step) for step in scenario.applies]
        desired = {o.key: o for step in steps for o in step}
        held = self.lab.objects()
        stale = [o for o in held if not (o.kind in _KEPT_KINDS and o.key in desired and _same(o, desired[o.key]))
                 and o.kind != "Namespace"]
        if stale:
            self.lab.delete(stale)
        gone_ns = [o for o in held if o.kind == "Namespace" and o.name not in BUILTIN_NAMESPACES
                   and not (o.key in desired and _same(o, desired[o.key]))]
        if gone_ns:
            self.lab.delete(gone_ns)
        for step in steps:
            self.lab.apply(step)
        pods = self.lab.pods()
        for p in pods.itertuples():
            if not p.ready and p.phase == "Running":
                self.lab.set_pod(p.name, namespace=p.namespace, ready=True)
        for ref in scenario.not_ready:
            ns, _, name = ref.rpartition("/")
            ns = ns or "default"
            for p in pods[pods.namespace == ns].itertuples():
                if p.name == name or p.name.startswith(name + "-"):
                    self.lab.set_pod(p.name, namespace=ns, ready=False)

    def probe(self, call: Call, n: int, *, timeout: float = 15.0) -> list[dict[str, Any]]:
        """`n` requests of `call` through the lab; one row per request (meshlab.probe.rows)."""
        df = self.lab.probe(call.url, n=n, via=call.via, namespace=call.namespace,
                            headers=call.header_dict() or None, seed=self.seed, timeout=timeout)
        return df.to_dict("records")

    def warnings(self) -> list[str]:
        return list(self.lab.warnings)
