"""Causes for what timeouts, retries, connection pools, keep-alive, outlier detection, hashing and
locality do to requests (chapters 5-8): UT, UC and DC, and the parts an answered group gets when a
retry, a locality preference or a hash shaped it.

Each reads what the lab holds — the VirtualService rule and the DestinationRule policy behind the
route and cluster the rows name, the pods' own configuration (their Deployment's `env`), and
Envoy's counters for the cluster (`Context.envoy(...).cluster_stats`), which keep what happened
after the moment passed — never the status code alone.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..app import KNOB_ENV, race_free_idle_ms
from ..istiod.clusters import policy_sources
from ..names import duration_seconds, parse_cluster_name, zone_of
from ..objects import VirtualService
from .causes import Cause, pods_of, rules_for
from .context import Context, client, ref, text

#: Methods a retry may run twice on the server: not idempotent (RFC 9110 §9.2.2).
NON_IDEMPOTENT = ("POST", "PATCH")


def _details(grp: list[dict[str, Any]]) -> str:
    return next((text(r.get("details")) for r in grp if text(r.get("details"))), "")


def _cluster(grp: list[dict[str, Any]]) -> str:
    return next((text(r.get("cluster")) for r in grp if text(r.get("cluster"))), "")


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:g} s"


def _timed_rule(ctx: Context, grp: list[dict[str, Any]]) -> tuple[VirtualService, int] | None:
    """The VirtualService http rule with a timeout or retries the group's requests went through."""
    for vs, i in rules_for(ctx, grp):
        rule = vs.spec.http[i]
        if rule.timeout or rule.retries is not None:
            return vs, i
    return None


# ---------------------------------------------------------------------------------------------- UT

def ut(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    """504 UT: the route timeout (`response_timeout`) or one attempt's perTryTimeout
    (`upstream_per_try_timeout`) fired first."""
    per_try = "per_try" in _details(grp)
    med = _median([float(r.get("latency_ms") or 0) for r in grp])
    found = _timed_rule(ctx, grp)
    cmds = [f"istioctl proxy-config routes {client(proxy)} -o json | grep -iE 'timeout|retry'"]
    pods = pods_of(grp) or ", ".join(sorted({p.name for r in grp for p in [ctx.pod_by_ip(
        text(r.get("upstream")).rsplit(":", 1)[0])] if p is not None}))
    slow = f" The pods that did not answer in time: {pods}." if pods else ""
    if found is None:
        why = "A route timeout is set (no VirtualService rule the lab holds names one)."
        return Cause("UT.per-try-timeout" if per_try else "UT.route-timeout", label,
                     f"Envoy gave up waiting after about {med:.0f} ms and answered 504 UT itself.", why + slow,
                     "Raise the timeout, or make the slow pods faster.", cmds)
    vs, i = found
    rule = vs.spec.http[i]
    rp = rule.retries
    if per_try and rp is not None and rp.per_try_timeout:
        retry_on = rp.retry_on or "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
        covered = any(w in retry_on.split(",") for w in ("5xx", "gateway-error", "reset"))
        why = (f"{ref(vs)} spec.http[{i}].retries.perTryTimeout is {rp.per_try_timeout}: one attempt may take no "
               f"longer, and this one did not answer in time (upstream_per_try_timeout).")
        if covered:
            why += (f" retryOn ({retry_on}) retries such a timeout, and all {rp.attempts} retries timed out too "
                    "(or the route's timeout left no time for another).")
            fix = "Raise perTryTimeout above the pods' normal latency, or fix the slow pods."
        else:
            why += (f" A per-try timeout is retried only when retryOn covers it (5xx, gateway-error or reset); "
                    f"retryOn here is {retry_on}, so the first timeout is the answer.")
            fix = ("Add `gateway-error` (or `5xx`) to retries.retryOn so a slow attempt is retried on another pod, "
                   "within the route's timeout.")
        return Cause("UT.per-try-timeout", label,
                     f"One attempt took longer than its perTryTimeout: Envoy answered 504 UT after about {med:.0f} ms.",
                     why + slow, fix, cmds, [ref(vs)], fields=[f"spec.http[{i}].retries.perTryTimeout"])
    why = (f"{ref(vs)} spec.http[{i}].timeout is {rule.timeout}: Envoy answers 504 UT (response_timeout) when "
           "the whole request — every retry included — takes longer." if rule.timeout else
           f"{ref(vs)} spec.http[{i}] sets the route's timeout.")
    return Cause("UT.route-timeout", label,
                 f"The upstream did not answer in time, so Envoy gave up with 504 UT after about {med:.0f} ms.",
                 why + slow, "Raise the timeout, or make the slow pods faster (or route away from them; with "
                 "retries.perTryTimeout below it a slow attempt can be retried on another pod).", cmds,
                 [ref(vs)], fields=[f"spec.http[{i}].timeout"] if rule.timeout else [])


# ---------------------------------------------------------------------------------------------- UC

def _app_keepalive(ctx: Context, grp: list[dict[str, Any]]) -> tuple[float, str, float] | None:
    """(seconds, where it is set, the longest Envoy idle timeout in seconds that never races it) of
    the keep-alive idle timeout of the pods that answered: their container's `KEEPALIVE_TIMEOUT_MS`
    (the demo app's configuration, `meshlab.app.KNOB_ENV`), less a round trip of its
    `NETWORK_DELAY_MS` (`meshlab.app.race_free_idle_ms`)."""
    var = KNOB_ENV["keepalive_timeout_ms"]
    for r in grp:
        pod = ctx.pod_by_ip(text(r.get("upstream")).rsplit(":", 1)[0])
        if pod is None:
            continue
        env = pod.env()
        if env.get(var):
            app = race_free_idle_ms(env)
            if app is None:
                return None
            owner = f"Deployment {pod.namespace}/{pod.owner}" if pod.owner else f"Pod {pod.namespace}/{pod.name}"
            return app[0] / 1000.0, f"{owner} env {var}={env[var]}", app[1] / 1000.0
    return None


def _idle_timeout(ctx: Context, cluster: str) -> tuple[float | None, str]:
    """(seconds, the field) of the cluster's upstream idle timeout from its DestinationRule, or
    (None, why) when none is set (Envoy's default: 1 h)."""
    parsed = parse_cluster_name(cluster)
    if parsed is None:
        return None, ""
    for dr in ctx.drs_for_host(parsed.host):
        src = policy_sources(dr.spec.traffic_policy, dr.spec.subsets, parsed.port or 0, parsed.subset or None)
        path, pool = src["connectionPool"]
        if pool is None:
            continue
        idle = (pool.http.idle_timeout if pool.http else None) or (pool.tcp.idle_timeout if pool.tcp else None)
        if idle:
            field = "http.idleTimeout" if pool.http and pool.http.idle_timeout else "tcp.idleTimeout"
            return duration_seconds(idle), f"{ref(dr)} {path}.{field} {idle}"
    return None, "no DestinationRule sets connectionPool.http.idleTimeout (Envoy's default: 1 h)"


def _less_a_round_trip(app_s: float, bound_s: float) -> str:
    return f" less the network's round trip ({_ms(app_s - bound_s)})" if bound_s < app_s else ""


def uc(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    """503 UC: the upstream connection closed before the answer; with an app that closes idle
    keep-alive connections sooner than Envoy does, the keep-alive race."""
    details = _details(grp)
    cluster = _cluster(grp)
    cmds = [f"kubectl logs {pods_of(grp) or '<pod>'}",
            f"kubectl exec <client-pod> -c istio-proxy -- pilot-agent request GET stats | grep "
            f"'{cluster or '<cluster>'}.upstream_cx_destroy_remote_with_active_rq'"]
    keepalive = _app_keepalive(ctx, grp) if "connection_termination" in details else None
    idle, idle_src = _idle_timeout(ctx, cluster) if keepalive else (None, "")
    if keepalive is not None and (idle is None or idle >= keepalive[2]):
        app_s, app_src, bound_s = keepalive
        n = ctx.envoy(proxy).cluster_stats(cluster).get("upstream_cx_destroy_remote_with_active_rq")
        seen = (f" Envoy counted {n} upstream connection(s) closed by the pod with a request on them "
                "(upstream_cx_destroy_remote_with_active_rq)." if isinstance(n, int) and n else "")
        keeps = ("longer" if idle is None or idle >= app_s else
                 f"for {_ms(idle)}, closer to the app's than the network's round trip ({_ms(app_s - bound_s)})")
        why = (f"The app closes a keep-alive connection that has been idle for {_ms(app_s)} ({app_src}), without a "
               f"word; Envoy keeps idle upstream connections {keeps} ({idle_src}). When a request comes just as "
               f"the app closes one, Envoy has already picked that connection: the pod resets it."
               + seen + " Istio's default retryOn does not retry a reset.")
        fix = (f"Make Envoy close idle connections first: connectionPool.http.idleTimeout below the app's"
               f"{_less_a_round_trip(app_s, bound_s)} ({_ms(bound_s / 2)}, say) in the DestinationRule. "
               "`retries.retryOn: reset` would retry these requests too — and hide the race instead of removing it.")
        return Cause("UC.keepalive-race", label,
                     "The pod closed the keep-alive connection Envoy sent these requests on, before any answer: "
                     f"503 UC ({details}).", why, fix, cmds, [app_src.split(" env ")[0]] + (
                         [idle_src.split(" spec.")[0]] if idle is not None else []))
    return Cause("UC.upstream-reset", label,
                 f"The upstream connection was closed before a full answer (UC{', ' + details if details else ''}).",
                 "The pod closed the connection mid-request (crash, restart, an idle timeout on its side); "
                 "Istio's default retry policy does not retry this.",
                 "Look at the pod's logs; if the pod closes idle connections, set the DestinationRule's "
                 "connectionPool.http.idleTimeout below its timeout; `retries.retryOn: reset` retries it if the "
                 "request is safe to repeat.", cmds)


# ---------------------------------------------------------------------------------------------- DC

def dc(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    """DC: the client closed first — with the client's own timeout (error `timeout`), before the
    upstream and any route timeout."""
    waited = _median([float(r.get("latency_ms") or 0) for r in grp])
    if not any(text(r.get("error")) == "timeout" for r in grp):
        return Cause("DC.downstream-closed", label,
                     "The client closed its connection before Envoy finished the request (DC).",
                     "The client went away (its own timeout, or it was stopped).",
                     "Give the client more time, or make the upstream answer sooner; a route `timeout:` makes "
                     "Envoy answer 504 UT itself instead.", [f"istioctl proxy-config routes {client(proxy)} -o json"])
    found = _timed_rule(ctx, grp)
    client_s = ctx.attrs.get("timeout")
    said = f" (the client's timeout, {_ms(float(client_s))})" if client_s else ""
    if found is not None and found[0].spec.http[found[1]].timeout:
        vs, i = found
        t = vs.spec.http[i].timeout
        why = (f"The route's timeout ({ref(vs)} spec.http[{i}].timeout {t}) is longer than the client waited"
               f"{said}, so the client gave up first: it closed the connection, and Envoy logged the request "
               "with flag DC and no status (downstream_remote_disconnect).")
        objs, fields = [ref(vs)], [f"spec.http[{i}].timeout"]
    else:
        why = (f"Istio sets no route timeout by default (0s: wait forever), so Envoy kept waiting for the pod "
               f"while the client gave up after about {waited:.0f} ms{said}: it closed the connection, and Envoy "
               "logged the request with flag DC and no status (downstream_remote_disconnect).")
        objs, fields = [], []
    return Cause("DC.client-timeout", label,
                 f"The client gave up after about {waited:.0f} ms, before any answer: no HTTP status (0), and "
                 "Envoy's access log says DC.", why,
                 "Set the VirtualService rule's `timeout:` below the client's, so Envoy answers 504 UT itself (and "
                 "a retry can happen inside it), or make the upstream answer sooner.",
                 [f"istioctl proxy-config routes {client(proxy)} -o json | grep -i timeout",
                  "kubectl logs <client-pod> -c istio-proxy | grep DC"], objs, fields=fields)


# ------------------------------------------------------------------------- parts of answered requests

def retried_parts(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> list[Cause]:
    """A note when requests that are not idempotent were sent more than once (a POST retried on
    a 5xx may have been executed by the app several times)."""
    method = str(ctx.attrs.get("method") or "GET").upper()
    retried = [r for r in grp if int(r.get("attempts") or 0) > 1]
    if method not in NON_IDEMPOTENT or not retried:
        return []
    extra = sum(int(r.get("attempts") or 0) - 1 for r in retried)
    found = _timed_rule(ctx, grp)
    where = (f" by {ref(found[0])} spec.http[{found[1]}].retries (retryOn "
             f"{found[0].spec.http[found[1]].retries.retry_on or 'the default'})") if found and \
        found[0].spec.http[found[1]].retries else ""
    return [Cause("note.non-idempotent-retried", label,
                  f"{len(retried)} {method} request(s) were sent to the pods more than once ({extra} extra "
                  f"attempts){where}.",
                  f"A {method} is not idempotent: when the pod answered an error after doing the work (or the "
                  "answer was lost), the retry does it again — the app may have executed these requests several "
                  "times. `lab.app_log(df)` shows each time the app received one (one request id, several rows).",
                  f"Retry {method}s only on failures that happen before the request reaches the app "
                  "(connect-failure, refused-stream, reset-before-request), or make the handler idempotent "
                  "(an idempotency key).",
                  [f"istioctl proxy-config routes {client(proxy)} -o json | grep -A8 retry_policy"],
                  [ref(found[0])] if found else [], ok=True, count=len(retried),
                  fields=[f"spec.http[{found[1]}].retries.retryOn"] if found else [])]


def reset_retry_parts(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> list[Cause]:
    """A note when answered requests needed a second attempt because the pod closed the keep-alive
    connection under them: the route retries `reset`, the app closes idle connections, and Envoy
    counted connections the pod closed with a request on them."""
    retried = [r for r in grp if int(r.get("attempts") or 0) > 1]
    found = _timed_rule(ctx, grp)
    rp = found[0].spec.http[found[1]].retries if found else None
    if not retried or rp is None or "reset" not in (rp.retry_on or "").split(","):
        return []
    app = _app_keepalive(ctx, grp)
    cluster = _cluster(grp)
    n = ctx.envoy(proxy).cluster_stats(cluster).get("upstream_cx_destroy_remote_with_active_rq")
    if app is None or not (isinstance(n, int) and n):
        return []
    vs, i = found
    return [Cause("note.retry-hides-keepalive-race", label,
                  f"{len(retried)} request(s) got their answer on a second attempt: Envoy counted {n} upstream "
                  "connection(s) the pod closed with a request on them (upstream_cx_destroy_remote_with_active_rq).",
                  f"The app closes keep-alive connections idle for {_ms(app[0])} ({app[1]}); {ref(vs)} "
                  f"spec.http[{i}].retries.retryOn includes `reset`, so each request that met a closing connection "
                  "was sent again on a new one. The race still happens as often — every one costs a round trip, and "
                  "a request the app may already have processed runs twice.",
                  "Remove the race instead: connectionPool.http.idleTimeout below the app's keep-alive timeout in "
                  "the DestinationRule; keep `reset` for requests that may run twice.",
                  [f"kubectl exec <client-pod> -c istio-proxy -- pilot-agent request GET stats | grep "
                   f"'{cluster}.upstream_cx_destroy_remote_with_active_rq'"], [ref(vs)], ok=True,
                  count=len(retried), fields=[f"spec.http[{i}].retries.retryOn"])]


def locality_parts(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str,
                   clusters: list[str], all_rows: list[dict[str, Any]] | None = None) -> list[Cause]:
    """Where locality shaped a group: priorities the proxy got for the cluster (served by the
    closest, or failed over — and when outlier detection ejected the closest, that), or failover
    configured but inert without outlier detection. `all_rows`: the whole probe, in which the
    requests before the failover show what ejected the closest endpoints (default: `grp`)."""
    env = ctx.envoy(proxy)
    out: list[Cause] = []
    for cluster in clusters:
        eps = env.localities(cluster)
        prio = {ep: (p, loc) for ep, p, loc in eps}
        used = Counter(prio.get(text(r.get("upstream")), (None, ""))[0] for r in grp
                       if text(r.get("cluster")) == cluster)
        if len({p for p, _ in prio.values()}) > 1:
            zones = Counter(zone_of(prio[text(r.get("upstream"))][1]) or "?" for r in grp
                            if text(r.get("upstream")) in prio)
            spread = ", ".join(f"{z} {n}" for z, n in zones.most_common())
            first = sorted({loc for p, loc in prio.values() if p == 0})
            if set(used) <= {0}:
                out.append(Cause("ok.locality-priority", label,
                                 f"Every request went to endpoints of priority 0 for this client ({', '.join(first)}): "
                                 f"{spread}.",
                                 f"{cluster} has outlier detection, so istiod ranks its endpoints by locality relative "
                                 "to the client (same zone 0, same region 1, other regions 2…) and Envoy sends to the "
                                 "best priority while it is healthy.",
                                 "", [f'istioctl proxy-config endpoints {client(proxy)} --cluster "{cluster}" -o json'],
                                 ok=True))
            else:
                moved = sum(n for p, n in used.items() if p)
                out.append(Cause("ok.locality-failover", label,
                                 f"{moved} request(s) went to endpoints of a lower priority ({spread}): the closest "
                                 f"({', '.join(first)}) were not all healthy.",
                                 "Envoy spills over to the next priority as the best one loses healthy hosts (outlier "
                                 "ejections): locality failover, as istiod's priorities allow.",
                                 "Fix the failing pods in the client's zone; the traffic comes back once they return.",
                                 [f'istioctl proxy-config endpoints {client(proxy)} --cluster "{cluster}" -o json'],
                                 ok=True))
                ejected = _failover_after_ejection(ctx, label, cluster, prio, grp, all_rows or grp, proxy)
                if ejected is not None:
                    out.append(ejected)
        parsed = parse_cluster_name(cluster)
        if parsed is None:
            continue
        for dr in ctx.drs_for_host(parsed.host):
            src = policy_sources(dr.spec.traffic_policy, dr.spec.subsets, parsed.port or 0, parsed.subset or None)
            lb_path, lb = src["loadBalancer"]
            setting = (lb.locality_lb_setting or {}) if lb is not None else {}
            wants_failover = setting.get("failover") or setting.get("failoverPriority")
            if wants_failover and src["outlierDetection"][1] is None:
                zones = sorted({zone_of(loc) for _, _, loc in eps if loc})
                out.append(Cause("note.locality-failover-without-outlier-detection", label,
                                 f"{ref(dr)} asks for locality failover ({lb_path}.localityLbSetting), but the "
                                 f"cluster has no outlierDetection, so istiod writes no priorities: the endpoints of "
                                 f"every zone ({', '.join(zones) or 'all'}) share the traffic.",
                                 "Failover needs outlier detection: without it Envoy would never see the local "
                                 "endpoints fail, so istiod does not prioritise them (loadbalancer.go).",
                                 "Add outlierDetection to the same traffic policy.",
                                 [f'istioctl proxy-config endpoints {client(proxy)} --cluster "{cluster}" -o json'],
                                 [ref(dr)], ok=True, fields=[f"{lb_path}.localityLbSetting"]))
                break
    return out


#: Envoy's default overprovisioning factor, in percent (ClusterLoadAssignment.Policy.overprovisioning_factor;
#: istiod leaves it unset).
OVERPROVISIONING_FACTOR = 140


def priority_load(health: list[int]) -> list[int]:
    """The share of requests (percent) Envoy sends to each priority, given each priority's health
    (percent: min(100, overprovisioning factor × healthy / hosts)): the best priorities take what their
    health allows, the rest spills to the next; with no healthy host anywhere (and Istio's panic
    threshold 0) priority 0 nominally keeps 100 %. Envoy's `LoadBalancerBase::recalculatePerPriorityState`
    and `distributeLoad` (source/extensions/load_balancing_policies/common/load_balancer_impl.cc);
    degraded hosts, which Istio does not mark, are left out."""
    if not health:
        return []
    normalized = min(100, sum(health))
    if normalized == 0:
        return [100] + [0] * (len(health) - 1)
    load, remaining = [], 100
    for h in health:
        load.append(min(remaining, h * 100 // normalized))
        remaining -= load[-1]
    if remaining:       # rounding: to the first priority with healthy hosts
        first = next(i for i, h in enumerate(health) if h > 0)
        load[first] += remaining
    return load


def _failover_after_ejection(ctx: Context, label: str, cluster: str, prio: dict[str, tuple[int, str]],
                             grp: list[dict[str, Any]], all_rows: list[dict[str, Any]], proxy: str) -> Cause | None:
    """Outlier detection ejected the client's closest endpoints (priority 0) and Envoy moved the
    requests to a farther priority. Evidence: Envoy's /clusters shows a priority-0 endpoint ejected
    now, or Envoy counted ejections for the cluster and the probe's own rows show priority 0 failing
    (an error status from its pods, or UH) before the first request served farther away."""
    env = ctx.envoy(proxy)

    def seq(r: dict[str, Any]) -> int:
        return int(r.get("seq") or 0)

    moved = sorted((r for r in grp if text(r.get("cluster")) == cluster
                    and prio.get(text(r.get("upstream")), (0, ""))[0] > 0), key=seq)
    if not moved:
        return None
    first = seq(moved[0])
    local = {ep for ep, (p, _) in prio.items() if p == 0}
    failed_before = sorted((r for r in all_rows if seq(r) < first and text(r.get("cluster")) in ("", cluster) and (
        (text(r.get("upstream")) in local and int(r.get("status") or 0) >= 500)
        or "UH" in text(r.get("flags")).split(","))), key=seq)
    ejected_now = sorted(ep for ep in local if (cluster, ep) in env.outlier_failed)
    during = ctx.attrs.get("envoy_stats")
    enforced = int((during.get(f"cluster.{cluster}.outlier_detection.ejections_enforced_total")
                    if isinstance(during, dict) else
                    env.cluster_stats(cluster).get("outlier_detection.ejections_enforced_total")) or 0)
    if not ejected_now and not (enforced and failed_before):
        return None
    # ejected now (Envoy's /clusters), else the priority-0 pods that failed first (UH rows name none: all of them)
    ejected = set(ejected_now) or ({text(r.get("upstream")) for r in failed_before} & local) or local

    def name(ep: str) -> str:
        pod = ctx.pod_by_ip(ep.rsplit(":", 1)[0])
        return pod.name if pod is not None else ep

    priorities = sorted({p for p, _ in prio.values()})
    hosts = {p: [ep for ep, (q, _) in prio.items() if q == p] for p in priorities}
    healthy = {p: [ep for ep in eps if ep not in ejected and (cluster, ep) not in env.outlier_failed]
               for p, eps in hosts.items()}
    health = [min(100, OVERPROVISIONING_FACTOR * len(healthy[p]) // len(hosts[p])) for p in priorities]
    load = dict(zip(priorities, priority_load(health)))
    went = Counter(prio[text(r.get("upstream"))][0] for r in moved)
    to = ", ".join(f"priority {p} ({', '.join(sorted({zone_of(loc) for ep, (q, loc) in prio.items() if q == p}))}): "
                   f"{n}" for p, n in sorted(went.items()))
    zones0 = ", ".join(sorted({zone_of(prio[ep][1]) for ep in local}))
    what = (f"Outlier detection ejected {', '.join(sorted(name(ep) for ep in ejected))} — in {zones0}, priority 0 "
            f"for this client — and Envoy sent {len(moved)} request(s) to a farther priority from request "
            f"#{first} on: {to}.")
    if failed_before:
        outcomes = Counter(f"{int(r.get('status') or 0)}" + (f" {text(r.get('flags'))}" if text(r.get("flags")) not in
                                                              ("", "-") else "") for r in failed_before)
        what += (f" The {len(failed_before)} request(s) before (#{seq(failed_before[0])}–#{seq(failed_before[-1])}) got "
                 + ", ".join(f"{o} ×{n}" for o, n in outcomes.most_common())
                 + f": the errors that ejected {'it' if len(ejected) == 1 else 'them'}.")
    parsed = parse_cluster_name(cluster)
    od_ref, od_path, od_fields = "", "", ""
    for dr in ctx.drs_for_host(parsed.host) if parsed else []:
        path, od = policy_sources(dr.spec.traffic_policy, dr.spec.subsets, parsed.port or 0,
                                  parsed.subset or None)["outlierDetection"]
        if od is not None:
            od_ref, od_path = ref(dr), path
            od_fields = ", ".join(f"{k} {v}" for k, v in (
                ("consecutive5xxErrors", od.consecutive5xx_errors), ("consecutiveGatewayErrors",
                                                                      od.consecutive_gateway_errors),
                ("baseEjectionTime", od.base_ejection_time)) if v is not None)
            break
    shares = ", ".join(f"priority {p} {load[p]} %" for p in priorities)
    why = ((f"{od_ref} {od_path} ({od_fields}) ejects a host that fails that many times in a row, for "
            "baseEjectionTime. " if od_ref else "Outlier detection ejects a host that keeps failing. ")
           + (f"Envoy counted {enforced} ejection(s) for {cluster} (outlier_detection.ejections_enforced_total). "
              if enforced else "")
           + "Envoy gives each priority the share of requests its healthy hosts can take — min(100 %, 1.4 × healthy / "
           "hosts), 1.4 being Envoy's default overprovisioning factor, which istiod leaves unset — and passes the "
           "rest to the next priority (recalculatePerPriorityState, source/extensions/load_balancing_policies/common/"
           f"load_balancer_impl.cc). With {len(healthy[priorities[0]])} of {len(hosts[priorities[0]])} host(s) of "
           f"priority 0 healthy, the load is {shares}.")
    return Cause("ok.failover-after-ejection", label, what, why,
                 "Fix the failing pods in the client's zone; after baseEjectionTime Envoy tries them again, and "
                 "once they answer they get the zone's traffic back.",
                 [f'istioctl proxy-config endpoints {client(proxy)} --cluster "{cluster}" -o json'],
                 [od_ref] if od_ref else [], ok=True, count=len(moved), fields=[od_path] if od_path else [])


def hash_parts(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> list[Cause]:
    """A note when a rule splits by weight between subsets that hash: the hash picks a pod inside
    the subset Envoy drew for each request, so one key is not sticky to one pod."""
    for vs, i in rules_for(ctx, grp):
        rule = vs.spec.http[i]
        dests = [d for d in (rule.route or []) if d.weight]
        if len(dests) < 2:
            continue
        hashed = []
        for d in dests:
            host = d.destination.host
            for dr in ctx.snap.destination_rules:
                if dr.spec.host.split(".")[0] != host.split(".")[0]:
                    continue
                lb = dr.spec.traffic_policy.load_balancer if dr.spec.traffic_policy else None
                sub = dr.subset(d.destination.subset) if d.destination.subset else None
                sub_lb = sub.traffic_policy.load_balancer if sub and sub.traffic_policy else None
                if (sub_lb and sub_lb.consistent_hash) or (lb and lb.consistent_hash):
                    hashed.append(dr)
        if hashed:
            return [Cause("note.hash-not-sticky-across-subsets", label,
                          f"{ref(vs)} spec.http[{i}] splits the requests by weight between "
                          f"{len(dests)} destinations, and {ref(hashed[0])} hashes them (consistentHash).",
                          "Envoy first draws the weighted destination for each request, then hashes inside that "
                          "cluster: the same key reaches one pod per subset, and moves between subsets as the "
                          "draws do — it is not sticky to one pod.",
                          "For stickiness across versions route by a match (a header or cookie) to one subset, "
                          "not by weight.", [f"istioctl proxy-config routes {client(proxy)} -o json"],
                          [ref(vs), ref(hashed[0])], ok=True, fields=[f"spec.http[{i}].route"])]
    return []


def outlier_parts(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str, status: int) -> list[Cause]:
    """Why errors from the pods kept coming although outlier detection is on: Envoy refused to
    eject (maxEjectionPercent: `ejections_overflow`), or the errors do not count."""
    cluster = _cluster(grp)
    parsed = parse_cluster_name(cluster) if cluster else None
    if parsed is None:
        return []
    od, where = None, ""
    for dr in ctx.drs_for_host(parsed.host):
        path, block = policy_sources(dr.spec.traffic_policy, dr.spec.subsets, parsed.port or 0,
                                     parsed.subset or None)["outlierDetection"]
        if block is not None:
            od, where = block, f"{ref(dr)} {path}"
            break
    if od is None:
        return []
    out = []
    stats = ctx.envoy(proxy).cluster_stats(cluster)
    # Envoy's counters live as long as the cluster's name: over the probe when it was watched
    # (`Lab.watch` diffs them), else since the cluster was created
    during = ctx.attrs.get("envoy_stats")
    key = f"cluster.{cluster}.outlier_detection.ejections_overflow"
    overflow = int((during.get(key) if isinstance(during, dict) else stats.get(
        "outlier_detection.ejections_overflow")) or 0)
    hosts = len(ctx.envoy(proxy).endpoints.get(cluster, []))
    if overflow:
        pct = od.max_ejection_percent or 10
        share = f" — with {hosts} hosts one ejection is {100 / hosts:.0f} %" if hosts else ""
        out.append(Cause("note.ejection-capped", label,
                         f"Outlier detection found a failing host {overflow} time(s) but ejected none "
                         f"(outlier_detection.ejections_overflow {overflow}).",
                         f"{where}.maxEjectionPercent is {pct} %"
                         + (" (unset: Envoy's 10 %)" if not od.max_ejection_percent else "")
                         + f": Envoy ejects a host only while the ejected share stays within it{share}, so not "
                         "even one host may go (Envoy ejects one anyway only with always_eject_one_host, which "
                         "Istio does not set).",
                         "Raise maxEjectionPercent so that one host fits (at least 100 / hosts %); at 100 every "
                         "failing pod can go — and as Istio turns panic mode off, a cluster whose pods all fail then "
                         "answers 503 UH.",
                         [f"kubectl exec <client-pod> -c istio-proxy -- pilot-agent request GET stats | grep "
                          f"'{cluster}.outlier_detection'"], [where.split(" spec.")[0]], ok=True,
                         fields=[f"{where.split(' ', 2)[-1]}.maxEjectionPercent"]))
    if (od.consecutive_gateway_errors and od.consecutive5xx_errors == 0 and status not in (502, 503, 504)
            and 500 <= status < 600):
        out.append(Cause("note.not-a-gateway-error", label,
                         f"The pods answered {status}, which consecutiveGatewayErrors does not count.",
                         f"{where} counts gateway errors only (502, 503, 504 and failed connections: "
                         "consecutive_gateway_failure) and sets consecutive5xxErrors to 0, so a pod answering "
                         f"{status} is never ejected.",
                         "Use consecutive5xxErrors to eject on any 5xx, or keep gateway errors for pods that fail "
                         "at the connection.", [], [where.split(" spec.")[0]], ok=True))
    return out
