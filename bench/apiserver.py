"""How long the test control plane (tests/_apiserver.py) takes to start and stop, and optionally
how long `make apiserver` takes to build it from nothing and again.

Run: .venv/bin/python bench/apiserver.py [--rounds 5] [--build]
Start: seconds from `start()` to etcd healthy, kube-apiserver /readyz, every CRD served, the
controllers running (the point the session fixture hands the server to the tests), then the stop
(SIGTERM to all three). Medians over the rounds, with the load average beside them.
--build: `make apiserver` in a copy of the project's Makefile and kube/ (so the binaries the tests
use are not touched), with an empty module cache and build cache in a temporary directory (cold:
downloads + compiles everything), then again after touching kube/go.mod (warm: Go's caches full),
then with the binaries up to date (make alone). Wall time and the CPU time of everything make ran.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _apiserver import start  # noqa: E402


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench_start(rounds: int) -> None:
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            with start(Path(tmp)) as server:
                timings = dict(server.timings)
                t_stop = time.monotonic()
            timings["stop"] = time.monotonic() - t_stop
        for step, seconds in timings.items():
            samples.setdefault(step, []).append(seconds)
    print(f"start/stop, {rounds} rounds, load {_load()}")
    for step, values in samples.items():
        print(f"  {step:22} median {statistics.median(values):5.2f} s   ({', '.join(f'{v:.2f}' for v in values)})")


def _make(env: dict[str, str], project: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of make and everything it ran)."""
    before = os.times()
    t0 = time.monotonic()
    subprocess.run(["make", "-s", "-C", str(project), "apiserver"], check=True, env=env, stdout=subprocess.DEVNULL)
    after = os.times()
    return time.monotonic() - t0, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def bench_build() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        (project / "kube").mkdir(parents=True)
        shutil.copy(REPO / "Makefile", project / "Makefile")
        for name in ("go.mod", "go.sum", "kube.mk"):
            shutil.copy(REPO / "kube" / name, project / "kube" / name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
        env |= {"GOMODCACHE": f"{tmp}/mod", "GOCACHE": f"{tmp}/cache", "GOFLAGS": "-modcacherw"}
        print(f"load before: {_load()}")
        for label, prepare in (("cold (empty caches)", None), ("warm (go.mod touched)", "touch"),
                               ("up to date", None)):
            if prepare:     # a second later: the file system's clock ticks coarser than make's build
                time.sleep(1.0)
                (project / "kube" / "go.mod").touch()
            wall, cpu = _make(env, project)
            print(f"  {label:24} wall {wall:7.1f} s   CPU {cpu:7.1f} s   load {_load()}", flush=True)
        bins = {p.name: p.stat().st_size for p in (project / "kube" / "bin").iterdir()}
        print(f"  binaries: {bins}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build", action="store_true", help="also time make apiserver cold and warm (minutes)")
    args = ap.parse_args()
    if args.build:
        bench_build()
    bench_start(args.rounds)


if __name__ == "__main__":
    main()
