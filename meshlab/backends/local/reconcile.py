"""Reconcile: the local lab's kubelet, kube-proxy controller and istiod push loop, in one place.

Every change to the `ClusterState` (apply, delete, readiness, a pod dying) comes here as a change
event and is reconciled at once, on one path: pod processes started and stopped (the kubelet),
the kube-proxy table replaced (the endpoints and kube-proxy controllers), then every Envoy's
config rebuilt by `meshlab.istiod.translate.build_config` and pushed (istiod's push, in its
order unless an apply asks for another). When the change returns, traffic sees it.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..._ports import host_port
from ..._processes import lab_environment
from ...app import knobs_from_env
from ...errors import LabError
from ...names import INGRESS_GATEWAY, INGRESS_GATEWAY_LABELS, ISTIO_NAMESPACE, labels_match
from ...state import ClusterState, PodInfo
from .addresses import MARKER, AddressLease
from .kubeproxy import KubeProxy, ServicePortRule
from .pods import PodRunner, PodSpec

if TYPE_CHECKING:
    from ...envoy import Envoy
    from ...istiod.translate import ProxyIdentity
    from ...objects import Service

#: The client pod every probe comes from: a `sleep`-like workload, as in Istio's samples.
SLEEP_LABELS = {"app": "sleep"}
#: Seconds the kubelet takes to notice a container died (its readiness probe failing).
NOTICE_DEATH_S = 1.0


class Proxy:
    """One Envoy the lab runs, who it is (what istiod knows of the workload), and its boot."""

    def __init__(self, identity: ProxyIdentity, envoy: Envoy) -> None:
        self.identity, self.envoy = identity, envoy
        self.started: threading.Thread | None = None
        self.error: BaseException | None = None


class Reconciler:
    """Keeps the processes of one lab in line with its ClusterState (see the module docstring).

    Owns the pod processes (`runner`), the kube-proxy child (`kubeproxy`) and the Envoys
    (`proxies`: the default-namespace client sidecar `sidecar`, the ingress `gateway`, and a
    `sidecar-<ns>` per other namespace a probe came from).
    """

    def __init__(self, state: ClusterState, lease: AddressLease, workdir: Path, *, seed: int | None,
                 start_timeout: float, envoy_log_level: str, warn: Callable[[str], None],
                 sockets: Path | None = None) -> None:
        """`sockets`: the folder of the Envoys' admin sockets and the pods' control sockets (default
        `workdir`; UNIX socket paths must stay under 108 bytes)."""
        from ...envoy import Envoy
        from ...istiod.translate import ProxyIdentity

        self.state, self.lease, self.workdir = state, lease, workdir
        self.sockets = sockets or workdir
        #: what every lab process carries instead of the notebook's environment (its marker lets
        #: a later lab recognise what this one left behind: addresses.py)
        self.marker = {MARKER: lease.marker}
        self.seed, self.start_timeout, self._warn = seed, start_timeout, warn
        self._envoy_cls, self._identity_cls, self._envoy_log_level = Envoy, ProxyIdentity, envoy_log_level
        self.closed = False
        self._lock = threading.RLock()
        self._syncing = False
        self._dirty = False
        self._xds_order: Sequence[str] | str = "istiod"
        self._vips: dict[tuple[str, str], str] = {}
        self._kp_rules: list[ServicePortRule] | None = None
        self._pending_kills: dict[tuple[str, str], Any] = {}
        self.proxies: dict[str, Proxy] = {}
        #: each proxy's translation warnings from its latest build: what the lab holds now cannot honour
        self.build_warnings: dict[str, list[str]] = {}
        self._admin_sockets = 0             # proxies started so far: each gets a socket name of its own
        self._gateway_deployments: set[str] = set()     # proxies keys "<deployment>.<namespace>"
        self.runner = PodRunner(log_dir=workdir, on_exit=self._pod_died)
        self.kubeproxy = KubeProxy(seed=seed, log_path=workdir / "kube-proxy.log",
                                   env=lab_environment(**self.marker))
        self.kubeproxy.start()
        self._add_proxy("sidecar", ProxyIdentity(kind="sidecar", namespace="default", labels=dict(SLEEP_LABELS),
                                                 ip=lease.sidecar_ip, name="sleep", **self._placement()))
        self._add_proxy("gateway", ProxyIdentity(kind="gateway", namespace=ISTIO_NAMESPACE,
                                                 labels=dict(INGRESS_GATEWAY_LABELS), ip=lease.gateway_ip,
                                                 name=INGRESS_GATEWAY, **self._placement()))
        state.subscribe(self._on_change)

    def _placement(self) -> dict[str, str]:
        """Where the lab's client and gateway run: the cluster's default node, and its locality."""
        from ...state import locality_of
        node = self.state.default_node
        return {"node": node.name if node else "", "locality": locality_of({}, node)}

    # ----------------------------------------------------------------------------- addresses
    def vip(self, svc: Service) -> str | None:
        """The loopback ClusterIP kube-proxy serves for a Service (a manifest's own clusterIP is
        kept in the state, but the lab never binds a non-loopback address); None when headless."""
        if svc.spec.headless:
            return None
        ip = self.state.cluster_ip(svc)
        if ip and self.lease.owns(ip):
            return ip
        key = (svc.namespace or "default", svc.name)
        if key not in self._vips:
            self._vips[key] = self.lease.cluster_ip(("vip", *key))
        return self._vips[key]

    def _release_addresses(self, changes: list[Any]) -> None:
        """A deleted Service gives its ClusterIP back (else ~250 delete/create cycles use up
        127.A.2.x and no Service can be created any more)."""
        for c in changes:
            if c.kind == "Service" and c.op == "deleted":
                self.lease.release_cluster_ip((c.namespace, c.name))
                if self._vips.pop((c.namespace, c.name), None) is not None:
                    self.lease.release_cluster_ip(("vip", c.namespace, c.name))

    # ----------------------------------------------------------------------------- proxies
    def _add_proxy(self, key: str, identity: ProxyIdentity) -> Proxy:
        # numbered by start, not by len(self.proxies): a gateway's Envoy stops and another starts
        envoy = self._envoy_cls(key, self.workdir / key, admin_socket=self.sockets / f"admin-{self._admin_sockets}.sock",
                                env=lab_environment(**self.marker), log_level=self._envoy_log_level,
                                original_dst=self.lease.passthrough_cidr)
        self._admin_sockets += 1
        proxy = Proxy(identity, envoy)
        self.proxies[key] = proxy

        def _start() -> None:   # boots while pods start; the first push waits for it
            try:
                envoy.start(self._build(identity, key), timeout=self.start_timeout)
            except BaseException as e:
                proxy.error = e
        proxy.started = threading.Thread(target=_start, name=f"meshlab-start-{key}", daemon=True)
        proxy.started.start()
        return proxy

    def _stop_proxy(self, proxy: Proxy) -> None:
        """Stop a proxy's Envoy once its boot is over (a failed stop is left to the process's death)."""
        if proxy.started is not None:
            proxy.started.join(self.start_timeout + 5)
        try:
            proxy.envoy.stop(timeout=2.0)
        except Exception:
            pass

    def ready(self, proxy: Proxy) -> Proxy:
        """Wait for a proxy's boot (started in the background); raise its start failure, every time."""
        t = proxy.started
        if t is not None:
            t.join(self.start_timeout + 5)
            if t.is_alive():
                raise LabError(f"Envoy '{proxy.envoy.name}' still not ready after {self.start_timeout + 5:g}s")
            proxy.started = None
        if proxy.error is not None:
            raise LabError(f"Envoy '{proxy.envoy.name}' did not start: {proxy.error}") from proxy.error
        return proxy

    def gateway(self) -> Proxy:
        return self.ready(self.proxies["gateway"])

    def client(self, namespace: str) -> Proxy:
        """The client sidecar for probes from `namespace` (started on first use)."""
        key = "sidecar" if namespace == "default" else f"sidecar-{namespace}"
        with self._lock:
            if key not in self.proxies:
                if namespace not in self.state.namespaces():
                    raise LabError(f'namespace "{namespace}" does not exist in this lab; apply a Namespace first')
                ident = self._identity_cls(kind="sidecar", namespace=namespace, labels=dict(SLEEP_LABELS),
                                           ip=self.lease.proxy_ip(), name=f"sleep.{namespace}", **self._placement())
                self._add_proxy(key, ident)
            proxy = self.proxies[key]
        return self.ready(proxy)

    def _build(self, identity: ProxyIdentity, key: str) -> Any:
        from ...istiod.translate import build_config
        cfg = build_config(self.state, identity)
        self.build_warnings[key] = list(cfg.warnings)
        for w in cfg.warnings:
            self._warn(w)
        return cfg

    # ----------------------------------------------------------------------------- reconcile
    @contextmanager
    def push_order(self, xds_order: Sequence[str] | str) -> Iterator[None]:
        """The changes made inside reach the Envoys with the resource types in `xds_order`
        (`["rds", "cds"]`: routes before the clusters they name) instead of istiod's order."""
        with self._lock:
            self._xds_order = xds_order
            try:
                yield
            finally:
                self._xds_order = "istiod"

    def _on_change(self, changes: list[Any]) -> None:
        """The one reconcile path: every state change event arrives here (in the changing thread)."""
        if self.closed:
            return
        self._release_addresses(changes)
        with self._lock:
            if self._syncing:       # a change made while reconciling (a pod that failed to start)
                self._dirty = True
                return
            self._syncing = True
            try:
                while True:
                    self._dirty = False
                    self._sync_pods()
                    self._sync_kubeproxy()
                    self._sync_gateway_deployments()
                    for key, proxy in list(self.proxies.items()):
                        self.ready(proxy).envoy.push(self._build(proxy.identity, key), order=self._xds_order)
                    if not self._dirty:
                        break
            finally:
                self._syncing = False

    # ----------------------------------------------------------------------------- Gateway API
    def _sync_gateway_deployments(self) -> None:
        """Istio's gateway deployment controller: an Envoy for every Gateway of class `istio`
        (Istio deploys `<gateway>-istio`, a Deployment and Service, per Gateway), stopped when the
        Gateway goes. Each gets its own loopback address and Istio's gateway pod labels."""
        from ...gateway_api import GatewayAPI, deployment_name, gateway_labels
        wanted = {f"{deployment_name(gw)}.{gw.namespace or 'default'}": gw
                  for gw in GatewayAPI(self.state).convert().deployed}
        for key in [k for k in self._gateway_deployments if k not in wanted]:
            self._gateway_deployments.discard(key)
            self.build_warnings.pop(key, None)
            self._stop_proxy(self.proxies.pop(key))
        for key, gw in wanted.items():
            if key not in self.proxies:
                ident = self._identity_cls(kind="gateway", namespace=gw.namespace or "default",
                                           labels=gateway_labels(gw), ip=self.lease.proxy_ip(),
                                           name=deployment_name(gw))
                self._gateway_deployments.add(key)
                self._add_proxy(key, ident)

    def gateway_deployment(self, name: str, namespace: str | None = None) -> Proxy:
        """The Envoy of the gateway deployment `name` (`<gateway>-istio`), in `namespace` or, when
        not given, the only one of that name; LabError naming the deployments there are."""
        with self._lock:
            keys = sorted(self._gateway_deployments)
        mine = [k for k in keys if k.rsplit(".", 1)[0] == name and (namespace is None or k.rsplit(".", 1)[1] == namespace)]
        if len(mine) != 1:
            there = ", ".join(k.replace(".", " in namespace ", 1) for k in keys) or "none (apply a Gateway of class istio)"
            what = "several" if mine else "no"
            raise LabError(f"{what} gateway deployment {name!r}{f' in namespace {namespace}' if namespace else ''}: "
                           f"Istio deploys <gateway>-istio for each Gateway of class istio; deployed here: {there}")
        return self.ready(self.proxies[mine[0]])

    def pod_host_ports(self, pod: PodInfo) -> list[int]:
        """The ports the pod's process binds on its address (`_pod_ports`, low ones aliased)."""
        return [host_port(p) for p in self._pod_ports(pod)]

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
        """The kubelet: a process per pod, on the pod's IP and ports; gone pods stopped."""
        desired = {(p.namespace, p.name): p for p in self.state.pods()}
        for key in [k for k in self.runner.pods if k not in desired]:
            proc = self.runner.pods[key]
            self.runner.stop(key[1], key[0])
            self.lease.release_pod_ip(proc.spec.ip)
        to_start: list[PodSpec] = []
        for key, pod in desired.items():
            ports = self.pod_host_ports(pod)
            have = self.runner.pods.get(key)
            if have is None and pod.phase in ("Failed", "Pending"):
                continue          # could not start before (or no node fits it): not started
            if have is None or (have.spec.ports != ports and not have.killed):
                seed = None if self.seed is None else (self.seed * 1000003 + zlib.crc32(pod.name.encode()) % 1000003)
                try:
                    knobs = knobs_from_env(pod.env())
                except ValueError as e:
                    self.state.set_pod(pod.name, pod.namespace, ready=False, phase="Failed")
                    raise LabError(f"pod {pod.namespace}/{pod.name} ({pod.owner or 'Pod'}): the app cannot "
                                   f"start: {e}") from None
                ip = pod.ip or self.lease.pod_ip(ports)
                to_start.append(PodSpec(pod.name, pod.namespace, ip, ports, pod.version,
                                        seed=seed, control=f"unix:{self.sockets / f'ctl-{ip}.sock'}",
                                        env=lab_environment(HOSTNAME=pod.name[:63], **self.marker), knobs=knobs))
        if to_start:
            try:
                self.runner.start(to_start, timeout=self.start_timeout)
            except Exception as e:
                for s in to_start:
                    if (s.namespace, s.name) not in self.runner.pods:
                        self.state.set_pod(s.name, s.namespace, ready=False, phase="Failed")
                raise LabError(str(e)) from e

    def _kp_table(self) -> list[ServicePortRule]:
        """What kube-proxy programs: every TCP Service port's ClusterIP and its ready endpoints."""
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

    # ----------------------------------------------------------------------------- the kubelet's eyes
    def _pod_died(self, proc: Any) -> None:
        """A pod process exited on its own: the kubelet notices and the pod leaves the endpoints."""
        key = (proc.spec.namespace, proc.spec.name)
        if key in self._pending_kills or self.closed:
            return
        self.notice_death(key, NOTICE_DEATH_S)

    def notice_death(self, key: tuple[str, str], delay: float | None, *, never: bool = False) -> None:
        """Mark pod `key` (namespace, name) not ready and Failed after `delay` seconds, as the
        kubelet does once its readiness probe fails; `delay=None` cancels a pending mark, and
        `never=True` keeps the dead pod in the endpoints (until restarted)."""
        old = self._pending_kills.pop(key, None)
        if old is not None:
            old.cancel()
        if never:
            self._pending_kills[key] = _Never()
            return
        if delay is None:
            return

        def _mark() -> None:
            self._pending_kills.pop(key, None)
            if self.closed:
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

    # ----------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        self.closed = True
        for t in list(self._pending_kills.values()):
            t.cancel()
        for proxy in list(self.proxies.values()):
            self._stop_proxy(proxy)
        self.runner.close()
        self.kubeproxy.close()


class _Never:
    """A pending mark that never fires (a killed pod kept in the endpoints on purpose)."""

    def cancel(self) -> None:
        pass
