"""The single-user figures of two checkouts, side by side in one run: this one and another (e.g.
the code before a change: `git worktree add /tmp/before main`).

Run: ``.venv/bin/python bench/compare.py /tmp/before [--runs 3] [--json]``. Each run is a whole
`bench/local_backend.py --json` of each checkout (its own bench file, its own package on
PYTHONPATH, this venv's dependencies), alternating so that both see the same machine load; the
table gives each figure's median over the runs, and the ratio after/before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
FIGURES = [("cold_start_s", "cold start: Lab() + apply → first 200 (s)"),
           ("change_visible_ms", "config change → visible to traffic (ms)"),
           ("apply_call_ms", "apply() call (ms)"),
           ("probe_attributed_rps", "probe throughput, attributed (req/s)"),
           ("wrk_rps", "wrk, same listener (req/s)"),
           ("lab_pss_mb", "whole lab memory, PSS (MB)"),
           ("lab_rss_mb", "whole lab memory, RSS (MB)")]


def one(checkout: Path, rounds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    r = subprocess.run([sys.executable, str(checkout / "bench" / "local_backend.py"), "--rounds", str(rounds),
                        "--json"], env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{checkout}: bench failed: {r.stderr[-2000:]}")
    out = json.loads(r.stdout)
    mem = out.get("lab_memory") or {}
    out["lab_pss_mb"] = mem.get("pss_mb")
    out["lab_rss_mb"] = mem.get("rss_mb")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("before", type=Path, help="the other checkout (the code before the change)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="rounds inside each bench/local_backend.py run")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(a.runs):
        for label, checkout in (("before", a.before.resolve()), ("after", HERE)):
            runs[label].append(one(checkout, a.rounds))
    loads = [r[k] for rs in runs.values() for r in rs for k in ("loadavg_1m_start", "loadavg_1m_end")]
    table = {}
    for key, what in FIGURES:
        vals = {label: [r[key] for r in rs if r.get(key) is not None] for label, rs in runs.items()}
        med = {label: statistics.median(v) if v else None for label, v in vals.items()}
        ratio = med["after"] / med["before"] if med["before"] and med["after"] is not None else None
        table[key] = {"what": what, "before": med["before"], "after": med["after"],
                      "after_over_before": round(ratio, 2) if ratio else None, "all": vals}
    out = {"runs": a.runs, "loadavg_1m": [min(loads), max(loads)], "cores": os.cpu_count(), "figures": table}
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{a.runs} runs each, alternating; load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
        for key, row in table.items():
            print(f"{row['what']:48} before {row['before']!s:>9}  after {row['after']!s:>9}  "
                  f"ratio {row['after_over_before']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
