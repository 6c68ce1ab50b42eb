"""Build and run times of the oracle (oracle/, Istio's own code linked as a Go module).

Run: python3 bench/oracle.py [--rounds 7] [--cold] [--json]

Measures, side by side in one run on this machine:
- cold build (--cold): `go build` of oracle/ with empty module and build caches (temporary
  GOMODCACHE and GOCACHE, so the shared caches are untouched), split into module download and
  compile+link; wall and CPU time;
- warm builds with the shared caches: unchanged sources (link only), one file changed;
- the binary's size;
- `simulate` on a Bookinfo-sized request and `analyze` on Istio's samples folder, in-process
  (Go benchmarks in oracle/cmd/meshlab-oracle/bench_test.go, one sample per -count), and the
  process start of the binary (`meshlab-oracle version`).
Figures are medians; the load average is printed because the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT / "oracle"
GOFLAGS = ["-trimpath", "-buildvcs=false"]
LDFLAGS = "-ldflags=-s -w"


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (children's user+sys) of one command; raises on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def copy_module(dst: Path) -> Path:
    """A copy of oracle/ without bin/, so builds never touch the working tree."""
    mod = dst / "oracle"
    shutil.copytree(ORACLE, mod, ignore=shutil.ignore_patterns("bin"))
    return mod


def cold_build(work: Path) -> dict:
    env = dict(os.environ, GOMODCACHE=str(work / "gomodcache"), GOCACHE=str(work / "gocache"), GOFLAGS="")
    mod = copy_module(work / "cold")
    dl = timed(["go", "mod", "download"], mod, env)
    build = timed(["go", "build", *GOFLAGS, LDFLAGS, "-o", str(work / "cold.bin"), "./cmd/meshlab-oracle"], mod, env)
    # What `make oracle-test` adds on top: test-only packages (istioctl's command) and test binaries.
    tests = timed(["go", "test", *GOFLAGS, "-run", "^$", "./..."], mod, env)
    sizes = {name: subprocess.run(["du", "-sm", str(work / name)], capture_output=True, text=True).stdout.split()[0]
             for name in ("gomodcache", "gocache")}
    # Let the caches be removed even though Go makes module files read-only.
    subprocess.run(["chmod", "-R", "u+w", str(work / "gomodcache")], check=False)
    return {"download_wall_s": dl[0], "download_cpu_s": dl[1], "build_wall_s": build[0], "build_cpu_s": build[1],
            "test_compile_wall_s": tests[0], "test_compile_cpu_s": tests[1],
            "gomodcache_mb": int(sizes["gomodcache"]), "gocache_mb": int(sizes["gocache"])}


def warm_builds(work: Path, rounds: int) -> dict:
    mod = copy_module(work / "warm")
    out = str(work / "warm.bin")
    build = ["go", "build", *GOFLAGS, LDFLAGS, "-o", out, "./cmd/meshlab-oracle"]
    timed(build, mod)  # fill the shared cache for this copy's content (trimpath: same keys as oracle/)
    unchanged, changed = [], []
    doc = mod / "internal" / "envoy" / "doc.go"
    text = doc.read_text()
    for i in range(rounds):
        os.remove(out)
        unchanged.append(timed(build, mod)[0])
        # A change that alters the compiled package (a comment alone may not), so the binary relinks.
        doc.write_text(text + f"\n// BenchEdit is a benchmark's edit.\nfunc BenchEdit() string {{ return \"{i} {time.time()}\" }}\n")
        changed.append(timed(build, mod)[0])
    doc.write_text(text)
    return {"unchanged_wall_s": statistics.median(unchanged), "one_file_changed_wall_s": statistics.median(changed),
            "binary_bytes": os.path.getsize(out)}


def go_benchmarks(rounds: int) -> dict:
    cmd = ["go", "test", *GOFLAGS, "-run", "^$", "-bench", ".", "-benchtime", "1x", "-count", str(rounds), "./cmd/meshlab-oracle"]
    res = subprocess.run(cmd, cwd=ORACLE, check=True, capture_output=True, text=True)
    samples: dict[str, list[float]] = {}
    for m in re.finditer(r"^(Benchmark\w+)-\d+\s+\d+\s+(\d+) ns/op", res.stdout, re.M):
        samples.setdefault(m.group(1), []).append(int(m.group(2)) / 1e9)
    return {name: {"median_s": statistics.median(v), "samples_s": v} for name, v in samples.items()}


def process_start(binary: Path, rounds: int) -> float:
    walls = [timed([str(binary), "version"], ROOT)[0] for _ in range(rounds)]
    return statistics.median(walls)


def cli_analyze(binary: Path, rounds: int) -> float | None:
    """`meshlab-oracle analyze --json` on Istio's samples folder, as a process (exit 79 expected)."""
    samples = ROOT.parent / "shared" / "reference" / "istio-samples"
    if not samples.is_dir():
        return None
    walls = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = subprocess.run([str(binary), "analyze", "--json", str(samples)], capture_output=True)
        walls.append(time.perf_counter() - t0)
        if res.returncode != 79:
            raise RuntimeError(f"analyze exited {res.returncode}: {res.stderr.decode()}")
    return statistics.median(walls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cold", action="store_true", help="also build with empty caches (minutes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("go") is None:
        print("bench/oracle.py needs Go on PATH", file=sys.stderr)
        return 2
    report: dict = {"load_average_start": os.getloadavg()[0], "go": subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(prefix="meshlab-oracle-bench-") as tmp:
        work = Path(tmp)
        if args.cold:
            report["cold"] = cold_build(work)
        report["warm"] = warm_builds(work, args.rounds)
        binary = work / "warm.bin"
        report["process_start_s"] = process_start(binary, args.rounds)
        report["cli_analyze_samples_s"] = cli_analyze(binary, args.rounds)
    report["in_process"] = go_benchmarks(args.rounds)
    report["load_average_end"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['go']}; load average {report['load_average_start']:.1f} → {report['load_average_end']:.1f}")
    if "cold" in report:
        c = report["cold"]
        print(f"cold: download {c['download_wall_s']:.0f} s wall; compile+link {c['build_wall_s']:.0f} s wall, {c['build_cpu_s']:.0f} s CPU; "
              f"then test binaries {c['test_compile_wall_s']:.0f} s wall, {c['test_compile_cpu_s']:.0f} s CPU; "
              f"caches {c['gomodcache_mb']} MB modules, {c['gocache_mb']} MB build")
    w = report["warm"]
    print(f"warm: unchanged {w['unchanged_wall_s']:.1f} s, one file changed {w['one_file_changed_wall_s']:.1f} s; binary {w['binary_bytes'] / 1e6:.0f} MB")
    print(f"process start (meshlab-oracle version): {report['process_start_s'] * 1000:.0f} ms")
    if report["cli_analyze_samples_s"] is not None:
        print(f"meshlab-oracle analyze --json <samples> (process): {report['cli_analyze_samples_s'] * 1000:.0f} ms")
    for name, v in report["in_process"].items():
        print(f"{name}: median {v['median_s'] * 1000:.0f} ms over {len(v['samples_s'])} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
