"""A cause for every Envoy response flag, so that a group such as `503 DI,NC` is explained flag by flag.

Envoy sets one flag for each thing that happened to a request or connection (their short names:
Envoy's source/common/stream_info/utility.h, ResponseFlagUtils; the meanings: Envoy's access-log
documentation, `%RESPONSE_FLAGS%`). One flag decides the outcome — `deciding()`, in the order of
`DECIDING` — and gives the group its main cause; every other flag gets a cause of its own, which
`explain()` adds to the main one's `parts`: `503 DI,NC` is "the route names a cluster Envoy does not
have" (NC) *and* "a fault delay held the requests first" (DI).
"""

from __future__ import annotations

from typing import Any

from . import gateway_api, resilience
from .causes import Cause, fault, nc, nr, rules_for, uf, uh, uo
from .context import Context, client, ref

#: The flags that decide a group's outcome, in the order explain looks for them. URX never decides:
#: with UF the connect failure does (URX's part names the retry policy); alone it marks an answer
#: given after the retries ran out, explained by what was answered.
DECIDING = ("NC", "UH", "FI", "UO", "UT", "NR", "UF", "UC", "DC")


def deciding(flags: list[str]) -> str:
    """The flag whose cause is the group's main one ('' when none of `DECIDING` is set)."""
    return next((f for f in DECIDING if f in flags), "")


def cause(ctx: Context, flag: str, label: str, grp: list[dict[str, Any]], proxy: str,
          all_rows: list[dict[str, Any]], flags: list[str], status: int) -> Cause:
    """The cause of one Envoy response `flag` for the group's requests."""
    if flag == "NC":
        return gateway_api.nc(ctx, label, grp, proxy) or nc(ctx, label, grp, proxy, all_rows)
    if flag == "UH":
        return uh(ctx, label, grp, proxy)
    if flag in ("FI", "DI"):
        return fault(ctx, label, grp, "abort" if flag == "FI" else "delay", status)
    if flag == "UO":
        return uo(ctx, label, grp)
    if flag == "UT":
        return resilience.ut(ctx, label, grp, proxy)
    if flag == "NR":
        return gateway_api.nr(ctx, label, grp, proxy) or nr(ctx, label, grp, proxy)
    if flag == "UF":
        return uf(ctx, label, grp, proxy, set(flags))
    if flag == "URX":
        return _urx(ctx, label, grp, proxy)
    if flag == "UC":
        return resilience.uc(ctx, label, grp, proxy)
    if flag == "DC":
        return resilience.dc(ctx, label, grp, proxy)
    return _other(flag, label, proxy)


def _urx(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    attempts = max((int(r.get("attempts") or 0) for r in grp), default=0)
    policy, objs, fields = "", [], []
    for vs, i in rules_for(ctx, grp):
        retries = vs.spec.http[i].retries
        if retries is not None:
            policy = (f"{ref(vs)} spec.http[{i}].retries (attempts {retries.attempts}"
                      + (f", retryOn {retries.retry_on}" if retries.retry_on else "") + ")")
            objs, fields = [ref(vs)], [f"spec.http[{i}].retries"]
            break
    why = (f"The retry policy is {policy}." if policy else
           "No VirtualService rule sets `retries`, so Istio's default applies: 2 retries on connect-failure, "
           "refused-stream, unavailable, cancelled and retriable-status-codes, each on another host.")
    return Cause("URX.retries-exhausted", label,
                 "Envoy retried up to the route's limit and every attempt failed (URX)"
                 + (f": {attempts} attempts per request." if attempts > 1 else "."),
                 why, "Fix what the attempts failed on (the main cause above); more retries only hide it.",
                 [f"istioctl proxy-config routes {client(proxy)} -o json | grep -A8 retry_policy"], objs,
                 fields=fields)


def _other(flag: str, label: str, proxy: str) -> Cause:
    """A flag with one reading in a meshlab lab: Envoy's meaning, where it comes from in Istio, the fix."""
    table = {
        "UR": ("UR.upstream-remote-reset", "The upstream reset the stream (UR).",
               "The pod (or a proxy in front of it) sent a reset instead of an answer.",
               "Look at the pod's logs; `retries.retryOn: reset` retries it if the request is safe to repeat."),
        "LR": ("LR.local-reset", "Envoy reset the connection itself (LR).",
               "Envoy gave up on the stream locally, e.g. while closing a connection or on an overflow.",
               "Look at the proxy's log for the reason."),
        "DT": ("DT.max-duration", "The request or connection lasted longer than allowed (DT).",
               "Envoy's max_connection_duration or max_downstream_connection_duration was reached.",
               "Raise that limit, or let the client reconnect."),
        "LH": ("LH.local-health-check", "The local service failed its health check (LH).",
               "The proxy's own workload is marked unhealthy.", "Check the workload's health."),
        "RL": ("RL.rate-limited", "A local rate limit rejected the request (RL, 429).",
               "An HTTP local rate limit filter (in Istio: an EnvoyFilter) ran out of tokens.",
               "Raise the limit or send less."),
        "UAEX": ("UAEX.ext-authz-denied", "An external authorization service denied the request (UAEX).",
                 "An AuthorizationPolicy with action CUSTOM sent the request to an ext_authz provider, which said no.",
                 "Look at the authorization provider's decision."),
        "RLSE": ("RLSE.rate-limit-service-error", "The rate limit service failed (RLSE).",
                 "Envoy could not get an answer from the global rate limit service.",
                 "Check the rate limit service."),
        "IH": ("IH.invalid-envoy-header", "A strictly checked x-envoy-* header had an invalid value (IH, 400).",
               "The client sent an x-envoy-* header Envoy validates strictly (e.g. x-envoy-max-retries) with a "
               "bad value.",
               "Fix or drop the header."),
        "SI": ("SI.stream-idle-timeout", "The stream idle timeout fired (SI).",
               "No bytes moved on the stream for the stream idle timeout (Istio sets none by default; "
               "ProxyConfig's connection settings can set one).",
               "Raise the idle timeout, or make the upstream answer sooner."),
        "DPE": ("DPE.downstream-protocol-error", "The client's request broke the HTTP protocol (DPE).",
                "Envoy could not parse what the client sent.", "Fix the client's request."),
        "UPE": ("UPE.upstream-protocol-error", "The upstream's response broke the HTTP protocol (UPE).",
                "Envoy could not parse what the pod answered (often a protocol mismatch: the Service port's name "
                "says http, the app speaks something else).",
                "Name the Service port after the protocol the app speaks (e.g. tcp-…)."),
        "UMSDR": ("UMSDR.max-stream-duration", "The upstream request reached its maximum stream duration (UMSDR).",
                  "A route's max stream duration cut the request off.", "Raise the duration."),
        "RFCF": ("RFCF.from-cache", "Envoy's cache filter answered (RFCF).",
                 "An HTTP cache filter served the response.", ""),
        "NFCF": ("NFCF.no-filter-config", "A filter had no configuration yet (NFCF).",
                 "A dynamically configured (ECDS) filter's configuration had not arrived.",
                 "Check the control plane's push."),
        "OM": ("OM.overload-manager", "Envoy's overload manager shed the request (OM).",
               "The proxy hit a resource limit (memory, connections) and refused work.",
               "Give the proxy more resources, or send less."),
        "DF": ("DF.dns-resolution-failed", "Envoy could not resolve the upstream's DNS name (DF).",
               "A DNS-resolved cluster (a ServiceEntry with resolution: DNS) had no answer.",
               "Check the ServiceEntry's host and endpoints."),
        "DO": ("DO.drop-overload", "The cluster's drop_overloads policy dropped the request (DO).",
               "Envoy drops this share of requests to the cluster on purpose.", ""),
        "UDO": ("UDO.unconditional-drop-overload", "The cluster drops every request (UDO).",
                "Its drop_overloads policy is at 100 %.", ""),
        "DR": ("DR.downstream-remote-reset", "The client reset the stream (DR).",
               "The client cancelled the request before it finished.", ""),
    }
    code, what, why, fix = table.get(flag, ("flag.unknown", f"Envoy set response flag {flag}.",
                                            "explain has no reading for this flag yet.", ""))
    return Cause(code, label, what, why, fix, [f"istioctl proxy-config all {client(proxy)}"])
