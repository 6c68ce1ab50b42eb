"""How many learners' labs one host holds: N labs started together, each probing, until memory or
latency breaks.

Run (root, so that every learner is a Unix user of their own, as on a JupyterHub host):
``.venv/bin/python bench/many_labs.py [--ns 1,2,4,8,12] [--seconds 30] [--json]``.
Without root every learner runs as this user (then the per-user inotify limit — 128 instances,
about 15 small labs — caps N first; the report says so).

Each learner (a process standing in for a notebook kernel: it imports meshlab.lab, so pandas too):
starts `Lab()` and applies chapter 3's manifests (reviews v1 ×2, v2, Service, DestinationRule
subsets) — the cold start, all learners at once as at the start of a workshop — then keeps a
background `probing()` at 20 requests/s (a live chart) and, for `--seconds`, repeats the course's
interactions with a learner's pause between them:

- a config change: apply a VirtualService flipping the 80/20 weights (`apply()` returns when
  Envoy runs it);
- a probe cell: `probe(n=100)` through the sidecar;
- a pod knob: `set_pod(latency_ms=...)`.

Measured per N: cold start and interaction latencies (median, p95, max over all learners), errors,
memory per lab (PSS of the lab's processes: Envoys, pods, kube-proxy) and of the learner process
itself, MemAvailable, and the load average (the machine is shared). "Holds" means every learner
started, nothing failed (no error, no non-200 row) and the p95 of every kind of interaction stayed
under one second.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_backend import _pss_kb  # noqa: E402  (bench/ is not a package)
MANIFESTS = [str(REPO / "notebooks" / "manifests" / "01-service"),
             str(REPO / "notebooks" / "manifests" / "03-subsets" / "destinationrule-subsets.yaml")]

LEARNER = textwrap.dedent("""
    import json, os, sys, time, warnings
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    from meshlab.lab import Lab
    lab = Lab()
    lab.apply(json.loads(sys.argv[1]))
    while set(lab.probe("http://reviews:9080/", n=1).status) != {200}:
        pass
    cold = time.perf_counter() - t0
    print(json.dumps({"ready": cold, "pid": os.getpid()}), flush=True)
    seconds = float(sys.stdin.readline())
    def vs(w):
        return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
                "spec": {"hosts": ["reviews"], "http": [{"route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": w},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 100 - w}]}]}}
    times = {"config_change": [], "probe_100": [], "pod_knob": []}
    errors, bad_rows, i = [], 0, 0
    chart = lab.probing("http://reviews:9080/", rate=20)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        i += 1
        for what, act in (("config_change", lambda: lab.apply(vs(80 if i % 2 else 20))),
                          ("probe_100", lambda: lab.probe("http://reviews:9080/", n=100)),
                          ("pod_knob", lambda: lab.set_pod("reviews-v2", latency_ms=i % 3))):
            t = time.perf_counter()
            try:
                out = act()
                if what == "probe_100":
                    bad_rows += int((out.status != 200).sum())
            except Exception as e:
                errors.append(f"{what}: {type(e).__name__}: {str(e)[:200]}")
            times[what].append(time.perf_counter() - t)
            time.sleep(0.5)                        # the learner reads the output
    df = chart.result()
    bad_rows += int((df.status != 200).sum())
    print(json.dumps({"times": times, "errors": errors, "bad_rows": bad_rows, "chart_rows": len(df)}), flush=True)
    sys.stdin.readline()
    lab.close()
""")


# ------------------------------------------------------------------------------------ processes

def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                kids = [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
                out += kids
                todo += kids
        except OSError:
            pass
    return out


def _mem_available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return -1


def _q(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# ------------------------------------------------------------------------------------- learners

class Learner:
    """One learner: a Unix user of their own (root only), their own TMPDIR."""

    def __init__(self, i: int, n: int, base: Path, as_users: bool, python: str, pythonpath: str) -> None:
        self.name = f"mlb{os.getpid() % 10000}n{n}i{i}"
        self.tmp = base / self.name
        self.tmp.mkdir(mode=0o700)
        self.argv_prefix: list[str] = []
        self.uid = None
        if as_users:
            subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell",
                            "/usr/sbin/nologin", self.name], check=True, capture_output=True)
            pw = pwd.getpwnam(self.name)
            self.uid = pw.pw_uid
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            self.argv_prefix = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        env = {"PATH": os.environ["PATH"], "HOME": str(self.tmp), "TMPDIR": str(self.tmp), "LANG": "C.UTF-8"}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        self.proc = subprocess.Popen([*self.argv_prefix, python, "-c", LEARNER, json.dumps(MANIFESTS)], env=env,
                                     cwd=self.tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid: int | None = None

    def read(self, timeout: float) -> dict | None:
        import select
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if r else ""          # type: ignore[union-attr]
        return json.loads(line) if line else None

    def send(self, text: str) -> None:
        try:
            self.proc.stdin.write(text + "\n")                   # type: ignore[union-attr]
            self.proc.stdin.flush()                              # type: ignore[union-attr]
        except OSError:
            pass

    def memory(self) -> tuple[int, int]:
        """(PSS of the learner process, PSS of its lab's processes), kB."""
        root = self.pid or self.proc.pid
        return _pss_kb(root), sum(_pss_kb(p) for p in _descendants(root))

    def end(self) -> None:
        self.send("")
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.uid is not None:
            for entry in Path("/proc").iterdir():           # anything left by this test user, by pid
                try:
                    if entry.name.isdigit() and entry.stat().st_uid == self.uid:
                        os.kill(int(entry.name), 9)
                except OSError:
                    pass
            subprocess.run(["userdel", self.name], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _interpreter(as_users: bool) -> tuple[str, str]:
    """A Python every learner can run (a workshop host's system Python), and its PYTHONPATH."""
    if not as_users:
        return sys.executable, ""
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sh", "-c",
                            'exec "$0" -I -S -c pass', sys.executable], capture_output=True)
    if probe.returncode == 0:
        return sys.executable, ""
    system = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    return system, f"{REPO}:{sysconfig.get_paths()['purelib']}"


def run_n(n: int, seconds: float, as_users: bool, base: Path) -> dict:
    python, pythonpath = _interpreter(as_users)
    load0 = os.getloadavg()[0]
    mem0 = _mem_available_mb()
    t0 = time.perf_counter()
    learners = [Learner(i, n, base, as_users, python, pythonpath) for i in range(n)]
    res: dict = {"n": n, "loadavg_1m_start": round(load0, 2), "mem_available_mb_start": mem0}
    try:
        ready = [lr.read(300) for lr in learners]
        failed = [lr.proc.stderr.read()[-400:] if r is None else None for lr, r in zip(learners, ready)]  # type: ignore
        res["started"] = sum(r is not None for r in ready)
        res["start_failures"] = [f for f in failed if f][:3]
        colds = [r["ready"] for r in ready if r]
        res["all_ready_s"] = round(time.perf_counter() - t0, 2)
        res["cold_start_s"] = {"median": round(statistics.median(colds), 2), "max": round(max(colds), 2)} if colds else None
        for lr, r in zip(learners, ready):
            lr.pid = r["pid"] if r else None
        for lr in learners:
            lr.send(str(seconds))
        time.sleep(min(seconds / 2, 10))
        mem = [lr.memory() for lr, r in zip(learners, ready) if r]
        res["mem_available_mb_running"] = _mem_available_mb()
        results = [lr.read(seconds + 120) for lr in learners]
        res["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
        times: dict[str, list[float]] = {}
        errors: list[str] = []
        bad = rows = 0
        for r in results:
            if not r:
                errors.append("a learner did not report")
                continue
            for k, v in r["times"].items():
                times.setdefault(k, []).extend(v)
            errors += r["errors"]
            bad += r["bad_rows"]
            rows += r["chart_rows"]
        every = [x for v in times.values() for x in v]
        res["interactions"] = {k: {"median_ms": round(1000 * statistics.median(v)), "p95_ms": round(1000 * _q(v, 0.95)),
                                   "max_ms": round(1000 * max(v)), "count": len(v)} for k, v in times.items() if v}
        res["interaction_p95_ms"] = round(1000 * _q(every, 0.95)) if every else None
        res["errors"] = errors[:5]
        res["error_count"] = len(errors)
        res["non_200_rows"] = bad
        res["chart_rows"] = rows
        if mem:
            res["learner_process_pss_mb"] = round(statistics.median(m[0] for m in mem) / 1024, 1)
            res["lab_pss_mb"] = round(statistics.median(m[1] for m in mem) / 1024, 1)
        worst = max((_q(v, 0.95) for v in times.values() if v), default=float("inf"))
        res["worst_p95_ms"] = round(1000 * worst) if every else None
        res["holds"] = bool(res["started"] == n and not errors and not bad and worst < 1.0)
    finally:
        for lr in learners:
            lr.end()
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", default="1,2,4,8,12,16", help="learner counts to try, in order; stops at the first "
                                                          "that does not hold")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--same-user", action="store_true", help="run every learner as this user")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    as_users = os.geteuid() == 0 and not a.same_user and all(shutil.which(t) for t in ("useradd", "setpriv"))
    base = Path(tempfile.mkdtemp(prefix="meshlab-bench-", dir="/tmp"))
    base.chmod(0o755)
    out = {"cores": os.cpu_count(), "as_separate_users": as_users,
           "mem_total_mb": int(Path("/proc/meminfo").read_text().split()[1]) // 1024, "runs": []}
    try:
        for n in (int(x) for x in a.ns.split(",")):
            r = run_n(n, a.seconds, as_users, base)
            out["runs"].append(r)
            if not a.json:
                print(json.dumps(r), flush=True)
            if not r["holds"]:
                break
    finally:
        shutil.rmtree(base, ignore_errors=True)
    held = [r["n"] for r in out["runs"] if r["holds"]]
    out["largest_n_holding"] = max(held) if held else 0
    print(json.dumps(out, indent=1) if a.json else f"largest N that holds: {out['largest_n_holding']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
