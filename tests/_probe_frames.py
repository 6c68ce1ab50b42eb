"""Probe-shaped DataFrames for unit tests of charts, widgets and exercises (no lab needed).

Why synthetic rows are honest here: these tests check the drawing and judging logic on known
inputs; the notebooks test (tests/test_notebooks.py) runs the same code on real Envoy probes.
"""

from __future__ import annotations

import random

import pandas as pd

from meshlab.probe.rows import PROBE_COLUMNS

PODS = {"v1": "reviews-v1-abc12-x1", "v2": "reviews-v2-def34-y2"}


def frame(rows: list[dict]) -> pd.DataFrame:
    full = []
    for i, r in enumerate(rows):
        row = {"seq": i, "t": i * 0.01, "status": 200, "error": "", "flags": "-", "details": "via_upstream",
               "proxy": "sidecar", "route": "default", "cluster": "outbound|9080||reviews.default.svc.cluster.local",
               "subset": "", "upstream": "127.2.0.1:9080", "pod": "", "version": "", "latency_ms": 1.0, "conn": 0}
        row.update(r)
        full.append(row)
    return pd.DataFrame(full, columns=list(PROBE_COLUMNS))


def split_probe(n: int, p_v2: float, seed: int = 0, nc: int = 0) -> pd.DataFrame:
    """n answered requests, each v2 with probability p_v2, plus `nc` 503 NC rows."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        v = "v2" if rng.random() < p_v2 else "v1"
        rows.append({"pod": PODS[v], "version": v, "subset": v,
                     "cluster": f"outbound|9080|{v}|reviews.default.svc.cluster.local", "conn": i % 3})
    for _ in range(nc):
        rows.append({"status": 503, "flags": "NC", "details": "cluster_not_found", "pod": "", "version": "",
                     "cluster": "outbound|9080|v3|reviews.default.svc.cluster.local", "upstream": ""})
    return frame(rows)


def dns_probe(n: int) -> pd.DataFrame:
    return frame([{"status": 0, "error": "dns", "flags": "", "details": "", "proxy": "none", "route": "",
                   "cluster": "", "upstream": "", "conn": -1} for _ in range(n)])
