"""One call, two answers: the oracle's (golden) and the rows meshlab's real Envoy logged.

Per call the verdict is `agree`, `disagree` (with the reasons) or `unmodelled` (meshlab says, by a
named warning on the call's path, that it does not model something there; never counted as
agreement). What must agree, row by row: the route name, the status, the response flags and,
for answers from upstream, the cluster. With weighted routes or partial faults the oracle gives
several outcomes with their shares: every observed outcome must be one of them, and each share
must lie within five standard deviations (binomial, plus one request) of the oracle's.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SIGMAS = 5.0


@dataclass
class Verdict:
    scenario: str
    call: str
    kind: str                          # agree | disagree | unmodelled
    reasons: list[str] = field(default_factory=list)
    known: str = ""                    # the code of the known difference (fidelity.known) it is

    def __str__(self) -> str:
        return f"{self.kind:10} {self.scenario}: {self.call}" + "".join(f"\n             {r}" for r in self.reasons)


def requests_needed(entry: dict[str, Any]) -> int:
    """How many requests the lab sends for one call: 1 when the oracle's outcome is certain,
    enough for the share check otherwise."""
    outcomes = entry.get("outcomes") or []
    return 1 if len(outcomes) <= 1 else 200


def expected_key(o: dict[str, Any]) -> tuple[Any, ...]:
    kind = o.get("kind")
    if kind == "upstream":
        return ("upstream", 200, o.get("flags", "-"), o.get("cluster", ""))
    if kind == "passthrough":      # an ORIGINAL_DST cluster: the status is whatever the destination answers
        return ("upstream", None, o.get("flags", "-"), o.get("cluster") or "PassthroughCluster")
    if kind == "local_reply":
        return ("local", o.get("status"), o.get("flags", "-"))
    if kind == "connection_refused":
        return ("error", "refused")
    if kind == "connection_reset":
        return ("error", "reset")
    if kind == "dns":
        return ("error", "dns")
    return ("other", kind)


def observed_key(row: dict[str, Any]) -> tuple[Any, ...]:
    if row.get("error") or not row.get("status"):
        return ("error", row.get("error") or "no answer")
    flags = row.get("flags") or ""
    if row.get("cluster") and row.get("upstream"):
        return ("upstream", row["status"], flags, row["cluster"])
    return ("local", row["status"], flags)


def _fits(obs: tuple[Any, ...], exp: tuple[Any, ...]) -> bool:
    if obs[0] != exp[0] or len(obs) != len(exp):
        return False
    return all(e is None or o == e for o, e in zip(obs, exp))


def describe(key: tuple[Any, ...]) -> str:
    if key[0] == "upstream":
        return f"{key[1] or 'any'} {key[2]} from {key[3]}"
    if key[0] == "local":
        return f"{key[1]} {key[2]} (Envoy's own reply)"
    return f"{key[1]} ({key[0]})"


def judge(scenario: str, entry: dict[str, Any], rows: list[dict[str, Any]],
          unmodelled: list[str] | None = None) -> Verdict:
    """The verdict on one call: the golden `entry` against the lab's `rows`."""
    call = entry["call"]
    if unmodelled:
        return Verdict(scenario, call, "unmodelled", list(unmodelled))
    if "decided" in entry and entry["decided"].get("kind") == "unmodelled":
        return Verdict(scenario, call, "unmodelled", [entry["decided"].get("why", "")])
    if entry.get("error"):
        return Verdict(scenario, call, "unmodelled", [f"the oracle cannot evaluate it: {entry['error']}"])
    if "decided" in entry:
        outcomes = [{"percent": 100, "outcome": entry["decided"]}]
    else:
        outcomes = entry.get("outcomes") or []
    expected = [(expected_key(o["outcome"]), float(o["percent"]) / 100.0) for o in outcomes]
    reasons: list[str] = []
    if not rows:
        return Verdict(scenario, call, "disagree", ["the lab answered no request"])
    counts: Counter[int] = Counter()
    for row in rows:
        key = observed_key(row)
        hit = next((i for i, (e, _) in enumerate(expected) if _fits(key, e)), None)
        if hit is None:
            reasons.append(f"observed {describe(key)}; Istio: "
                           + " | ".join(f"{p:.0%} {describe(e)}" for e, p in expected))
            break
        counts[hit] += 1
    n = len(rows)
    if not reasons and len(expected) > 1:
        for i, (e, p) in enumerate(expected):
            k = counts[i]
            if abs(k - n * p) > SIGMAS * math.sqrt(n * p * (1 - p)) + 1:
                reasons.append(f"{describe(e)}: {k}/{n} observed, Istio's share {p:.1%}")
    route = entry.get("route", "") if entry.get("routeIndex", -1) >= 0 else ""
    if "decided" not in entry:
        seen = {r.get("route", "") for r in rows if r.get("flags")}
        if seen and seen != {route}:
            reasons.append(f"route {sorted(seen)}; Istio: {route!r}")
    return Verdict(scenario, call, "disagree" if reasons else "agree", reasons)


# ------------------------------------------------------------------------------- config level

def meshlab_summary(cfg: Any) -> dict[str, Any]:
    """meshlab's ProxyConfig in the golden's config form (`fidelity.oracle.config_summary`)."""
    clusters = {c["name"]: {"type": c.get("type", "EDS")} for c in cfg.clusters}
    routes = {}
    for name, rc in cfg.routes.items():
        routes[name] = [{"name": vh["name"], "domains": vh.get("domains", []),
                         "routes": [{"name": r.get("name", "")} for r in vh.get("routes", [])]}
                        for vh in rc.get("virtual_hosts", [])]
    return {"clusters": clusters, "listeners": sorted(lis["name"] for lis in cfg.listeners), "routes": routes}


def config_diff(istio: dict[str, Any], mine: dict[str, Any], warnings: list[str] | None = None,
                known: dict[str, int] | None = None) -> list[str]:
    """Differences in cluster names, listener names, route configurations, virtual hosts, their
    domains and their routes' names (in order). What only Istio builds and a known difference
    (`fidelity.known`) explains is counted in `known` (code → items) instead of listed."""
    from .known import explain_config
    out: list[str] = []
    warnings = warnings or []

    def sets(what: str, a: set[str], b: set[str]) -> None:
        only_istio = set()
        for name in a - b:
            k = explain_config(what, name, warnings)
            if k is None:
                only_istio.add(name)
            elif known is not None:
                known[k.code] = known.get(k.code, 0) + 1
        if only_istio:
            out.append(f"{what} only in Istio: {sorted(only_istio)}")
        if b - a:
            out.append(f"{what} only in meshlab: {sorted(b - a)}")

    sets("clusters", set(istio["clusters"]), set(mine["clusters"]))
    sets("listeners", set(istio["listeners"]), set(mine["listeners"]))
    sets("route configs", set(istio["routes"]), set(mine["routes"]))
    for rc in sorted(set(istio["routes"]) & set(mine["routes"])):
        iv = {v["name"]: v for v in istio["routes"][rc]}
        mv = {v["name"]: v for v in mine["routes"][rc]}
        sets(f"route config {rc}: virtual hosts", set(iv), set(mv))
        for vh in sorted(set(iv) & set(mv)):
            sets(f"{rc} / {vh}: domains", set(iv[vh]["domains"]), set(mv[vh]["domains"]))
            ir = [r["name"] for r in iv[vh]["routes"]]
            mr = [r["name"] for r in mv[vh]["routes"]]
            if ir != mr:
                out.append(f"{rc} / {vh}: routes {mr} in meshlab, {ir} in Istio")
    return out
