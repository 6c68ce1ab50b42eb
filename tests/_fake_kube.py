"""An in-memory Kubernetes API for the kind backend's unit tests (its `kube=` seam).

A stand-in for the API server inside unit tests of meshlab's own logic only; the kind integration
test runs against a real cluster.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any


DATA = Path(__file__).parent / "data" / "kind"


def rec_json(name: str) -> Any:
    """An object recorded from a real API server (tests/data/kind/)."""
    return json.loads((DATA / name).read_text())


class FakeKube:
    """In-memory API: objects by (kind, namespace, name); scripted rollouts, logs and exec."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple] = []
        self.script: dict[tuple[str, str, str], list[dict]] = {}   # successive GET answers
        self.logs_by_call: list[str] = []
        self.exec_out: list[tuple[str, str]] = []
        self.put("v1", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        # the node `meshlab up` makes (kind-config.yaml labels it): the kind backend checks for it
        self.put("v1", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "meshlab-control-plane", "labels": {"meshlab.dev/created-by": "meshlab"}}})

    def put(self, api: str, obj: dict) -> None:
        md = obj["metadata"]
        self.store[(obj["kind"], md.get("namespace") or "", md["name"])] = copy.deepcopy(obj)

    def get(self, api, kind, ns, name):
        self.calls.append(("get", kind, ns, name))
        key = (kind, ns or "", name)
        if self.script.get(key):
            seq = self.script[key]
            return copy.deepcopy(seq.pop(0) if len(seq) > 1 else seq[0])
        return copy.deepcopy(self.store.get(key))

    def list(self, api, kind, ns, label_selector=None):
        out = []
        for (k, n, _), o in self.store.items():
            if k != kind or (ns is not None and n != ns):
                continue
            labels = o["metadata"].get("labels") or {}
            if label_selector and not all(labels.get(a) == b for a, b in (s.split("=") for s in label_selector.split(","))):
                continue
            out.append(copy.deepcopy(o))
        return out

    def apply(self, manifest, *, dry_run=False):
        self.calls.append(("apply", dry_run, manifest["kind"], manifest["metadata"]["name"]))
        if not dry_run:
            self.put(manifest["apiVersion"], manifest)
        return manifest

    def delete(self, api, kind, ns, name):
        self.calls.append(("delete", kind, ns, name))
        self.store.pop((kind, ns or "", name), None)

    def logs(self, ns, pod, container, since_seconds=None):
        self.calls.append(("logs", ns, pod, container))
        return self.logs_by_call.pop(0) if len(self.logs_by_call) > 1 else (self.logs_by_call or [""])[0]

    def exec(self, ns, pod, container, command, on_line=None, timeout=600.0, stop=None):
        self.calls.append(("exec", ns, pod, container, tuple(command), stop is not None))
        out, err = self.exec_out.pop(0) if self.exec_out else ("", "")
        lines = out.splitlines()
        if stop is not None:        # an open-ended prober: half the rows, then it runs until told to stop
            half = len(lines) // 2
            for line in lines[:half]:
                on_line(line)
            assert stop.wait(30), "the backend never asked the in-pod prober to stop"
            lines = lines[half:]
        if on_line:
            for line in lines:
                on_line(line)
        return out, err
