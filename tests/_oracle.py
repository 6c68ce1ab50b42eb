"""Asking the oracle (`oracle/bin/meshlab-oracle`, Istio's own code) about a local lab's state.

`objects_of(state)` writes what an API server would serve for the lab's state — Namespaces,
Services with their ClusterIP, Pods with IP, labels and Ready, the EndpointSlices the controller
would write, and every other object as applied — and `simulate()` runs the oracle on it.
Until the fidelity runner (`fidelity/`) lands on main, tests use this directly.

`oracle_or_skip()` skips where Go and the oracle are missing, except in CI, where it fails.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ORACLE = Path(os.environ.get("MESHLAB_ORACLE") or ROOT / "oracle" / "bin" / "meshlab-oracle")


@functools.lru_cache(maxsize=None)
def _make_oracle() -> None:
    """`make oracle` once per test session: builds the binary, or rebuilds it when its sources are
    newer (a binary from before a new subcommand would otherwise answer "unknown command")."""
    if shutil.which("go") and not os.environ.get("MESHLAB_ORACLE"):
        subprocess.run(["make", "oracle"], cwd=ROOT, check=False, capture_output=True, timeout=1800)


def oracle_or_skip() -> Path:
    """The oracle binary, built or brought up to date by `make oracle` if Go is there; skip
    without Go (fail in CI)."""
    _make_oracle()
    if not ORACLE.exists():
        if os.environ.get("CI"):
            pytest.fail("the oracle (make oracle, needs Go) must run in CI")
        pytest.skip("no oracle: `make oracle` needs Go")
    return ORACLE


def objects_of(state: Any) -> list[dict[str, Any]]:
    """The state as an API server would serve it (see the module docstring)."""
    from meshlab.objects import Deployment, Pod, Service
    out: list[dict[str, Any]] = []
    for obj in state.all():
        if isinstance(obj, (Deployment, Pod)):
            continue
        m = obj.to_manifest()
        m.pop("status", None)
        if isinstance(obj, Service) and not obj.spec.headless and state.cluster_ip(obj):
            m["spec"]["clusterIP"] = state.cluster_ip(obj)
        out.append(m)
    for p in state.pods():
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": p.name, "namespace": p.namespace, "labels": dict(p.labels)},
                    "spec": {"containers": [{"name": "app", "image": "meshlab/app"}]},
                    "status": {"phase": p.phase, "podIP": p.ip,
                               "conditions": [{"type": "Ready", "status": "True" if p.ready else "False"}]}})
    for svc in state.services():
        for port in svc.spec.ports:
            eps = state.endpoints(svc, port, include_unready=True)
            out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": f"{svc.name}-{port.port}", "namespace": svc.namespace,
                                     "labels": {"kubernetes.io/service-name": svc.name}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": [e.ip], "conditions": {"ready": e.ready},
                                       "targetRef": {"kind": "Pod", "name": e.pod, "namespace": e.namespace}}
                                      for e in eps],
                        "ports": [{"name": port.name or "", "port": eps[0].port if eps else port.port,
                                   "protocol": "TCP"}]})
    return out


def simulate(state: Any, proxies: list[dict[str, Any]], calls: list[dict[str, Any]], *,
             config: bool = False) -> dict[str, Any]:
    """`meshlab-oracle simulate` on the lab's state; with `config`, the response also holds each
    proxy's xDS as istiod generates it (`config[<proxy id>]`)."""
    req = {"objects": yaml.safe_dump_all(objects_of(state), sort_keys=False), "proxies": proxies,
           "calls": calls, **({} if config else {"config": "none"})}
    done = subprocess.run([str(oracle_or_skip()), "simulate"], input=json.dumps(req), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def expected(call: dict[str, Any]) -> set[tuple[int, str]]:
    """(status, flags) outcomes the oracle allows for a call; an upstream answer is the app's 200."""
    out = set()
    for o in call.get("outcomes") or []:
        oc = o["outcome"]
        out.add((200, "-") if oc["kind"] == "upstream" else (int(oc.get("status") or 0), oc.get("flags") or "-"))
    return out


def crd_validate(crd_files: list[Path], docs: list[dict[str, Any]]) -> list[list[str]]:
    """`meshlab-oracle crd-validate`: for each document, what the Kubernetes API server refuses
    creating it with, given these CRDs ([] = accepted): strict fields, defaults, the OpenAPI schema,
    list keys and the CEL rules, by Kubernetes' own apiextensions-apiserver code."""
    done = subprocess.run([str(oracle_or_skip()), "crd-validate", *map(str, crd_files)], input=json.dumps(docs),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out) == len(docs)
    return out
