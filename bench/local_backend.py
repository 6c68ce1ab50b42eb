"""Benchmark of the local backend: cold start, change → traffic, probe throughput vs wrk, memory.

Run: ``.venv/bin/python bench/local_backend.py [--rounds 5] [--n 20000] [--json]``
Figures are medians over rounds; throughput is reported next to ``wrk`` against the same Envoy
listener in the same run (the ratio is what matters on a shared, noisy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

# the manifest builders the tests use (tests/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _manifests import deployment, destination_rule, docs, service, virtual_service  # noqa: E402

MANIFESTS = docs(
    deployment("web", "v1", replicas=2, port=8080, container="web"),
    deployment("web", "v2", port=8080, container="web"),
    service("web", 80, target_port=8080),
    destination_rule("web", ["v1", "v2"]),
)


def _vs(subset: str) -> str:
    return virtual_service("web", ["web"], f"- route:\n  - destination: {{host: web, subset: {subset}}}")


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmRSS:\s+(\d+)", f.read())
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (the Envoy binary, libpython) split between the
    processes that map them — what the lab really adds to a Binder pod's memory."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            m = re.search(r"^Pss:\s+(\d+)", f.read(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def _lab_memory() -> dict:
    by_kind: dict[str, list[int]] = {}
    kids = _children(os.getpid())
    for k in kids:
        try:
            exe = os.path.basename(os.readlink(f"/proc/{k}/exe"))
        except OSError:
            continue
        kind = "envoy" if "envoy" in exe else "python (pods, kube-proxy)"
        acc = by_kind.setdefault(kind, [0, 0, 0])
        acc[0] += _rss_kb(k)
        acc[1] += _pss_kb(k)
        acc[2] += 1
    return {"processes": len(kids),
            "rss_mb": round(sum(v[0] for v in by_kind.values()) / 1024, 1),
            "pss_mb": round(sum(v[1] for v in by_kind.values()) / 1024, 1),
            "by_kind": {k: {"n": v[2], "rss_mb": round(v[0] / 1024, 1), "pss_mb": round(v[1] / 1024, 1)}
                        for k, v in by_kind.items()}}


def bookinfo_memory(Lab) -> dict | None:
    """Memory of a lab running Istio's Bookinfo (6 pods), if the reference manifests are there."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "shared", "reference", "istio-samples",
                        "bookinfo__platform__kube__bookinfo.yaml")
    if not os.path.exists(path):
        return None
    with Lab() as lab:
        lab.apply(path)
        lab.probe("http://productpage:9080/", n=100)
        lab.probe("http://reviews:9080/", n=100)
        return _lab_memory()


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def cold_start(Lab) -> tuple[float, float]:
    """Lab() + apply(manifests) → first 200 through the sidecar; and the share spent in apply."""
    t0 = time.perf_counter()
    with Lab() as lab:
        lab.apply(MANIFESTS)
        t_apply = time.perf_counter()
        while True:
            df = lab.probe("http://web/", n=1)
            if df.status.iloc[0] == 200:
                break
        t1 = time.perf_counter()
    return t1 - t0, t_apply - t0


def change_to_traffic(lab, rounds: int) -> tuple[list[float], list[float]]:
    """Apply a VirtualService flipping all traffic to another subset while a probe runs at full
    speed on one keep-alive connection; time from the apply() call to the first answer from the
    new version (and how long apply() itself took)."""
    visible, apply_s = [], []
    lab.apply(_vs("v1"))
    for i in range(rounds):
        target = "v2" if i % 2 == 0 else "v1"
        with lab.probing("http://web/", rate=20000, concurrency=1) as p:
            time.sleep(0.2)
            t_change = time.perf_counter() - p._t0
            a0 = time.perf_counter()
            lab.apply(_vs(target))
            apply_s.append(time.perf_counter() - a0)
            time.sleep(0.3)
        df = p.result()
        after = df[(df.t >= t_change) & (df.version == target)]
        visible.append(float(after.t.min() - t_change) if len(after) else float("nan"))
    return visible, apply_s


def throughput(lab, n: int, concurrency: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    df = lab.probe("http://web/", n=n, concurrency=concurrency)
    dt = time.perf_counter() - t0
    attributed = int(((df["flags"] != "") & (df.status > 0)).sum())
    return attributed / dt, dt, attributed


def wrk(lab, concurrency: int, seconds: int) -> float | None:
    if not shutil.which("wrk"):
        return None
    ip = lab.backend.lease.sidecar_ip
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-H", "Host: web",
                          f"http://{ip}:80/"], capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    t = time.perf_counter()
    from meshlab.lab import Lab
    import_s = time.perf_counter() - t

    cold = [cold_start(Lab) for _ in range(a.rounds)]
    res: dict = {"loadavg_1m_start": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
                 "import_s": round(import_s, 3),
                 "cold_start_s": round(statistics.median(c[0] for c in cold), 3),
                 "cold_start_apply_s": round(statistics.median(c[1] for c in cold), 3)}
    with Lab() as lab:
        lab.apply(MANIFESTS)
        lab.probe("http://web/", n=200)
        vis, app = change_to_traffic(lab, a.rounds)
        res["change_visible_ms"] = round(1000 * statistics.median(vis), 1)
        res["change_visible_ms_all"] = [round(1000 * v, 1) for v in vis]
        res["apply_call_ms"] = round(1000 * statistics.median(app), 1)
        lab.delete(_vs("v1"))
        probe_rates, wrk_rates = [], []
        for _ in range(max(1, a.rounds // 2)):
            r, _, _ = throughput(lab, a.n, a.concurrency)
            probe_rates.append(r)
            w = wrk(lab, a.concurrency, 3)
            if w:
                wrk_rates.append(w)
        res["probe_attributed_rps"] = round(statistics.median(probe_rates))
        # for context: the other paths (not targets)
        t0 = time.perf_counter()
        df = lab.probe("http://web/", n=a.n // 4, concurrency=a.concurrency, via="none")
        res["probe_via_kubeproxy_rps"] = round(len(df) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        df = lab.probe("http://web/", n=a.n // 10, concurrency=a.concurrency, keepalive=False)
        res["probe_sidecar_no_keepalive_rps"] = round(len(df) / (time.perf_counter() - t0))
        res["wrk_rps"] = round(statistics.median(wrk_rates)) if wrk_rates else None
        res["probe_to_wrk"] = round(res["probe_attributed_rps"] / res["wrk_rps"], 2) if wrk_rates else None
        res["lab_memory"] = _lab_memory()
        res["notebook_process_rss_mb"] = round(_rss_kb(os.getpid()) / 1024, 1)
    res["bookinfo_memory"] = bookinfo_memory(Lab)
    res["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        for k, v in res.items():
            print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
