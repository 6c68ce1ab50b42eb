"""The single-user promises, measured: nothing outlives a killed kernel, parallel labs never collide,
a long-running lab stays flat, and everything a lab listens on is loopback or a UNIX socket.

Run: ``.venv/bin/python bench/promises.py [--kills 40] [--parallel 18] [--soak 300] [--json]``;
``PYTHONPATH=/tmp/before`` runs another checkout's code (bench/README.md gives both, one run).

- kills: a kernel stand-in starts a lab (3 pods, 2 Envoys, kube-proxy), probes once, and is
  SIGKILLed; counted: its processes still running 10 s later (orphans).
- parallel: that many labs of this user at once (threads of one process), each 3 pods and a
  Service: distinct address blocks, every probe 200 — or, past the user's inotify instances
  (each lab's Envoys watch 7 xDS files; 128 per user by default), a refusal that says so.
- soak: one lab for that many seconds with a live `probing()` at 50 requests/s and a config change
  every 2 s; RSS and open descriptors of the notebook process and the lab's processes, first
  minute against last.
- loopback: every TCP socket a lab process listens on is in 127.0.0.0/8 (the admin API and pod
  control endpoints are UNIX sockets, which are not network-reachable at all).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _manifests import deployment, destination_rule, docs, service, virtual_service  # noqa: E402
from _pids import alive  # noqa: E402
from many_labs import _descendants  # noqa: E402

BASIC = docs(deployment("web", "v1", replicas=2, port=8080), deployment("web", "v2", port=8080),
             service("web", 80, target_port=8080))
WEB = docs(BASIC, destination_rule("web", ["v1", "v2"]))

KERNEL = textwrap.dedent("""
    import json, os, sys, threading
    from meshlab.lab import Lab
    lab = Lab()
    lab.apply(sys.argv[1])
    lab.probe("http://web/", n=1)
    print(json.dumps({"pid": os.getpid()}), flush=True)
    threading.Event().wait()
""")


def kills(n: int) -> dict:
    orphans, t0 = [], time.perf_counter()
    for _ in range(n):
        p = subprocess.Popen([sys.executable, "-c", KERNEL, WEB], stdout=subprocess.PIPE, text=True)
        json.loads(p.stdout.readline())                      # type: ignore[union-attr]
        kids = _descendants(p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait()
        end = time.monotonic() + 10
        while time.monotonic() < end and any(alive(k) for k in kids):
            time.sleep(0.05)
        left = [k for k in kids if alive(k)]
        orphans += left
        for k in left:
            os.kill(k, signal.SIGKILL)
    return {"kills": n, "orphans": len(orphans), "seconds": round(time.perf_counter() - t0, 1)}


def parallel(n: int) -> dict:
    from meshlab.lab import Lab
    blocks, statuses, errors = [], set(), []
    labs: list = []
    lock = threading.Lock()

    def one() -> None:
        try:
            lab = Lab()
            lab.apply(BASIC)                     # 7 xDS file watches a lab (4 sidecar, 3 gateway)
            df = lab.probe("http://web/", n=20)
            with lock:
                labs.append(lab)
                blocks.append(lab.backend.lease.block)
                statuses.update(int(s) for s in df.status)
        except Exception as e:          # counted: a collision shows up here
            with lock:
                errors.append(f"{type(e).__name__}: {str(e)[:200]}")
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lab in labs:
        lab.close()
    return {"labs": n, "started": len(blocks), "distinct_blocks": len(set(blocks)), "statuses": sorted(statuses),
            "errors": errors[:3]}


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _listening(pids: list[int]) -> list[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                addr, port = f[1].split(":")
                raw = bytes.fromhex(addr)
                ip = ".".join(str(b) for b in raw[::-1]) if len(raw) == 4 else raw.hex()
                out.append(f"{ip}:{int(port, 16)}")
    return out


def soak(seconds: float) -> dict:
    from meshlab.lab import Lab
    samples: list[tuple[float, int, int, int, int]] = []
    with Lab() as lab:
        lab.apply(WEB)
        vs = [virtual_service("web", ["web"], f"- route:\n  - destination: {{host: web, subset: {s}}}")
              for s in ("v1", "v2")]
        t0 = time.monotonic()
        i = 0
        run = lab.probing("http://web/", rate=50)
        kids = _descendants(os.getpid())
        listening = _listening(kids)
        while (now := time.monotonic() - t0) < seconds:
            lab.apply(vs[i % 2])
            i += 1
            if i % 5 == 0:
                kids = _descendants(os.getpid())
                samples.append((now, _rss_kb(os.getpid()), _fds(os.getpid()),
                                sum(_rss_kb(k) for k in kids), sum(_fds(k) for k in kids)))
            if len(run.snapshot()) > 20000:      # a chart keeps its recent window, as the widgets do
                run.stop()
                run.result()
                run = lab.probing("http://web/", rate=50)
            time.sleep(2)
        df = run.result()
    first = [s for s in samples if s[0] <= 60] or samples[:1]
    last = [s for s in samples if s[0] >= seconds - 60] or samples[-1:]

    def med(rows: list, k: int) -> float:
        return statistics.median(r[k] for r in rows)
    return {"seconds": seconds, "config_changes": i, "last_run_rows": len(df),
            "non_200": int((df.status != 200).sum()),
            "notebook_rss_mb": [round(med(first, 1) / 1024, 1), round(med(last, 1) / 1024, 1)],
            "notebook_fds": [med(first, 2), med(last, 2)],
            "lab_rss_mb": [round(med(first, 3) / 1024, 1), round(med(last, 3) / 1024, 1)],
            "lab_fds": [med(first, 4), med(last, 4)],
            "listening": sorted(set(listening)),
            "all_loopback": all(a.startswith("127.") for a in listening)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--parallel", type=int, default=18)
    ap.add_argument("--soak", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    import meshlab
    out = {"code": str(Path(meshlab.__file__).parent), "loadavg_1m_start": round(os.getloadavg()[0], 2),
           "kills": kills(a.kills), "parallel": parallel(a.parallel), "soak": soak(a.soak),
           "loadavg_1m_end": round(os.getloadavg()[0], 2)}
    print(json.dumps(out, indent=1) if a.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
