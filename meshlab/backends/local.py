"""The local backend: a real Envoy mesh on loopback, driven from Kubernetes + Istio YAML.

What runs (all children of this Python process, all gone when it goes):

- one demo-app process per pod (``meshlab.pods``), each on its own ``127.A.1.x``;
- a kube-proxy child (``meshlab.kubeproxy``) serving every Service's ClusterIP ``127.A.2.x``;
- a client sidecar Envoy at ``127.A.0.1`` for a ``sleep``-like workload (``app: sleep``) in
  ``default`` (more sidecars on ``127.A.0.3+`` when a probe comes from another namespace);
- the ingress gateway Envoy at ``127.A.0.2`` (``istio: ingressgateway`` in ``istio-system``).

Every change to the ``ClusterState`` (apply, delete, readiness, kills) is reconciled at once:
pod processes started/stopped, the kube-proxy table replaced, and each Envoy's config rebuilt by
``meshlab.istiod.translate.build_config`` and pushed (``meshlab.envoy.Envoy.push``, istiod's order
unless told otherwise). When ``apply`` returns, traffic sees the change.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

from .._addresses import AddressLease
from .._ports import host_port
from ..errors import ApplyError, LabError, ManifestError, MeshlabError, ProbeError
from ..names import labels_match
from ..kubeproxy import KubeProxy, ServicePortRule
from ..pods import PodRunner, PodSpec
from ..probe import ProbeRun, Target, check_args, parse_url, run as run_probe
from ..state import ClusterState, PodInfo
from .base import ProxyName, Via, apply_steps, check_gap, run_steps

if TYPE_CHECKING:
    import pandas as pd

    from ..envoy import Envoy
    from ..objects import K8sObject, Service

T = TypeVar("T")

SLEEP_LABELS = {"app": "sleep"}
GATEWAY_LABELS = {"istio": "ingressgateway", "app": "istio-ingressgateway"}
GATEWAY_NAMESPACE = "istio-system"
ADMIN_PORT = 15000


_open_labs: "weakref.WeakSet[LocalBackend]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for lab in list(_open_labs):
        try:
            lab.close()
        except Exception:
            pass


def _sweep_stale_workdirs() -> None:
    """Remove work directories of labs whose process died without closing (kernel SIGKILL)."""
    base = Path(tempfile.gettempdir())
    for d in base.glob("meshlab-lab-*"):
        try:
            pid = int((d / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue


class _Proxy:
    """One Envoy the lab runs and who it is (for translation)."""

    def __init__(self, identity: Any, envoy: "Envoy") -> None:
        self.identity, self.envoy = identity, envoy
        self.started: threading.Thread | None = None
        self.error: BaseException | None = None


class LocalBackend:
    """A lab on this machine: real Envoy, real pods, loopback only. Use as a context manager."""

    name = "local"

    def __init__(self, *, seed: int | None = None, workdir: str | os.PathLike | None = None,
                 envoy_log_level: str = "warning", start_timeout: float = 20.0) -> None:
        from ..envoy import Envoy
        from ..istiod.translate import ProxyIdentity

        self.seed = seed
        self.start_timeout = start_timeout
        self._closed = False
        self._lock = threading.RLock()
        self._syncing = False
        self._dirty = False
        self._rng = random.Random(seed)
        _sweep_stale_workdirs()
        self.lease = AddressLease()
        try:
            self.workdir = Path(workdir) if workdir else Path(
                tempfile.mkdtemp(prefix=f"meshlab-lab-{self.lease.block}-"))
            self._own_workdir = workdir is None
            self.workdir.mkdir(parents=True, exist_ok=True)
            (self.workdir / "owner.pid").write_text(str(os.getpid()))
            self.warnings: list[str] = []
            self._vips: dict[tuple[str, str], str] = {}
            self.state = ClusterState(pod_ip=self._alloc_pod_ip, cluster_ip=self._alloc_cluster_ip)
            self.runner = PodRunner(log_dir=self.workdir, on_exit=self._pod_died)
            self.kubeproxy = KubeProxy(seed=seed, log_path=self.workdir / "kube-proxy.log")
            self.kubeproxy.start()
            self._kp_rules: list[ServicePortRule] | None = None
            self._envoy_cls, self._identity_cls = Envoy, ProxyIdentity
            self._envoy_log_level = envoy_log_level
            self.proxies: dict[str, _Proxy] = {}
            self._add_proxy("sidecar", ProxyIdentity(kind="sidecar", namespace="default",
                                                     labels=dict(SLEEP_LABELS), ip=self.lease.sidecar_ip,
                                                     name="sleep"))
            self._add_proxy("gateway", ProxyIdentity(kind="gateway", namespace=GATEWAY_NAMESPACE,
                                                     labels=dict(GATEWAY_LABELS), ip=self.lease.gateway_ip,
                                                     name="istio-ingressgateway"))
            self._pending_kills: dict[tuple[str, str], threading.Timer] = {}
            self._runs: weakref.WeakSet[ProbeRun] = weakref.WeakSet()
            self.state.subscribe(self._on_change)
        except BaseException:
            self.close()
            raise
        _open_labs.add(self)

    # ----------------------------------------------------------------------------- addresses
    def _alloc_pod_ip(self, pod: PodInfo) -> str:
        return self.lease.pod_ip()

    def _alloc_cluster_ip(self, svc: Service) -> str:
        return self.lease.cluster_ip()

    def vip(self, svc: Service) -> str | None:
        """The loopback ClusterIP kube-proxy serves for a Service (a manifest's own clusterIP is
        kept in the state, but the lab never binds a non-loopback address)."""
        if svc.spec.headless:
            return None
        ip = self.state.cluster_ip(svc)
        if ip and self.lease.owns(ip):
            return ip
        key = (svc.namespace or "default", svc.name)
        if key not in self._vips:
            self._vips[key] = self.lease.cluster_ip()
        return self._vips[key]

    # ----------------------------------------------------------------------------- proxies
    def _add_proxy(self, key: str, identity: Any) -> _Proxy:
        envoy = self._envoy_cls(key.replace("/", "-"), self.workdir / key.replace("/", "-"),
                                admin_ip=identity.ip, admin_port=ADMIN_PORT,
                                log_level=self._envoy_log_level)
        proxy = _Proxy(identity, envoy)
        self.proxies[key] = proxy

        def _start() -> None:   # boots while pods start; the first push waits for it
            try:
                envoy.start(self._build(identity), timeout=self.start_timeout)
            except BaseException as e:
                proxy.error = e
        proxy.started = threading.Thread(target=_start, name=f"meshlab-start-{key}", daemon=True)
        proxy.started.start()
        return proxy

    def _ready_proxy(self, proxy: _Proxy) -> None:
        """Wait for a proxy's boot (started in the background); raise its start failure, every time."""
        t = proxy.started
        if t is not None:
            t.join(self.start_timeout + 5)
            if t.is_alive():
                raise LabError(f"Envoy '{proxy.envoy.name}' still not ready after {self.start_timeout + 5:g}s")
            proxy.started = None
        if proxy.error is not None:
            raise LabError(f"Envoy '{proxy.envoy.name}' did not start: {proxy.error}") from proxy.error

    def _client_proxy(self, namespace: str) -> _Proxy:
        """The client sidecar for probes from `namespace` (started on first use)."""
        if namespace == "default":
            return self.proxies["sidecar"]
        key = f"sidecar-{namespace}"
        with self._lock:
            if key not in self.proxies:
                if namespace not in self.state.namespaces():
                    raise LabError(f'namespace "{namespace}" does not exist in this lab; apply a Namespace first')
                ident = self._identity_cls(kind="sidecar", namespace=namespace, labels=dict(SLEEP_LABELS),
                                           ip=self.lease.proxy_ip(), name=f"sleep.{namespace}")
                self._add_proxy(key, ident)
            proxy = self.proxies[key]
        self._ready_proxy(proxy)
        return proxy

    def _build(self, identity: Any) -> Any:
        from ..istiod.translate import build_config
        cfg = build_config(self.state, identity)
        for w in cfg.warnings:
            if w not in self.warnings:
                self.warnings.append(w)
                warnings.warn(f"meshlab local backend: {w}", stacklevel=4)
        return cfg

    # ----------------------------------------------------------------------------- reconcile
    def _on_change(self, changes: list) -> None:
        if self._closed:
            return
        with self._lock:
            if self._syncing:
                self._dirty = True
                return
            self._syncing = True
            try:
                while True:
                    self._dirty = False
                    self._sync()
                    if not self._dirty:
                        break
            finally:
                self._syncing = False

    def _sync(self) -> None:
        self._sync_pods()
        self._sync_kubeproxy()
        self._sync_envoys()

    def _pod_ports(self, pod: PodInfo) -> list[int]:
        """containerPorts, plus numeric targetPorts of Services selecting the pod (a real
        container listens whether or not it declares the port)."""
        ports = set(pod.listen_ports())
        for svc in self.state.services(pod.namespace):
            if svc.spec.selector and labels_match(svc.spec.selector, pod.labels):
                for p in svc.spec.ports:
                    tp = p.target_port if p.target_port is not None else p.port
                    if isinstance(tp, int) and p.protocol == "TCP":
                        ports.add(tp)
        return sorted(ports) or [8080]

    def _sync_pods(self) -> None:
        desired = {(p.namespace, p.name): p for p in self.state.pods()}
        for key in [k for k in self.runner.pods if k not in desired]:
            proc = self.runner.pods[key]
            self.runner.stop(key[1], key[0])
            self.lease.release_pod_ip(proc.spec.ip)
        to_start: list[PodSpec] = []
        for key, pod in desired.items():
            ports = self._pod_ports(pod)
            have = self.runner.pods.get(key)
            if have is None and pod.phase == "Failed":
                continue          # could not start before; not retried until re-created
            if have is None or (have.spec.ports != ports and not have.killed):
                seed = None if self.seed is None else (self.seed * 1000003 + hash(pod.name) % 1000003)
                to_start.append(PodSpec(pod.name, pod.namespace, pod.ip or self.lease.pod_ip(),
                                        [host_port(p) for p in ports],
                                        pod.version, seed=seed))
        if to_start:
            try:
                self.runner.start(to_start, timeout=self.start_timeout)
            except Exception as e:
                for s in to_start:
                    if (s.namespace, s.name) not in self.runner.pods:
                        self.state.set_pod(s.name, s.namespace, ready=False, phase="Failed")
                raise LabError(str(e)) from e

    def _kp_table(self) -> list[ServicePortRule]:
        rules = []
        for svc in self.state.services():
            vip = self.vip(svc)
            if vip is None or svc.spec.type == "ExternalName":
                continue
            timeout = 10800.0
            cfg = svc.spec.session_affinity_config or {}
            t = (cfg.get("clientIP") or {}).get("timeoutSeconds")
            if t:
                timeout = float(t)
            for port in svc.spec.ports:
                if port.protocol != "TCP":
                    continue
                eps = [(e.ip, host_port(e.port)) for e in self.state.endpoints(svc, port) if e.ip]
                rules.append(ServicePortRule(f"{svc.namespace}/{svc.name}:{port.port}", vip, host_port(port.port), eps,
                                             affinity=svc.spec.session_affinity == "ClientIP",
                                             affinity_timeout=timeout))
        return rules

    def _sync_kubeproxy(self) -> None:
        rules = self._kp_table()
        if rules != self._kp_rules:
            self.kubeproxy.update(rules)
            self._kp_rules = rules

    def _sync_envoys(self, xds_order: Sequence[str] | str = "istiod", gap_s: float = 0.0) -> None:
        for proxy in list(self.proxies.values()):
            self._ready_proxy(proxy)
            proxy.envoy.push(self._build(proxy.identity), order=xds_order, gap_s=gap_s)

    # ----------------------------------------------------------------------------- pod events
    def _pod_died(self, proc: Any) -> None:
        """A pod process exited on its own: the kubelet notices and the pod leaves the endpoints."""
        key = (proc.spec.namespace, proc.spec.name)
        if key in self._pending_kills or self._closed:
            return
        self._schedule_notready(key, 1.0)

    def _schedule_notready(self, key: tuple[str, str], delay: float | None) -> None:
        old = self._pending_kills.pop(key, None)
        if old:
            old.cancel()
        if delay is None:
            return

        def _mark() -> None:
            self._pending_kills.pop(key, None)
            if self._closed:
                return
            try:
                self.state.set_pod(key[1], key[0], ready=False, phase="Failed")
            except KeyError:
                pass
        if delay <= 0:
            _mark()
            return
        t = threading.Timer(delay, _mark)
        t.daemon = True
        self._pending_kills[key] = t
        t.start()

    # ----------------------------------------------------------------------------- Backend API
    def _check_open(self) -> None:
        if self._closed:
            raise LabError("this lab is closed; create a new one")

    def apply(self, objects: list[K8sObject], *, order: Sequence[str] | str | None = None,
              gap: float | None = None, xds_order: Sequence[str] | str = "istiod") -> None:
        """Create or update objects; traffic sees them when this returns.

        `order` (kinds) applies them in steps (`backends.base.apply_steps`: kinds not listed
        first, then each listed kind), `gap` seconds apart (default 0.5):
        `order=["VirtualService", "DestinationRule"]` reproduces the window in which routes name
        subset clusters that do not exist yet (503 NC). `xds_order` is the order of resource
        types inside each push (default istiod's).
        """
        self._check_open()
        from ..envoy.xds import ISTIOD_ORDER
        if xds_order != "istiod" and (isinstance(xds_order, str)
                                      or any(t not in ISTIOD_ORDER for t in xds_order)):
            raise LabError(f"xds_order must be 'istiod' or a list of {', '.join(ISTIOD_ORDER)} "
                           f"(e.g. ['rds', 'cds']), not {xds_order!r}")
        steps = apply_steps(list(objects), order)
        run_steps(steps, check_gap(0.5 if gap is None else gap), lambda step: self._apply_group(step, xds_order))

    def _apply_group(self, objects: list[K8sObject], xds_order: Sequence[str] | str) -> None:
        """Apply one group; if the lab cannot run it (Envoy rejects the config, a pod cannot
        start), put the previous objects back so the state matches what is running, and raise."""
        held = {o.key: o for o in self.state.all()}
        before = {o.key: held.get(o.key) for o in objects}
        try:
            if xds_order == "istiod":
                self.state.apply(objects)
                return
            with self._lock:   # push with a deliberate per-type order: reconcile ourselves
                self._syncing = True
                try:
                    self.state.apply(objects)
                    self._sync_pods()
                    self._sync_kubeproxy()
                    self._sync_envoys(xds_order=xds_order, gap_s=0.0)
                finally:
                    self._syncing = False
        except Exception as e:
            if isinstance(e, ApplyError):     # refused before anything was stored
                raise
            try:
                added = [o for o in objects if before.get(o.key) is None]
                if added:
                    self.state.delete(added)
                old = [o for o in before.values() if o is not None]
                if old:
                    self.state.apply(old)
            except Exception:
                pass
            raise

    def delete(self, objects: list[K8sObject]) -> None:
        self._check_open()
        self.state.delete(list(objects))

    def objects(self) -> list[K8sObject]:
        """Copies: editing one must not change the lab until it is applied (as with kubectl get)."""
        return [o.model_copy(deep=True) for o in self.state.all()]

    def pods(self) -> pd.DataFrame:
        import pandas as pd
        rows = []
        for p in self.state.pods():
            proc = self.runner.pods.get((p.namespace, p.name))
            phase = p.phase
            if proc is not None and not proc.alive and phase == "Running":
                phase = "Failed"
            rows.append({"name": p.name, "namespace": p.namespace, "ip": p.ip, "labels": dict(p.labels),
                         "version": p.version, "ready": p.ready, "phase": phase})
        cols = ["name", "namespace", "ip", "labels", "version", "ready", "phase"]
        return pd.DataFrame(rows, columns=cols)

    def _pod_name(self, name: str, namespace: str) -> str:
        """Exact pod name, or a unique prefix such as the Deployment name (`reviews-v2`)."""
        names = [p.name for p in self.state.pods(namespace)]
        if name in names:
            return name
        hits = [n for n in names if n.startswith(name + "-")]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise LabError(f"{name!r} matches several pods in {namespace}: {', '.join(sorted(hits))}")
        raise LabError(f"no pod {namespace}/{name}; pods: {', '.join(sorted(names)) or 'none'}")

    def set_pod(self, name: str, *, namespace: str = "default", latency_ms: float | None = None,
                error_rate: float | None = None, ready: bool | None = None,
                error_code: int | None = None) -> None:
        """Turn a pod's knobs. `ready=False` takes it out of every endpoint list (readiness probe
        failing), `ready=True` puts it back."""
        self._check_open()
        name = self._pod_name(name, namespace)
        proc = self.runner.get(name, namespace)
        if ready and not proc.alive:
            # a dead container never passes its readiness probe
            raise LabError(f"pod {namespace}/{name} is not running (killed), so it cannot be ready; "
                           f"restart_pod({name!r}) starts it again")
        try:
            proc.set_knobs(latency_ms=latency_ms, error_rate=error_rate, error_code=error_code, ready=ready)
        except ValueError as e:
            raise LabError(str(e)) from None
        if ready is not None:
            self.state.set_pod(name, namespace, ready=ready)

    def kill_pod(self, name: str, *, namespace: str = "default", notready_after: float | None = 1.0) -> None:
        """SIGKILL the pod's process: its port refuses at once. Like the kubelet noticing a dead
        container, the pod leaves the endpoints `notready_after` seconds later (None: it stays,
        so Envoy keeps trying it until `restart_pod`). The process is not restarted by itself."""
        self._check_open()
        if notready_after is not None and (isinstance(notready_after, bool)
                                           or not isinstance(notready_after, (int, float))
                                           or not 0 <= notready_after < float("inf")):
            raise LabError(f"notready_after must be a number of seconds >= 0 or None, not {notready_after!r}")
        name = self._pod_name(name, namespace)
        key = (namespace, name)
        self._schedule_notready(key, None)
        self.runner.kill(name, namespace)
        if notready_after is None:
            self._pending_kills[key] = _NeverTimer()  # type: ignore[assignment]
        else:
            self._schedule_notready(key, notready_after)

    def restart_pod(self, name: str, *, namespace: str = "default") -> None:
        """A fresh process on the same IP (knobs reset), ready again."""
        self._check_open()
        name = self._pod_name(name, namespace)
        self._schedule_notready((namespace, name), None)
        self.runner.restart(name, namespace)
        self.state.set_pod(name, namespace, ready=True, phase="Running")

    # ----------------------------------------------------------------------------- probing
    def resolve(self, url: str, *, via: Via = "sidecar", namespace: str = "default") -> Target:
        """Where a request from a client in `namespace` goes (cluster DNS + the path `via` takes)."""
        self._check_open()
        if via not in ("sidecar", "none", "gateway"):
            raise ProbeError(f"via must be 'sidecar', 'none' or 'gateway', not {via!r}")
        u = parse_url(url)
        if via != "gateway" and namespace not in self.state.namespaces():
            # the client pod would have to live somewhere: kubectl says `namespaces "x" not found`
            raise LabError(f'namespace "{namespace}" does not exist in this lab (namespaces: '
                           f'{", ".join(sorted(self.state.namespaces()))}); apply a Namespace first')
        if via == "gateway":
            gw = self.proxies["gateway"]
            self._ready_proxy(gw)
            from ..istiod.listeners import gateway_listen_port
            return Target("gateway", (gw.identity.ip, host_port(gateway_listen_port(u.port))), u.authority,
                          u.path, None, [gw.envoy.access_log_path])
        client_ip = self.lease.sidecar_ip if via == "none" or namespace == "default" else None
        svc = self._lookup(u.host, namespace)
        if svc is None or svc.spec.type == "ExternalName":
            # NXDOMAIN (an ExternalName is a CNAME to a name outside the lab: no answer either)
            return Target(via, None, u.authority, u.path, error="dns")
        vip = self.vip(svc)
        if vip is None:   # headless: DNS answers the ready pod IPs
            eps = [e for p in svc.spec.ports for e in self.state.endpoints(svc, p) if e.ip]
            if not eps:
                return Target(via, None, u.authority, u.path, error="dns")
            ep = self._rng.choice(eps)
            return Target("none", (ep.ip, host_port(u.port)), u.authority, u.path, client_ip)
        if via == "none":
            return Target("none", (vip, host_port(u.port)), u.authority, u.path, client_ip)
        proxy = self._client_proxy(namespace)
        if svc.port(u.port) is None:
            # no listener for that port on the sidecar and no kube-proxy rule: nothing answers
            return Target("sidecar", None, u.authority, u.path, error="refused")
        # what the app dialled, for ORIGINAL_DST clusters (Passthrough) — there is no iptables here
        return Target("sidecar", (proxy.identity.ip, host_port(u.port)), u.authority, u.path,
                      proxy.identity.ip,
                      [proxy.envoy.access_log_path],
                      headers={"x-envoy-original-dst-host": f"{vip}:{host_port(u.port)}"})

    def _lookup(self, host: str, namespace: str) -> Service | None:
        svc = self.state.resolve_host(host, namespace)
        if svc is not None:
            return svc
        for s in self.state.services():       # an IP literal that is a ClusterIP
            if host in (self.state.cluster_ip(s), self.vip(s)):
                return s
        return None

    def probing(self, url: str, *, n: int | None = None, rate: float | None = 100.0,
                duration: float | None = None, concurrency: int = 1, keepalive: bool = True,
                headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
                seed: int | None = None, timeout: float = 30.0) -> ProbeRun:
        """Start traffic in the background (a timeline); `.result()` → DataFrame, `.snapshot()`
        for the rows so far. With neither `n` nor `duration` it runs until stopped (use `with`)."""
        check_args(n=n, concurrency=concurrency, keepalive=keepalive, headers=headers, rate=rate,
                   duration=duration, timeout=timeout, seed=seed)   # before a client sidecar is started
        self._trim_access_logs()
        target = self.resolve(url, via=via, namespace=namespace)
        if seed is not None and target.proxy == "none" and target.connect is not None:
            self.kubeproxy.reseed(seed)     # the same seed picks the same pods, connection by connection
        run = run_probe(target, n=n, concurrency=concurrency, keepalive=keepalive, headers=headers,
                        rate=rate, duration=duration, timeout=timeout, seed=seed)
        run.attrs.update(url=url, via=via, namespace=namespace)   # explain() reads them
        self._runs.add(run)
        return run

    def _trim_access_logs(self, limit: int = 32 << 20) -> None:
        """Empty Envoy's access logs once they pass `limit` bytes and no probe still needs them
        (a long timeline at hundreds of requests/s would otherwise fill /tmp). Envoy appends
        (O_APPEND), so truncating under it is safe."""
        if any(not r.collected for r in list(self._runs)):
            return
        for proxy in list(self.proxies.values()):
            path = proxy.envoy.access_log_path
            try:
                if path.stat().st_size > limit:
                    os.truncate(path, 0)
            except OSError:
                pass

    def probe(self, url: str, *, n: int = 100, concurrency: int = 1, keepalive: bool = True,
              headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
              seed: int | None = None, rate: float | None = None, duration: float | None = None,
              timeout: float = 30.0) -> pd.DataFrame:
        """Send `n` requests (or for `duration` seconds) and return one row per request."""
        return self.probing(url, n=n if duration is None else None, rate=rate, duration=duration,
                            concurrency=concurrency, keepalive=keepalive, headers=headers, via=via,
                            namespace=namespace, seed=seed, timeout=timeout).result()

    # ----------------------------------------------------------------------------- Envoy views
    def envoy(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> Envoy:
        """The Envoy process (admin API, stats, access log) of the client sidecar of `namespace`
        (started on first use) or of the ingress gateway."""
        self._check_open()
        if proxy == "gateway":
            p = self.proxies["gateway"]
            self._ready_proxy(p)
            return p.envoy
        if proxy != "sidecar":
            raise LabError(f"proxy must be 'sidecar' or 'gateway', not {proxy!r}")
        return self._client_proxy(namespace).envoy

    def envoy_config(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> dict[str, Any]:
        """Live config like `istioctl proxy-config all -o json`: clusters, listeners, routes, endpoints."""
        from ..envoy import proxy_config
        return proxy_config(self.envoy(proxy, namespace=namespace))

    # ----------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        _open_labs.discard(self)
        for run in list(getattr(self, "_runs", [])):   # background traffic ends with the lab
            run.stop()
        for t in list(getattr(self, "_pending_kills", {}).values()):
            if t is not None:
                t.cancel()
        for proxy in list(getattr(self, "proxies", {}).values()):
            if proxy.started is not None:
                proxy.started.join(self.start_timeout + 5)
            try:
                proxy.envoy.stop(timeout=2.0)
            except Exception:
                pass
        if hasattr(self, "runner"):
            self.runner.close()
        if hasattr(self, "kubeproxy"):
            self.kubeproxy.close()
        if getattr(self, "_own_workdir", False):
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.lease.release()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.state.pods())} pods"
        return f"LocalBackend(127.{self.lease.block}.0.0/16, {state})"


class _NeverTimer:
    def cancel(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def _parse_headers(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in items:
        k, sep, v = h.partition(":")
        if not sep or not k.strip():
            raise ProbeError(f"header {h!r}: expected 'Name: value'")
        out[k.strip()] = v.strip()
    return out


def _summary(df: pd.DataFrame) -> dict[str, Any]:
    def counts(col: str, skip_empty: bool = True) -> dict[str, int]:
        vals = df[col].astype(str)
        if skip_empty:
            vals = vals[vals != ""]
        return {str(k): int(v) for k, v in vals.value_counts().sort_index().items()}
    return {"requests": int(len(df)), "codes": counts("status"), "flags": counts("flags"),
            "errors": counts("error"), "versions": counts("version"), "pods": counts("pod"),
            "subsets": counts("subset"), "clusters": counts("cluster")}


def _fail(msg: str) -> int:
    print(f"meshlab: {msg}", file=sys.stderr)
    return 65


def _load_paths(paths: list[str]) -> list[Any] | str:
    """The CLI's manifests, or the message to exit with (65) when they cannot be read."""
    from ..manifests import load
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        return f"no such file or directory: {', '.join(missing)}"
    try:
        return load([Path(p) for p in paths])
    except ManifestError as e:
        return str(e)


def _with_lab(objs: list[Any], use: Callable[[LocalBackend], T]) -> T:
    """Bring up a lab holding `objs`, return `use(lab)`, tear the lab down (the CLI's one-shot labs;
    translation warnings are printed as notes by the caller, not as Python warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalBackend() as lab:
            lab.apply(objs)
            return use(lab)


def cli_probe(args: Any) -> int:
    """`meshlab probe PATH... --url URL`: bring up a lab, send requests, summarise, tear down."""
    try:
        headers = _parse_headers(args.header)
        parse_url(args.url)         # argument mistakes are reported before a lab is started
        check_args(n=args.n, concurrency=args.concurrency, headers=headers)
    except ProbeError as e:
        return _fail(str(e))
    objs = _load_paths(args.paths)
    if isinstance(objs, str):
        return _fail(objs)
    try:
        df, notes = _with_lab(objs, lambda lab: (
            lab.probe(args.url, n=args.n, concurrency=args.concurrency, keepalive=not args.no_keepalive,
                      headers=headers, via=args.via),
            list(lab.warnings)))
    except (MeshlabError, ProbeError, ValueError) as e:
        return _fail(str(e))
    s = _summary(df)
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"{s['requests']} requests to {args.url} via {args.via}")
    for title, key in (("status", "codes"), ("Envoy flags", "flags"), ("client errors", "errors"),
                       ("versions", "versions"), ("pods", "pods"), ("subsets", "subsets"),
                       ("clusters", "clusters")):
        if s[key]:
            print(f"  {title}:")
            for k, v in s[key].items():
                print(f"    {k:<60} {v:>6}  ({100.0 * v / max(1, s['requests']):.0f}%)")
    for n in notes:
        print(f"  note: {n}")
    return 0


def cli_envoy_config(args: Any) -> int:
    """`meshlab envoy-config PATH... [--proxy sidecar|gateway] [--json]`: like istioctl proxy-config."""
    objs = _load_paths(args.paths)
    if isinstance(objs, str):
        return _fail(objs)
    try:
        view = _with_lab(objs, lambda lab: lab.envoy_config(args.proxy))
    except MeshlabError as e:
        return _fail(str(e))
    if args.json:
        print(json.dumps(view, indent=1, default=str))
        return 0
    print(_format_view(view))
    return 0


def _format_view(view: dict[str, Any]) -> str:
    """A text rendering close to `istioctl proxy-config` tables."""
    out: list[str] = []
    for section in ("listeners", "routes", "clusters", "endpoints"):
        items = view.get(section)
        if not items:
            continue
        out.append(section.upper())
        if isinstance(items, list) and items and isinstance(items[0], dict):
            keys = list(items[0].keys())
            keys = [k for k in keys if not isinstance(items[0][k], (dict, list))][:6]
            widths = {k: max(len(k), *(len(str(i.get(k, ""))) for i in items)) for k in keys}
            out.append("  ".join(k.upper().ljust(widths[k]) for k in keys))
            for i in items:
                out.append("  ".join(str(i.get(k, "")).ljust(widths[k]) for k in keys))
        else:
            out.append(json.dumps(items, indent=1, default=str))
        out.append("")
    return "\n".join(out) if out else json.dumps(view, indent=1, default=str)
