"""How long the whole course takes to execute headless, and how much memory it needs at peak.

Why: Binder guarantees 1–2 GB and learners wait for every cell; the course promises to run end to
end in under 2 minutes and under 1 GB. Each chapter runs in a fresh kernel with nbclient (what
`make course` and the notebooks test do). A sampler thread sums the memory of every process under
this one — the kernel and everything it starts (Envoys, pods, kube-proxy) — every 0.1 s (RSS) and
every 0.5 s (PSS, which counts shared pages once: what a container memory limit sees).

Run: `.venv/bin/python bench/course.py [--rounds 3] [--json] [--keep DIR] [--baseline DIR]`
(`--keep` writes the executed notebooks there, to look at the outputs; `--baseline` runs another
checkout's chapters with its own meshlab package — e.g. `git archive <commit> | tar -x -C DIR` —
in rounds alternating with this checkout's, and prints the ratio of the median totals).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


class _Sampler:
    """Peak summed RSS / PSS of all descendants of this process."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            procs = self.me.children(recursive=True)
            rss = pss = 0
            for p in procs:
                try:
                    if tick % 5 == 0:
                        full = p.memory_full_info()
                        rss += full.rss
                        pss += getattr(full, "pss", full.rss)
                    else:
                        rss += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            if tick % 5 == 0:
                self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            tick += 1
            self._stop.wait(0.1)

    def __enter__(self) -> "_Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_chapter(path: Path, keep: Path | None) -> dict:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    with _Sampler() as s:
        client.execute()
    wall = time.perf_counter() - t0
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    return {"chapter": path.stem, "seconds": round(wall, 2), "peak_rss_mb": round(s.peak_rss / 2**20),
            "peak_pss_mb": round(s.peak_pss / 2**20), "processes": s.peak_procs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="write executed notebooks here")
    ap.add_argument("--only", nargs="*", default=None, metavar="NN",
                    help="run only the chapters whose number is listed (e.g. --only 05 06)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout whose chapters (and package) run in alternating rounds")
    args = ap.parse_args(argv)
    if args.baseline is not None:
        return _side_by_side(args.baseline.resolve(), args.rounds)
    # `!meshlab doctor` in chapter 0 runs this environment's CLI
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    chapters = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")) if args.only is None or p.name[:2] in args.only]
    rounds = []
    for r in range(args.rounds):
        rows = [run_chapter(p, args.keep if r == 0 else None) for p in chapters]
        rounds.append(rows)
        if not args.json:
            total = sum(x["seconds"] for x in rows)
            print(f"round {r + 1}: {total:.1f} s total, peak {max(x['peak_rss_mb'] for x in rows)} MB RSS / "
                  f"{max(x['peak_pss_mb'] for x in rows)} MB PSS", flush=True)
            for x in rows:
                print(f"  {x['chapter']:28s} {x['seconds']:6.1f} s  {x['peak_rss_mb']:5d} MB RSS  "
                      f"{x['peak_pss_mb']:5d} MB PSS  {x['processes']} processes", flush=True)
    summary = {
        "rounds": rounds,
        "median_total_s": statistics.median(sum(x["seconds"] for x in rows) for rows in rounds),
        "median_chapter_s": {c.stem: statistics.median(rows[i]["seconds"] for rows in rounds)
                             for i, c in enumerate(chapters)},
        "peak_rss_mb": max(x["peak_rss_mb"] for rows in rounds for x in rows),
        "peak_pss_mb": max(x["peak_pss_mb"] for rows in rounds for x in rows),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"median total {summary['median_total_s']:.1f} s over {args.rounds} round(s); "
              f"peak {summary['peak_rss_mb']} MB RSS / {summary['peak_pss_mb']} MB PSS; "
              f"load average {', '.join(f'{x:.1f}' for x in summary['load_average'])}")
    return 0


def _side_by_side(baseline: Path, n_rounds: int) -> int:
    """Baseline and this checkout, alternating rounds in one run: the kernel imports the
    baseline's meshlab through PYTHONPATH (ahead of the editable install)."""
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    totals: dict[str, list[float]] = {"baseline": [], "this": []}
    for r in range(n_rounds):
        for name, root in (("baseline", baseline), ("this", ROOT)):
            if name == "baseline":
                os.environ["PYTHONPATH"] = str(root)
            else:
                os.environ.pop("PYTHONPATH", None)
            rows = [run_chapter(p, None) for p in sorted((root / "notebooks").glob("[0-9][0-9]-*.ipynb"))]
            totals[name].append(sum(x["seconds"] for x in rows))
            print(f"round {r + 1} {name:8s} {totals[name][-1]:6.1f} s  "
                  + "  ".join(f"{x['chapter'][:2]} {x['seconds']:.1f} s" for x in rows)
                  + f"  peak {max(x['peak_pss_mb'] for x in rows)} MB PSS  load {os.getloadavg()[0]:.1f}", flush=True)
    before, after = (statistics.median(totals[k]) for k in ("baseline", "this"))
    print(f"median total: baseline {before:.1f} s, this {after:.1f} s, ratio {after / before:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
