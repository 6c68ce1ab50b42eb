"""`python -m fidelity.routes`: meshlab's routing against Istio's, call by call.

    python -m fidelity.routes                    # the whole corpus: goldens vs the lab's real Envoy
    python -m fidelity.routes --set test         # what `make test` runs
    python -m fidelity.routes --golden           # ask the oracle again and rewrite stale goldens
    python -m fidelity.routes --only bookinfo    # scenarios whose name contains 'bookinfo'
    python -m fidelity.routes --file s.yaml      # scenarios from a file (e.g. a shrunk one), oracle asked live

For each scenario: the oracle's golden answer (regenerated first with `--golden`), the same
calls through one local Lab (real Envoy), a verdict per call (`fidelity.compare.judge`), and the
config-level comparison of meshlab's translator with istiod's output for the same state and
proxies. The last line is `fidelity: A/N calls agree over K scenarios (U unmodelled)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import corpus, oracle
from .compare import Verdict, config_diff, judge, meshlab_summary, requests_needed
from .known import KNOWN, explain_call
from .scenario import Scenario, build_state, read_scenarios


@dataclass
class Result:
    verdicts: list[Verdict] = field(default_factory=list)
    config: dict[str, list[str]] = field(default_factory=dict)   # scenario/proxy → differences
    problems: list[str] = field(default_factory=list)            # missing or stale goldens, rejections
    scenarios: int = 0
    known: dict[str, int] = field(default_factory=dict)          # known difference code → config items

    def known_calls(self) -> dict[str, int]:
        """Calls each known difference (`fidelity.known`) explains, by code."""
        out: dict[str, int] = {}
        for v in self.verdicts:
            if v.kind == "unmodelled" and v.known:
                out[v.known] = out.get(v.known, 0) + 1
        return out

    def counts(self) -> dict[str, int]:
        kinds = [v.kind for v in self.verdicts]
        return {"agree": kinds.count("agree"), "calls": len(kinds), "scenarios": self.scenarios,
                "unmodelled": kinds.count("unmodelled")}

    def line(self) -> str:
        c = self.counts()
        return f"fidelity: {c['agree']}/{c['calls']} calls agree over {c['scenarios']} scenarios ({c['unmodelled']} unmodelled)"


# ------------------------------------------------------------------------------------------ goldens

def regenerate(items: list[Scenario], *, jobs: int = 2, write: bool = True,
               log: Any = print) -> dict[str, dict[str, Any]]:
    """Ask the oracle about every scenario; write the goldens that changed (when `write`)."""
    if not oracle.available():
        raise SystemExit(f"the oracle is not built ({oracle.ORACLE}); run `make oracle` (needs Go)")
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        answers = list(pool.map(oracle.ask, items))
    changed = 0
    for a in answers:
        old = oracle.read_golden(a["scenario"])
        if old != a:
            changed += 1
            if write:
                oracle.write_golden(a)
    log(f"oracle: {len(answers)} scenarios in {time.monotonic() - t0:.1f}s, {changed} goldens "
        f"{'rewritten' if write else 'differ'}")
    return {a["scenario"]: a for a in answers}


def stale(items: list[Scenario]) -> list[str]:
    """Scenarios whose golden is missing or was made for another request (no Go needed)."""
    out = []
    for s in items:
        g = oracle.read_golden(s.name)
        if g is None or g.get("request") != oracle.current_hash(s):
            out.append(s.name)
    return out


def orphans(items: list[Scenario]) -> list[Path]:
    """Golden files no scenario of the corpus owns."""
    names = {oracle.golden_path(s.name) for s in items}
    return sorted(p for p in oracle.GOLDEN.rglob("*.json") if p not in names)


# ------------------------------------------------------------------------------------------ compare

def proxy_identities(scenario: Scenario) -> dict[str, Any]:
    """The lab's proxies for this scenario, as meshlab's translator sees them (id → identity)."""
    from meshlab.istiod.translate import ProxyIdentity
    from meshlab.names import INGRESS_GATEWAY, INGRESS_GATEWAY_LABELS, ISTIO_NAMESPACE

    from .scenario import CLIENT_LABELS
    out: dict[str, Any] = {}
    for i, ns in enumerate(oracle.sidecar_namespaces(scenario)):
        out[oracle.sidecar_id(ns)] = ProxyIdentity("sidecar", ns, dict(CLIENT_LABELS), f"127.0.0.{i + 3}", f"sleep.{ns}")
    out["gateway"] = ProxyIdentity("gateway", ISTIO_NAMESPACE, dict(INGRESS_GATEWAY_LABELS), "127.0.0.2", INGRESS_GATEWAY)
    return out


def translate(scenario: Scenario) -> dict[str, Any]:
    """meshlab's config for each of the scenario's proxies (id → ProxyConfig)."""
    from meshlab.istiod.translate import build_config
    st = build_state(scenario)
    return {pid: build_config(st, ident) for pid, ident in proxy_identities(scenario).items()}


def compare_config(scenario: Scenario, golden: dict[str, Any], known: dict[str, int] | None = None,
                   mine: dict[str, Any] | None = None) -> dict[str, list[str]]:
    out = {}
    mine = mine if mine is not None else translate(scenario)
    for pid, summary in golden.get("config", {}).items():
        if pid in mine:
            diff = config_diff(summary, meshlab_summary(mine[pid]), mine[pid].warnings, known)
            if diff:
                out[f"{scenario.name} {pid}"] = diff
    return out


def run(items: list[Scenario], *, lab: bool = True, log: Any = print, verbose: bool = False,
        goldens: dict[str, dict[str, Any]] | None = None) -> Result:
    res = Result()
    session = None
    if lab:
        from .local import LabSession
        session = LabSession()
    try:
        for s in items:
            g = (goldens or {}).get(s.name) or oracle.read_golden(s.name)
            if g is None:
                res.problems.append(f"{s.name}: no golden answer (python -m fidelity.routes --golden, needs Go)")
                continue
            if g.get("request") != oracle.current_hash(s):
                res.problems.append(f"{s.name}: the golden answer is stale (python -m fidelity.routes --golden)")
                continue
            if "rejected" in g:
                res.problems.append(f"{s.name}: Istio rejects the state: {g['rejected']}")
                continue
            res.scenarios += 1
            translated = translate(s)
            res.config.update(compare_config(s, g, res.known, translated))
            if session is None:
                continue
            try:
                session.load(s)
            except Exception as e:     # the lab refused what Istio accepts: every call disagrees
                log(f"disagree   {s.name}: the lab cannot apply it ({len(g['calls'])} calls): {e}")
                for entry in g["calls"]:
                    res.verdicts.append(Verdict(s.name, entry["call"], "disagree", [f"the lab cannot apply it: {e}"]))
                continue
            for call, entry in zip(s.calls, g["calls"]):
                try:
                    rows = session.probe(call, requests_needed(entry))
                except Exception as e:
                    v = Verdict(s.name, entry["call"], "disagree", [f"the probe failed: {e}"])
                    log(str(v))
                    res.verdicts.append(v)
                    continue
                v = judge(s.name, entry, rows)
                if v.kind == "disagree":
                    proxy = translated.get("gateway" if call.via == "gateway" else oracle.sidecar_id(call.namespace))
                    k = explain_call(entry, call, rows, proxy)
                    if k is not None:
                        v = Verdict(s.name, entry["call"], "unmodelled", [f"known difference {k.code}"] + v.reasons, k.code)
                res.verdicts.append(v)
                if v.kind != "agree" or verbose:
                    log(str(v))
    finally:
        if session is not None:
            session.close()
    return res


def report(res: Result, log: Any = print) -> None:
    for p in res.problems:
        log(f"problem    {p}")
    for where, diff in res.config.items():
        log(f"config     {where}:" + "".join(f"\n             {d}" for d in diff))
    other: dict[str, int] = {}
    for v in res.verdicts:
        if v.kind == "unmodelled" and not v.known:
            why = (v.reasons or ["?"])[0].split(":")[0]
            other[why] = other.get(why, 0) + 1
    for why, n in sorted(other.items(), key=lambda x: -x[1]):
        log(f"unmodelled {n} calls: {why}")
    calls = res.known_calls()
    for k in KNOWN:
        if calls.get(k.code) or res.known.get(k.code):
            log(f"known      {k.code}: {calls.get(k.code, 0)} calls, {res.known.get(k.code, 0)} config items — {k.reason}")
    log(f"config: {len(res.config)} proxy configs differ from istiod's over {res.scenarios} scenarios "
        f"({sum(res.known.values())} items a known difference explains)")
    log(res.line())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fidelity.routes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="all", help="all, test, or a corpus group (chapters, tests, samples, generated, extra)")
    ap.add_argument("--only", default="", help="only scenarios whose name contains this")
    ap.add_argument("--file", type=Path, help="scenarios from this YAML file instead (the oracle is asked live)")
    ap.add_argument("--golden", action="store_true", help="ask the oracle and rewrite goldens that changed")
    ap.add_argument("--no-lab", action="store_true", help="goldens and config-level comparison only")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--summary", type=Path, help="write the counts as JSON here (make fidelity)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print agreeing calls too")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    if args.file:
        items = [corpus.with_derived_calls(s) for s in read_scenarios(args.file)]
        goldens = regenerate(items, jobs=args.jobs, write=False)
    else:
        items = [s for s in corpus.scenarios(args.set) if args.only in s.name]
        if args.golden and not oracle.available():
            print(f"the oracle is not built ({oracle.ORACLE}; make oracle needs Go): comparing with the committed goldens")
            args.golden = False
        goldens = regenerate(items, jobs=args.jobs) if args.golden else None
        if args.golden and args.set == "all" and not args.only:
            for p in orphans(items):
                p.unlink()
                print(f"removed {p.relative_to(oracle.GOLDEN)} (no scenario owns it)")
    res = run(items, lab=not args.no_lab, verbose=args.verbose, goldens=goldens)
    print(f"ran {len(items)} scenarios in {time.monotonic() - t0:.0f}s")
    report(res)
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps({**res.counts(), "seconds": round(time.monotonic() - t0, 1),
                                            "part": "routes"}) + "\n")
    c = res.counts()
    return 0 if c["agree"] + c["unmodelled"] == c["calls"] and not res.problems else 1


if __name__ == "__main__":
    sys.exit(main())
