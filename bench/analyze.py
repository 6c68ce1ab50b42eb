"""Benchmark `meshlab.analyze` on a large cluster: 1,000 Services, 5,000 pods, 1,000 VS + 1,000 DR.

Run: `.venv/bin/python bench/analyze.py [--rounds 5] [--services 1000] [--json]`

The objects are generated as typed objects (what a lab holds), spread over 10 namespaces; each
Service has a Deployment of 5 replicas split across two versions, a DestinationRule with subsets
v1/v2 and a VirtualService splitting 90/10, with a few deliberate mistakes so every analyzer has
work to report. Reported: the median wall time of `analyze(objects)` (ClusterState + pods +
indexes + all rules), and separately of `load()` on the same objects as YAML text.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import yaml

from meshlab.analysis import analyze
from meshlab.manifests import load


def generate(n_services: int = 1000, replicas: int = 5, namespaces: int = 10) -> list[dict]:
    docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"team{k}"}}
                        for k in range(namespaces)]
    for i in range(n_services):
        ns, name = f"team{i % namespaces}", f"svc{i}"
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                     "spec": {"selector": {"app": name},
                              "ports": [{"name": "http", "port": 8080, "targetPort": 9080}]}})
        for version, count in (("v1", replicas - 1), ("v2", 1)):
            labels = {"app": name, "version": version}
            docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": f"{name}-{version}", "namespace": ns},
                         "spec": {"replicas": count, "selector": {"matchLabels": labels},
                                  "template": {"metadata": {"labels": labels},
                                               "spec": {"containers": [{"name": "app", "image": "app",
                                                                        "ports": [{"containerPort": 9080}]}]}}}})
        subsets = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]
        if i % 97 == 0:
            subsets.append({"name": "v3", "labels": {"version": "v3"}})      # IST0173
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                     "metadata": {"name": name, "namespace": ns}, "spec": {"host": name, "subsets": subsets}})
        other = f"svc{(i + 1) % n_services}.team{(i + 1) % namespaces}.svc.cluster.local"
        dest_v2 = "v9" if i % 89 == 0 else "v2"                               # IST0101 host+subset
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"hosts": [name], "http": [
                         {"match": [{"headers": {"x-canary": {"exact": "1"}}}],
                          "route": [{"destination": {"host": name, "subset": "v2"}}]},
                         {"match": [{"uri": {"prefix": "/other"}}], "timeout": "2s",
                          "route": [{"destination": {"host": other}}]},
                         {"route": [{"destination": {"host": name, "subset": "v1"}, "weight": 90},
                                    {"destination": {"host": name, "subset": dest_v2}, "weight": 10}]}]}})
    return docs


def _median_time(fn, rounds: int) -> tuple[float, list[float], float]:
    """Median wall time, all wall times, and median CPU time of this process (robust to a busy machine)."""
    times, cpu = [], []
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(times), times, statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    docs = generate(a.services)
    objects = load(docs)
    # load() reads at most 1,000 documents per file/string: hand it 500-document chunks.
    texts = [yaml.safe_dump_all(docs[i:i + 500]) for i in range(0, len(docs), 500)]
    findings = analyze(objects)
    n_pods = sum(d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment")
    med, times, cpu = _median_time(lambda: analyze(objects), a.rounds)
    med_load, _, cpu_load = _median_time(lambda: load(texts), max(1, a.rounds // 2))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.code] = counts.get(f.code, 0) + 1
    result = {"services": a.services, "pods": n_pods,
              "virtual_services": sum(d["kind"] == "VirtualService" for d in docs),
              "destination_rules": sum(d["kind"] == "DestinationRule" for d in docs),
              "analyze_median_s": round(med, 3), "analyze_runs_s": [round(t, 3) for t in times],
              "analyze_cpu_median_s": round(cpu, 3), "load_yaml_median_s": round(med_load, 3),
              "load_yaml_cpu_median_s": round(cpu_load, 3), "findings": counts,
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{a.services} Services, {n_pods} pods, {result['virtual_services']} VS, "
              f"{result['destination_rules']} DR")
        print(f"analyze(objects): median {med:.3f} s wall ({cpu:.3f} s CPU) over {a.rounds} runs "
              f"{result['analyze_runs_s']}")
        print(f"load(YAML text):  median {med_load:.3f} s wall ({cpu_load:.3f} s CPU)")
        print(f"load average: {result['load_average']}")
        print(f"findings: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
