"""Istio's own validation (the webhook's checks) as analyzer findings: IST0106, IST0130, IST0131.

The CRD schema (what `meshlab.load` enforces) lets through configs that istiod's validation
rejects or warns about; `istioctl analyze` reports those as IST0106 (error), and rules that can
never be reached as IST0130 / IST0131. Only the checks relevant to traffic management are here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Iterator

from ..errors import Problem
from ..manifests import field_line, webhook
from ..manifests.messages import Doc, Where
from ..names import host_matches
from ..objects import DestinationRule, HTTPMatchRequest, VirtualService
from .snapshot import Finding, Snapshot, applies_to_mesh, finding, rule_name


def _err(obj, msg: str, field: str, fix: str = "") -> Finding:
    return finding(obj, "IST0106", f"Schema validation error: {msg}",
                   fix or "The API server's Istio webhook rejects this object; fix the field named.", field)


# ----------------------------------------------------------------------------------------- IST0106

def schema_validation(s: Snapshot) -> Iterator[Finding]:
    for vs in s.virtual_services:
        yield from _validate_vs(vs)
    for dr in s.destination_rules:
        yield from _validate_dr(dr)


def refused_by_validation(s: Snapshot) -> Iterator[Finding]:
    """What `meshlab.load` refuses for Istio's validation (manifests/webhook.py: regexes RE2 does not
    take, retryOn policies, subset names, header names, durations…), one IST0106 per problem, on
    the object, which is analyzed with the others as istioctl does (schema.ValidationAnalyzer).
    Checked here again, so typed objects that never went through `load` are judged the same."""
    for obj in [*s.virtual_services, *s.destination_rules, *s.service_entries]:
        if s.is_synthetic_obj(obj):
            continue
        problems: list[Problem] = []
        data = {"metadata": {"name": obj.name, "namespace": obj.namespace}}   # all Where reads of it
        where = Where(Doc(data, None, "", None), obj.kind, data, problems)
        where.obj = obj
        webhook.check_object(obj, where)
        for p in problems:
            f = finding(obj, "IST0106", f"Schema validation error: {p.message}",
                        "Istio's webhook refuses this object (kubectl apply fails); fix the field named.",
                        p.field or "")
            line = field_line(obj.source, p.field) if p.field and obj.source else None
            yield replace(f, source=f"{obj.source.file}:{line}") if line and obj.source else f


def _validate_vs(vs: VirtualService) -> Iterator[Finding]:
    """Istio's validation rules `meshlab.load` lets through (manifests/webhook.py has the others)."""
    spec = vs.spec
    if not spec.hosts:
        if spec.gateways:
            yield _err(vs, "delegate virtual service must have no gateways specified", "spec.gateways")
    mesh = applies_to_mesh(vs)
    for i, h in enumerate(spec.hosts):
        if mesh and h == "*":
            yield _err(vs, "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                       f"spec.hosts[{i}]", "List the service hosts explicitly; `*` is only valid with gateways.")
    for i in range(len(spec.hosts)):
        for j in range(i + 1, len(spec.hosts)):
            if host_matches(spec.hosts[i], spec.hosts[j]):
                yield _err(vs, f"duplicate hosts in virtual service: {spec.hosts[i]} & {spec.hosts[j]}", "spec.hosts")
    if not spec.http and not spec.tcp and not spec.tls:
        yield _err(vs, "http, tcp or tls must be provided in virtual service", "spec")
    for i, rule in enumerate(spec.http):
        if rule.redirect is None and rule.direct_response is None and not rule.route and rule.delegate is None:
            yield _err(vs, "HTTP route, redirect or direct_response is required", f"spec.http[{i}]",
                       "Give the rule a `route:` with at least one destination.")


def _validate_dr(dr: DestinationRule) -> Iterator[Finding]:
    seen: set[str] = set()
    for i, sub in enumerate(dr.spec.subsets):
        if sub.name in seen:
            yield _err(dr, f"duplicate subset names: {sub.name}", f"spec.subsets[{i}].name")
        seen.add(sub.name)


# --------------------------------------------------------------------------------- IST0130/IST0131

def _match_key(m: HTTPMatchRequest | dict[str, Any]) -> str:
    data = m.model_dump(exclude_none=True, by_alias=True) if isinstance(m, HTTPMatchRequest) else dict(m)
    data.pop("name", None)
    return json.dumps(data, sort_keys=True)


def unreachable_rules(s: Snapshot) -> Iterator[Finding]:
    """Rules after a match-less rule, or whose matches all repeat earlier ones, are never used."""
    for vs in s.virtual_services:
        yield from _unreachable_http(vs)
        for section, rules in (("tcp", vs.spec.tcp), ("tls", vs.spec.tls)):
            yield from _unreachable_plain(vs, section, rules)


def _unused(vs, ruleno: str, reason: str, field: str) -> Finding:
    return finding(vs, "IST0130", f"VirtualService rule {ruleno} not used ({reason}).",
                   "Envoy takes the first rule that matches: move this rule above the catch-all, give the "
                   "earlier rule a narrower match, or delete it.", field)


def _ineffective(vs, ruleno: str, matchno: str, dupno: str, field: str) -> Finding:
    return finding(vs, "IST0131",
                   f"VirtualService rule {ruleno} match {matchno} is not used (duplicate/overlapping match in rule {dupno}).",
                   "An earlier rule already takes these requests; reorder the rules (most specific first) or "
                   "remove the duplicate match.", field)


def _unreachable_http(vs: VirtualService) -> Iterator[Finding]:
    rules = vs.spec.http
    seen: dict[str, int] = {}
    empty_at = -1
    prefixed: list[dict[str, Any]] = []
    for n, rule in enumerate(rules):
        name = rule_name(rule.name, n)
        if not rule.match:
            if empty_at >= 0:
                yield _unused(vs, name, "only the last rule can have no matches", f"spec.http[{n}]")
            empty_at = n
            continue
        dups = 0
        for mn, m in enumerate(rule.match):
            if empty_at >= 0:
                yield _unused(vs, name, "route without matches defined before", f"spec.http[{n}]")
                continue
            key = _match_key(m)
            if key in seen:
                yield _ineffective(vs, name, rule_name(m.name, mn), rule_name(rules[seen[key]].name, seen[key]),
                                   f"spec.http[{n}].match[{mn}]")
                dups += 1
                continue
            seen[key] = n
            p = _prefix_view(m, name, rule_name(m.name, mn), n, mn)
            if p is not None:
                prefixed.append(p)
        if dups == len(rule.match):
            yield _unused(vs, name, "all matches used by prior rules", f"spec.http[{n}]")
    for i, a in enumerate(prefixed):
        for b in prefixed[i + 1:]:
            if b["prefix"] == a["prefix"]:
                continue
            if _covers(a, b):
                yield _ineffective(vs, b["route"], f"{b['match']} of prefix {b['prefix']}",
                                   f"{a['match']} of prefix {a['prefix']} on {a['route']}", b["field"])


def _exact_or_prefix(sm) -> str:
    if sm is None:
        return ""
    if sm.exact:
        return "exact:" + sm.exact
    if sm.prefix:
        return "prefix:" + sm.prefix
    return ""


def _prefix_view(m: HTTPMatchRequest, route: str, match: str, n: int, mn: int) -> dict[str, Any] | None:
    """What istio's overlap check compares for a `uri.prefix` match."""
    if m.uri is None or not m.uri.prefix:
        return None
    return {"route": route, "match": match, "prefix": m.uri.prefix, "port": m.port or 0,
            "method": _exact_or_prefix(m.method) or "exact:GET", "authority": _exact_or_prefix(m.authority),
            "headers": {k: _exact_or_prefix(v) for k, v in (m.headers or {}).items()},
            "query": {k: _exact_or_prefix(v) for k, v in (m.query_params or {}).items()},
            "without": {k: _exact_or_prefix(v) for k, v in (m.without_headers or {}).items()},
            "field": f"spec.http[{n}].match[{mn}]"}


def _covers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if not b["prefix"].startswith(a["prefix"]) or a["port"] != b["port"]:
        return False
    for k in ("method", "authority"):
        if a[k] != b[k] and not a[k].startswith(b[k]):
            return False
    for k in ("headers", "query", "without"):
        if len(a[k]) != len(b[k]):
            return False
        for hk, hv in a[k].items():
            if hk not in b[k] or (hv != b[k][hk] and not hv.startswith(b[k][hk])):
                return False
    return True


def _unreachable_plain(vs: VirtualService, section: str, rules: list[dict[str, Any]]) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    empty_at = -1
    for n, rule in enumerate(rules):
        name = f"#{n}"
        matches = rule.get("match") or []
        if not matches:
            if empty_at >= 0:
                yield _unused(vs, name, "only the last rule can have no matches", f"spec.{section}[{n}]")
            empty_at = n
            continue
        dups = 0
        for mn, m in enumerate(matches):
            if empty_at >= 0:
                yield _unused(vs, name, "route without matches defined before", f"spec.{section}[{n}]")
                continue
            key = _match_key(m or {})
            if key in seen:
                yield _ineffective(vs, name, f"#{mn}", f"#{seen[key]}", f"spec.{section}[{n}].match[{mn}]")
                dups += 1
            else:
                seen[key] = n
        if dups == len(matches):
            yield _unused(vs, name, "all matches used by prior rules", f"spec.{section}[{n}]")


RULES = (refused_by_validation, schema_validation, unreachable_rules)
