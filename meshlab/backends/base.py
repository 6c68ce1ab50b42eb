"""The one interface both backends implement, so notebooks never branch on the backend, and the
one rule for the order an apply reaches the cluster in.

`Lab` delegates to a `Backend`; `explain` and the widgets read a lab only through it. Objects reach
a backend already loaded and validated (`meshlab.load`). This module holds no backend, only what
every backend promises, so it sits on a floor of its own: above state, probe and envoy, below the
translator, the analyzers, the widgets and explain, which type against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..envoy.admin import proxy_config
from ..errors import LabError
from ..objects import MODELLED, K8sObject

if TYPE_CHECKING:
    import pandas as pd

#: The path a probe takes: the client's sidecar, no proxy, Istio's ingress gateway, or the gateway Istio
#: deployed for a Gateway API Gateway, named as its Deployment (`"web-istio"`, `"<namespace>/web-istio"`).
Via = Literal["sidecar", "none", "gateway"] | str
#: A proxy whose config or admin API is read: the client sidecar, the ingress gateway, or a
#: Gateway API gateway deployment (`"web-istio"`).
ProxyName = Literal["sidecar", "gateway"] | str
#: What `Backend.pods` answers: one row per pod (`node`: where it was scheduled; `zone`: the zone of
#: the locality istiod reads for it, from its node's topology labels or its own locality label).
POD_COLUMNS = ("name", "namespace", "ip", "labels", "version", "ready", "phase", "node", "zone")
#: What `Backend.app_log` answers: one row per request a pod's app received (its `/requests`).
APP_LOG_COLUMNS = ("pod", "namespace", "version", "t", "method", "path", "request_id", "status")


class EnvoyAdmin(Protocol):
    """One Envoy's admin API, wherever it runs (a local process, or `pilot-agent request` in a pod)."""

    def config_dump(self, *, include_eds: bool = True) -> dict[str, Any]:
        """`/config_dump` (with endpoints): what Envoy runs now."""

    def clusters(self) -> dict[str, Any]:
        """`/clusters?format=json`: per-host health, outlier ejections, counters."""

    def stats(self, filter_regex: str | None = None) -> dict[str, int | str]:
        """Counters and gauges as {name: value} (histograms left out)."""


class RunningProbe(Protocol):
    """Traffic in the background (a timeline), as `Backend.probing` returns it."""

    def stop(self) -> None: ...

    def done(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> None: ...

    def result(self, timeout: float | None = None) -> pd.DataFrame:
        """Stop an open-ended run, wait, and return one row per request (`meshlab.probe.rows`)."""

    def snapshot(self) -> pd.DataFrame:
        """The rows so far (for live charts)."""

    def __enter__(self) -> RunningProbe: ...

    def __exit__(self, *exc: object) -> None: ...


class Backend(Protocol):
    """What `meshlab.Lab` delegates to, and all that `explain` and the widgets may read.

    Errors are `meshlab.errors` classes: `ApplyError` when the cluster refuses a change (nothing
    changed), `LabError` for what the lab cannot do, `ProbeError` for a probe that cannot be sent.
    """

    name: str
    #: What the backend could not honour in the manifests, in words (e.g. a field the local
    #: translation does not model); empty on a real cluster, where istiod decides.
    warnings: list[str]

    def apply(self, objects: list[K8sObject], *, order: Sequence[str] | str | None = None,
              gap: float | None = None, xds_order: Sequence[str] | str = "istiod") -> None:
        """Create or update objects; traffic sees them when this returns. `order` (kinds) applies
        them in steps by `apply_steps`, `gap` seconds apart; `xds_order` is the local Envoy's
        per-push resource order (a real cluster's istiod orders its own pushes)."""

    def delete(self, objects: list[K8sObject]) -> None:
        """Delete objects; missing ones are ignored (`kubectl delete --ignore-not-found`)."""

    def objects(self) -> list[K8sObject]:
        """Everything the lab holds now, as copies (editing one changes nothing until applied)."""

    def pods(self) -> pd.DataFrame:
        """One row per pod (`POD_COLUMNS`): name, namespace, ip, labels, version, ready, phase,
        node, zone."""

    def set_pod(self, name: str, *, namespace: str = "default", latency_ms: float | None = None,
                error_rate: float | None = None, ready: bool | None = None,
                error_code: int | None = None, latency_jitter_ms: float | None = None,
                keepalive_timeout_ms: float | None = None, connection_close: bool | None = None,
                network_delay_ms: float | None = None) -> None:
        """Turn a pod's knobs (a unique prefix such as the Deployment name is enough locally);
        the knobs are the demo app's (`meshlab.app`)."""

    def app_log(self, *, namespace: str | None = None) -> pd.DataFrame:
        """What the pods' app received, one row per request (`APP_LOG_COLUMNS`): the app's own
        access log, as `kubectl logs` of the pods would show it."""

    def kill_pod(self, name: str, *, namespace: str = "default", notready_after: float | None = 1.0) -> None:
        """Kill the pod's app: its port refuses; it leaves the endpoints when the kubelet notices."""

    def restart_pod(self, name: str, *, namespace: str = "default") -> None:
        """The pod's app running and ready again."""

    def probe(self, url: str, *, n: int = 100, concurrency: int = 1, keepalive: bool = True,
              headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
              seed: int | None = None, rate: float | None = None, duration: float | None = None,
              timeout: float = 30.0, method: str = "GET") -> pd.DataFrame:
        """Send `n` requests (or for `duration` seconds) as a client pod in `namespace` would."""

    def probing(self, url: str, *, n: int | None = None, rate: float | None = 100.0,
                duration: float | None = None, concurrency: int = 1, keepalive: bool = True,
                headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
                seed: int | None = None, timeout: float = 30.0, method: str = "GET") -> RunningProbe:
        """The same traffic in the background; with neither `n` nor `duration` it runs until stopped."""

    def envoy(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> EnvoyAdmin:
        """The admin API of the client sidecar of `namespace`, or of the ingress gateway."""

    def envoy_config(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> dict[str, Any]:
        """Live config like `istioctl proxy-config all -o json`: clusters, listeners, routes and
        endpoints (with health and outlier state), as `meshlab.envoy.proxy_config_view` rows."""

    def close(self) -> None:
        """Stop everything the lab started and remove what it created."""


class BackendBase:
    """What every backend does the same way on top of its own `probing` and `envoy`."""

    def probing(self, url: str, **kw: Any) -> RunningProbe:
        raise NotImplementedError

    def envoy(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> EnvoyAdmin:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def probe(self, url: str, *, n: int = 100, concurrency: int = 1, keepalive: bool = True,
              headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
              seed: int | None = None, rate: float | None = None, duration: float | None = None,
              timeout: float = 30.0, method: str = "GET") -> pd.DataFrame:
        """Send `n` requests (or for `duration` seconds) and return one row per request."""
        return self.probing(url, n=n if duration is None else None, rate=rate, duration=duration,
                            concurrency=concurrency, keepalive=keepalive, headers=headers, via=via,
                            namespace=namespace, seed=seed, timeout=timeout, method=method).result()

    def envoy_config(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> dict[str, Any]:
        """Live config like `istioctl proxy-config all -o json`: clusters, listeners, routes and
        endpoints (with each endpoint's health and outlier state), read from the proxy's admin API."""
        return proxy_config(self.envoy(proxy, namespace=namespace))

    def __enter__(self) -> BackendBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- the apply order

#: The order kinds go to the cluster within one step: namespaces first, workloads before the
#: routing that points at them (so nothing names what does not exist yet), kinds not listed last.
KIND_ORDER: tuple[str, ...] = (
    "Namespace", "ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment", "Pod",
    "ServiceEntry", "DestinationRule", "GatewayClass", "ReferenceGrant", "Gateway", "VirtualService",
    "HTTPRoute", "GRPCRoute",
)


def apply_steps(objects: Sequence[K8sObject], order: Sequence[str] | str | None) -> list[list[K8sObject]]:
    """The one rule for the order an apply reaches the cluster in, on every backend.

    Without `order`: one step with everything (sorted by `KIND_ORDER`). With `order` (kinds, or
    one kind as a string): first one step with every object whose kind is *not* listed, then one
    step per listed kind, in the order given; steps left empty are dropped.

    Why the unlisted kinds go first: they are the ground the listed ones stand on — the
    Namespace the objects live in, the Services and Deployments the routes point at. Listed
    first, a VirtualService would reach the API server before its namespace exists (refused) or
    route to a Service that does not exist yet (503 NC for the wrong reason). `order` is there to
    open one window on purpose (`["VirtualService", "DestinationRule"]`: routes that name subset
    clusters not pushed yet); the unlisted objects must not open another.

    Raises `LabError` for a kind in `order` that is neither a kind meshlab models nor one of the
    objects' (a misspelling), before anything is applied.
    """
    if isinstance(order, str):            # order="VirtualService": one kind, not its letters
        order = [order]
    order = list(order or [])
    known = {kind for _, kind in MODELLED} | {o.kind for o in objects}
    unknown = [k for k in order if k not in known]
    if unknown:
        raise LabError(f"order: unknown kind(s) {', '.join(map(repr, unknown))}; "
                       f"use kinds such as {', '.join(sorted(known))}")
    rank = {k: i for i, k in enumerate(KIND_ORDER)}

    def by_kind(objs: list[K8sObject]) -> list[K8sObject]:
        return sorted(objs, key=lambda o: rank.get(o.kind, len(rank)))

    steps = [by_kind([o for o in objects if o.kind not in order])]
    steps += [[o for o in objects if o.kind == kind] for kind in dict.fromkeys(order)]
    return [s for s in steps if s]


def check_gap(gap: Any) -> float:
    """`gap=` between the steps of an ordered apply: a number of seconds >= 0 (LabError if not)."""
    if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not 0 <= gap < float("inf"):
        raise LabError(f"gap must be a number of seconds >= 0 between the kinds in order=, not {gap!r}")
    return float(gap)


def run_steps(steps: list[list[K8sObject]], gap: float, apply_step: Callable[[list[K8sObject]], None]) -> None:
    """Apply each step with `apply_step`, waiting `gap` seconds between two steps."""
    for i, step in enumerate(steps):
        if i and gap > 0:
            time.sleep(gap)
        apply_step(step)
