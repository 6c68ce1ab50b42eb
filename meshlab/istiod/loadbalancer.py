"""Locality-aware load balancing, as istiod writes it into clusters and their endpoints.

istiod groups a cluster's endpoints by locality (`region/zone/subzone`: the pod's node's topology
labels, or its own `topology.istio.io/locality` label), one `LocalityLbEndpoints` per locality,
sorted by name, each weighted by its endpoints. Relative to the proxy that gets the config it then
applies the effective locality setting (pilot/pkg/networking/core/loadbalancer/loadbalancer.go):

* `distribute` — each locality's share of the traffic (`load_balancing_weight`), localities not
  listed for the proxy's own are dropped; `locality_weighted_lb_config` on the cluster;
* failover — **only when the cluster has outlier detection** (otherwise Envoy would never see the
  local endpoints fail, so istiod does not prioritise them): priorities 0 (same
  region/zone/subzone), 1 (same zone), 2 (same region), 3 (other regions; 4 for regions the
  `failover` list does not name for the proxy's region), compacted to 0..N; `failoverPriority`
  labels split localities further. Envoy sends to priority 0 and spills over only as its hosts
  become unhealthy (ejected).

The mesh default (`localityLbSetting: {enabled: true}`) applies when a DestinationRule sets none;
a Service's `trafficDistribution: PreferClose` forces failover by zone even without outlier
detection (model.GetTrafficDistribution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..state import HOSTNAME_LABEL, REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL

#: Istio's labels for the proxy's network and cluster (istio.io/api label/labels.yaml).
NETWORK_LABEL = "topology.istio.io/network"
CLUSTER_LABEL = "topology.istio.io/cluster"
#: The cluster ID istiod gives its own Kubernetes registry by default.
CLUSTER_ID = "Kubernetes"
#: What a Service's `trafficDistribution` (or the `networking.istio.io/traffic-distribution`
#: annotation) makes istiod prefer.
_PREFER_SAME_ZONE = [NETWORK_LABEL, REGION_LABEL, ZONE_LABEL]
_PREFER_SAME_NODE = [NETWORK_LABEL, REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL, HOSTNAME_LABEL]
TRAFFIC_DISTRIBUTION_ANNOTATION = "networking.istio.io/traffic-distribution"


@dataclass
class LocalitySetting:
    """The locality setting in effect for a cluster (a DestinationRule's `localityLbSetting`, the
    Service's traffic distribution, or the mesh default) and whether it forces failover."""

    setting: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    source: str = "mesh default"

    @property
    def distribute(self) -> list[dict[str, Any]] | None:
        return self.setting.get("distribute") or None

    @property
    def failover(self) -> list[dict[str, Any]]:
        return list(self.setting.get("failover") or [])

    @property
    def failover_priority(self) -> list[str]:
        return [str(x) for x in self.setting.get("failoverPriority") or []]


def split_locality(locality: str) -> tuple[str, str, str]:
    """`region/zone/subzone` → its three parts ('' for those it lacks)."""
    parts = (locality or "").split("/")
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def envoy_locality(locality: str) -> dict[str, str]:
    """`region/zone/subzone` → Envoy's Locality (empty fields left out, as protobuf JSON does)."""
    region, zone, sub = split_locality(locality)
    return {k: v for k, v in (("region", region), ("zone", zone), ("sub_zone", sub)) if v}


def topology_labels(labels: dict[str, str], locality: str, node: str = "") -> dict[str, str]:
    """A workload's labels as istiod augments them (labelutil.AugmentLabels): its locality's
    region, zone and subzone, the cluster ID and the node's hostname."""
    out = dict(labels)
    region, zone, sub = split_locality(locality)
    for key, value in ((REGION_LABEL, region), (ZONE_LABEL, zone), (SUBZONE_LABEL, sub),
                       (CLUSTER_LABEL, CLUSTER_ID), (HOSTNAME_LABEL, node)):
        if value:
            out[key] = value
    return out


def effective_setting(lb: Any, traffic_distribution: str, annotations: dict[str, str],
                      where: str, warnings: list[str]) -> LocalitySetting | None:
    """Which locality setting applies (loadbalancer.GetEffectiveLbSetting): the DestinationRule's
    `localityLbSetting` (None when it says `enabled: false`), else the Service's traffic
    distribution, else the mesh default (`enabled: true`, nothing else)."""
    if lb is not None and lb.zone_aware_lb_setting:
        warnings.append(f"{where}: zoneAwareLbSetting is not modelled locally; the mesh's locality "
                        "setting is used instead")
    dr_setting = lb.locality_lb_setting if lb is not None else None
    if dr_setting is not None:
        if dr_setting.get("enabled") is False:
            return None
        return LocalitySetting(dict(dr_setting), source=f"{where} localityLbSetting")
    td = (traffic_distribution or annotations.get(TRAFFIC_DISTRIBUTION_ANNOTATION, "")).lower()
    if td in ("preferclose", "prefersamezone"):
        return LocalitySetting({"enabled": True, "failoverPriority": list(_PREFER_SAME_ZONE)}, force=True,
                               source=f"trafficDistribution {traffic_distribution or td}")
    if td == "prefersamenode":
        return LocalitySetting({"enabled": True, "failoverPriority": list(_PREFER_SAME_NODE)}, force=True,
                               source=f"trafficDistribution {traffic_distribution or td}")
    return LocalitySetting({"enabled": True})


def apply_to_cluster(cluster: dict[str, Any], setting: LocalitySetting | None) -> None:
    """`locality_weighted_lb_config` on the cluster when istiod sets it: with `distribute`, or with
    failover configured (`failover`/`failoverPriority`) on a cluster that fails over (outlier
    detection, or forced). LocalityLBSettings.ApplyToCluster."""
    if setting is None:
        return
    enable_failover = setting.force or "outlier_detection" in cluster
    if setting.distribute or (enable_failover and ("failover" in setting.setting
                                                   or "failoverPriority" in setting.setting)):
        cluster.setdefault("common_lb_config", {})["locality_weighted_lb_config"] = {}


@dataclass
class Group:
    """One `LocalityLbEndpoints` being built, with each endpoint's (augmented) labels."""

    locality: str
    lb_endpoints: list[dict[str, Any]]
    labels: list[dict[str, str]]
    priority: int = 0
    weight: int = 0

    def to_envoy(self) -> dict[str, Any]:
        out: dict[str, Any] = {"locality": envoy_locality(self.locality), "lb_endpoints": self.lb_endpoints,
                               "load_balancing_weight": self.weight}
        if self.priority:
            out["priority"] = self.priority
        return out


def group_by_locality(endpoints: list[tuple[str, dict[str, Any], dict[str, str]]]) -> list[Group]:
    """(locality, LbEndpoint, labels) → one group per locality, sorted by locality, each weighted
    by the sum of its endpoints' weights (EndpointBuilder.generate)."""
    by: dict[str, Group] = {}
    for loc, lb_ep, labels in endpoints:
        g = by.setdefault(loc, Group(loc, [], []))
        g.lb_endpoints.append(lb_ep)
        g.labels.append(labels)
    groups = [by[k] for k in sorted(by)]
    for g in groups:
        g.weight = sum(int(e.get("load_balancing_weight", 1)) for e in g.lb_endpoints)
    return groups


def apply_to_load_assignment(groups: list[Group], setting: LocalitySetting | None, proxy_locality: str,
                             proxy_labels: dict[str, str], outlier_detection: bool) -> list[Group]:
    """Priorities or weights relative to the proxy (LocalityLBSettings.ApplyToLoadAssignment)."""
    if setting is None:
        return groups
    if setting.distribute:
        _apply_weights(groups, proxy_locality, setting.distribute)
    elif outlier_detection or setting.force:
        if setting.failover_priority:
            groups = _apply_failover_priorities(groups, proxy_labels, setting.failover_priority)
            if setting.failover:
                _apply_locality_failover(groups, proxy_locality, setting.failover)
        else:
            _apply_locality_failover(groups, proxy_locality, setting.failover)
    return groups


def locality_match(locality: str, rule: str) -> bool:
    """util.LocalityMatch: a rule `region/zone/subzone` with `*` (or a missing part) as wildcard."""
    r_region, r_zone, r_sub = split_locality(rule)
    region, zone, sub = split_locality(locality)
    return ((r_region == "*" or region == r_region) and (r_zone in ("*", "") or zone == r_zone)
            and (r_sub in ("*", "") or sub == r_sub))


def lb_priority(proxy: str, endpoint: str) -> int:
    """util.LbPriority: 0 same region/zone/subzone, 1 same region/zone, 2 same region, 3 other."""
    p, e = split_locality(proxy), split_locality(endpoint)
    if p[0] != e[0]:
        return 3
    if p[1] != e[1]:
        return 2
    return 0 if p[2] == e[2] else 1


def _compact(groups: list[Group]) -> None:
    """Priorities renumbered 0..N without gaps, order kept."""
    ranks = {p: i for i, p in enumerate(sorted({g.priority for g in groups}))}
    for g in groups:
        g.priority = ranks[g.priority]


def _apply_locality_failover(groups: list[Group], proxy_locality: str, failover: list[dict[str, Any]]) -> None:
    """applyLocalityFailover: priorities by locality match, `failover` demoting the regions it does
    not name for the proxy's region; earlier priorities (failoverPriority) keep their order."""
    proxy_region = split_locality(proxy_locality)[0]
    for g in groups:
        prio = lb_priority(proxy_locality, g.locality)
        if prio == 3:
            for f in failover:
                if f.get("from") == proxy_region:
                    if split_locality(g.locality)[0] != f.get("to"):
                        prio = 4
                    break
        g.priority = g.priority * 5 + prio
    _compact(groups)


def _apply_failover_priorities(groups: list[Group], proxy_labels: dict[str, str],
                               priorities: list[str]) -> list[Group]:
    """applyFailoverPriorities: each locality split by how many of the `failoverPriority` labels
    (in order) its endpoints share with the proxy; `label=value` compares with that value."""
    names, overrides = [], {}
    for item in priorities:
        name, sep, value = item.partition("=")
        names.append(name)
        if sep:
            overrides[name] = value
    lowest = len(priorities)
    includes_network = bool(priorities) and priorities[0] == NETWORK_LABEL
    out: list[Group] = []
    for g in groups:
        by_prio: dict[int, list[int]] = {}
        for i, labels in enumerate(g.labels):
            prio, adjust = 0, 0
            for j, name in enumerate(names):
                want = overrides.get(name, proxy_labels.get(name, ""))
                if want != labels.get(name, ""):
                    if j == 0 and includes_network:
                        adjust = lowest
                        continue
                    prio = lowest - j
                    break
            by_prio.setdefault(prio + adjust, []).append(i)
        for prio in sorted(by_prio):
            idx = by_prio[prio]
            eps = [g.lb_endpoints[i] for i in idx]
            out.append(Group(g.locality, eps, [g.labels[i] for i in idx], prio,
                             sum(int(e.get("load_balancing_weight", 1)) for e in eps)))
    _compact(out)
    return out


def _apply_weights(groups: list[Group], proxy_locality: str, distribute: list[dict[str, Any]]) -> None:
    """applyLocalityWeights: the first `distribute` entry whose `from` matches the proxy sets each
    locality's weight (its share of the `to` entry it matches, rounded up); the rest get none."""
    for d in distribute:
        if not locality_match(proxy_locality, str(d.get("from", ""))):
            continue
        unmatched = set(range(len(groups)))
        for to, weight in (d.get("to") or {}).items():
            hit = {i: groups[i].weight or 1 for i in sorted(unmatched) if locality_match(groups[i].locality, to)}
            unmatched -= set(hit)
            total = sum(hit.values())
            for i, original in hit.items():
                share = original * int(weight) / total
                if share > 0:
                    groups[i].weight = math.ceil(share)
        for i in unmatched:
            groups[i].lb_endpoints, groups[i].labels = [], []
        return
