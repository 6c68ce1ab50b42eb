"""How long the test API server (tests/_apiserver.py) takes to start and stop, and optionally how
long `make apiserver` takes to build it from nothing and again.

Run: .venv/bin/python bench/apiserver.py [--rounds 5] [--build]
Start: seconds from `start()` to etcd healthy, kube-apiserver /readyz, every CRD served (the point
the session fixture hands the server to the tests), then the stop (SIGTERM to both). Medians over
the rounds, with the load average beside them.
--build: `make apiserver` with an empty module cache and build cache in a temporary directory
(cold: downloads + compiles everything), then again after touching kube/go.mod (warm: Go's caches
full), then with kube/bin up to date (make alone). The shared caches are not touched.
"""

from __future__ import annotations

import argparse
import os
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


def _make(env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run(["make", "-s", "-C", str(REPO), "apiserver"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def bench_build() -> None:
    bins = [REPO / "kube" / "bin" / b for b in ("kube-apiserver", "etcd")]
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
        env |= {"GOMODCACHE": f"{tmp}/mod", "GOCACHE": f"{tmp}/cache", "GOFLAGS": "-modcacherw"}
        for b in bins:
            b.unlink(missing_ok=True)
        print(f"load before: {_load()}")
        print(f"  cold (empty caches)    {_make(env):7.1f} s")
        (REPO / "kube" / "go.mod").touch()
        print(f"  warm (go.mod touched)  {_make(env):7.1f} s")
        print(f"  up to date             {_make(env):7.2f} s   load after: {_load()}")


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
