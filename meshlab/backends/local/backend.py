"""The local backend: a real Envoy mesh on loopback, driven from Kubernetes + Istio YAML.

What runs (all children of this Python process, all gone when it goes):

- one demo-app process per pod (`pods.py`), each on its own ``127.A.1.x``;
- a kube-proxy child (`kubeproxy.py`) serving every Service's ClusterIP ``127.A.2.x``;
- a client sidecar Envoy at ``127.A.0.1`` for a ``sleep``-like workload (``app: sleep``) in
  ``default`` (more sidecars on ``127.A.0.3+`` when a probe comes from another namespace);
- the ingress gateway Envoy at ``127.A.0.2`` (``istio: ingressgateway`` in ``istio-system``).

The lab's address block comes from `addresses.py`; every change to its `ClusterState` is
reconciled at once by `reconcile.py` (the kubelet, kube-proxy and istiod's pushes), and
`dns.py` says where a probe's requests go. When `apply` returns, traffic sees the change.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import stat
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ... import _recording
from ..._processes import pdeathsig_available
from ...envoy.admin import MAX_SOCKET_PATH
from ...errors import AddressBlockExhausted, ApplyError, EnvoyConfigRejected, LabError, ProbeError
from ...objects import GATEWAY_API_GROUP, UnmodelledObject
from ...probe import ProbeRun, check_args, run as run_probe
from ...state import ClusterState, PodInfo
from ...names import zone_of
from ..base import APP_LOG_COLUMNS, POD_COLUMNS, BackendBase, ProxyName, Via, apply_steps, check_gap, run_steps
from . import limits
from .addresses import POD_ADDRESSES, AddressLease, owner_alive, start_time
from .dns import ClusterDNS
from .reconcile import Reconciler

if TYPE_CHECKING:
    import pandas as pd

    from ...envoy import Envoy
    from ...objects import K8sObject

_open_labs: "weakref.WeakSet[LocalBackend]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for lab in list(_open_labs):
        try:
            lab.close()
        except Exception:
            pass


#: A lab's work folder: `meshlab-lab-<block>-<owner pid>-<owner start time>-<random>`, so whoever
#: finds it can tell whether its owner still runs, even when the folder is half removed.
_WORKDIR_PREFIX = "meshlab-lab-"


def _workdir_prefix(block: int) -> str:
    return f"{_WORKDIR_PREFIX}{block}-{os.getpid()}-{start_time(os.getpid())}-"


def _sweep_stale_workdirs(base: Path | None = None) -> list[Path]:
    """Remove this user's lab work folders whose owner died without closing them (a SIGKILLed
    kernel, or a kill in the middle of `close()`). The owner is read from the folder's name, so a
    folder whose files are half gone is still recognised. Only real folders owned by this user are
    touched (a symlink planted under that name by someone else is left alone: `rmtree` would
    refuse it anyway, and no path is followed). Returns what was removed."""
    base = base or Path(tempfile.gettempdir())
    removed = []
    me = os.geteuid()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(_WORKDIR_PREFIX):
            continue
        parts = entry.name[len(_WORKDIR_PREFIX):].split("-")
        try:
            st = entry.stat(follow_symlinks=False)
            pid, started = int(parts[1]), int(parts[2])
        except (OSError, ValueError, IndexError):
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != me or owner_alive(pid, started):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def blame(objects: list[K8sObject], envoy_message: str) -> str:
    """The objects an apply step was made of (with file and line), and the field Envoy's message
    points at when one can be found: a string value of theirs that the message quotes, or that
    holds a word the message names (`Not supported field in StreamInfo: FOO` → `%FOO%`)."""
    from ...manifests.messages import format_path
    words = {w for w in re.findall(r"[A-Za-z0-9_%.:/-]{3,}", envoy_message) if not w.islower() or "%" in w}
    hits: list[str] = []
    for o in objects:
        for path, value in _string_leaves(o.to_manifest()):
            if len(value) >= 2 and (value in envoy_message or any(w in value for w in words)):
                hits.append(f"{o.ref}{f' ({o.source})' if o.source else ''} {format_path(path)}")
    if len(hits) in (1, 2, 3):
        return "; ".join(hits)
    shown = [f"{o.ref}{f' ({o.source})' if o.source else ''}" for o in objects if o.kind != "Namespace"][:4]
    return ", ".join(shown) + (" and more" if len(objects) > 4 else "")


def _string_leaves(data: Any, path: list[str | int] | None = None) -> Iterator[tuple[list[str | int], str]]:
    path = path or []
    if isinstance(data, dict):
        for k, v in data.items():
            if path == [] and k in ("apiVersion", "kind", "metadata"):
                continue
            yield from _string_leaves(v, [*path, k])
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _string_leaves(v, [*path, i])
    elif isinstance(data, str):
        yield path, data


def _private_workdir(path: Path) -> None:
    """Make `path` (a `workdir=` the learner named) the lab's private folder, or refuse it: it must
    be a folder of this user's that no one else may write. Another user who can write there could
    swap the xDS files this lab's Envoy watches (its listeners, its access-log path: files
    written as this user) or plant symlinks where the lab writes. Made here: mode 0700."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise LabError(f"cannot make the lab's work folder {str(path)[:200]!r}: {e.strerror}") from None
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise LabError(f"the lab's work folder {str(path)[:200]!r} is not a folder")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        who = "another user" if st.st_uid != os.geteuid() else "others"
        raise LabError(f"the lab's work folder {str(path)[:200]!r} can be written by {who} (owner uid {st.st_uid}, "
                       f"mode {stat.S_IMODE(st.st_mode):o}), who could then change what the lab's Envoy runs: "
                       f"use a folder of your own that only you can write (chmod 700), or leave workdir out")


def _socket_dir(workdir: Path, block: int) -> tuple[Path, bool]:
    """Where the lab's UNIX sockets go: the work folder when its path leaves room for a socket
    name under the 107-byte limit, else a short private folder. (path, made here)."""
    if len(os.fsencode(workdir)) <= MAX_SOCKET_PATH - 24:
        return workdir, False
    for base in (tempfile.gettempdir(), "/tmp"):
        if len(os.fsencode(base)) <= MAX_SOCKET_PATH - 70:
            return Path(tempfile.mkdtemp(prefix=_workdir_prefix(block), dir=base)), True
    raise LabError(f"the work folder {str(workdir)[:120]!r} and the temp folder are too long a path for the "
                   f"lab's UNIX sockets (at most {MAX_SOCKET_PATH} bytes): set a shorter TMPDIR")


def _unmodelled_istio(obj: K8sObject) -> bool:
    """An Istio kind meshlab does not model (Sidecar, PeerAuthentication, AuthorizationPolicy,
    EnvoyFilter, WorkloadEntry…): on a cluster istiod acts on it, here nothing does."""
    return isinstance(obj, UnmodelledObject) and obj.group.endswith("istio.io")


def _unmodelled_warning(obj: K8sObject) -> str:
    where = f" ({obj.source})" if getattr(obj, "source", None) else ""
    return (f"{obj.ref}{where}: {obj.kind} ({obj.api_version}) is not modelled by the local backend: it has no "
            f"effect here (on a cluster istiod applies it)")


class LocalBackend(BackendBase):
    """A lab on this machine: real Envoy, real pods, loopback only. Use as a context manager.

    `seed` makes kube-proxy's and the pods' random choices repeatable; `workdir` keeps Envoy's
    files and logs (default: a temporary directory removed on close); `start_timeout` is how long
    an Envoy or a pod may take to start.

    On a shared host (many users, one network namespace) a lab is its owner's alone: its address
    block is leased by an abstract socket (`addresses.py`), Envoy's admin API and the pods'
    control endpoints are UNIX sockets in the 0700 work folder, passthrough reaches only the
    lab's own addresses, and its processes get a container's environment, not the notebook's.
    What it may start is bounded up front (`limits.py`: pods by memory and open files; Envoy's
    xDS file watches by the user's inotify instances), with the limit and the reason.
    """

    name = "local"

    def __init__(self, *, seed: int | None = None, workdir: str | os.PathLike[str] | None = None,
                 envoy_log_level: str = "warning", start_timeout: float = 20.0) -> None:
        self.seed = seed
        self._closed = False
        self._lab_warnings: list[str] = []     # about the lab itself (setpriv, a reclaimed block)
        self._warned: set[str] = set()
        self._runs: weakref.WeakSet[ProbeRun] = weakref.WeakSet()
        self._sockets_made = False
        _sweep_stale_workdirs()
        limits.raise_open_files_limit()       # before any child starts: they inherit it
        self.lease = AddressLease()
        try:
            if not pdeathsig_available():
                self._lab_warning("util-linux `setpriv` was not found, so the lab's processes are not tied to this "
                           "kernel: if it is killed, its Envoys keep running until the next Lab() on this "
                           "block reclaims them. Install util-linux to have them end with the kernel")
            if self.lease.reclaimed:
                self._lab_warning(f"reclaimed 127.{self.lease.block}.0.0/16 from a lab whose kernel died without "
                           f"closing it: stopped its {len(self.lease.reclaimed)} leftover processes")
            self._own_workdir = workdir is None
            self.workdir = Path(workdir) if workdir else Path(
                tempfile.mkdtemp(prefix=_workdir_prefix(self.lease.block)))
            if workdir is not None:
                _private_workdir(self.workdir)
            sockets, self._sockets_made = _socket_dir(self.workdir, self.lease.block)
            self._sockets = sockets
            self.state = ClusterState(pod_ip=self._pod_ip,
                                      cluster_ip=lambda svc: self.lease.cluster_ip((svc.namespace or "", svc.name)))
            self.reconciler = Reconciler(self.state, self.lease, self.workdir, seed=seed,
                                         start_timeout=start_timeout, envoy_log_level=envoy_log_level,
                                         warn=self._warn, sockets=sockets)
            self.dns = ClusterDNS(self.state, self.reconciler, self.lease.sidecar_ip, seed)
        except BaseException:
            self.close()
            raise
        _open_labs.add(self)

    def _pod_ip(self, pod: PodInfo) -> str:
        """The address of a new pod: one where the ports its process binds are free (`AddressLease.pod_ip`);
        when there is none, the error names the pod."""
        try:
            return self.lease.pod_ip(self.reconciler.pod_host_ports(pod))
        except AddressBlockExhausted as e:
            raise AddressBlockExhausted(f"pod {pod.namespace}/{pod.name} ({pod.owner or 'Pod'}): {e}") from None

    def _lab_warning(self, w: str) -> None:
        self._lab_warnings.append(w)
        self._warn(w)

    @property
    def warnings(self) -> list[str]:
        """The lab's own warnings, then what the translation of the objects the lab holds now cannot
        honour (each proxy's latest build): a warning about a deleted object goes with it."""
        out = list(self._lab_warnings)
        reconciler = getattr(self, "reconciler", None)
        for ws in (reconciler.build_warnings.values() if reconciler is not None else ()):
            out += [w for w in ws if w not in out]
        state = getattr(self, "state", None)
        return out + [_unmodelled_warning(o) for o in (state.all() if state is not None else ()) if _unmodelled_istio(o)]

    def _warn(self, w: str) -> None:
        """Python's warning the first time a warning is given (re-given by every later build)."""
        if w not in self._warned:
            self._warned.add(w)
            warnings.warn(f"meshlab local backend: {w}", stacklevel=5)

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("this lab is closed; create a new one")

    # ----------------------------------------------------------------------------- objects
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
        from ...envoy.xds import ISTIOD_ORDER
        if xds_order != "istiod" and (isinstance(xds_order, str)
                                      or any(t not in ISTIOD_ORDER for t in xds_order)):
            raise LabError(f"xds_order must be 'istiod' or a list of {', '.join(ISTIOD_ORDER)} "
                           f"(e.g. ['rds', 'cds']), not {xds_order!r}")
        steps = apply_steps(list(objects), order)
        self._check_capacity(list(objects))
        run_steps(steps, check_gap(0.5 if gap is None else gap), lambda step: self._apply_step(step, xds_order))
        for o in objects:
            if _unmodelled_istio(o):
                self._warn(_unmodelled_warning(o))

    def _check_capacity(self, objects: list[K8sObject]) -> None:
        """Refuse, before anything changes, objects that would start more pod processes than this
        host can hold (`limits.pods_problem`: memory, open files) or than the block has addresses,
        naming the objects and the field, as a ResourceQuota refusal would."""
        from ...objects import Deployment, Pod
        adding, culprits = 0, []
        for o in objects:
            if isinstance(o, Deployment):
                held = self.state.get(Deployment, o.name, o.namespace or "default")
                n = o.spec.replicas - (held.spec.replicas if held is not None else 0)
                field = "spec.replicas"
            elif isinstance(o, Pod):
                n = 0 if self.state.get(Pod, o.name, o.namespace or "default") is not None else 1
                field = ""
            else:
                continue
            if n > 0:
                adding += n
                src = f" ({o.source})" if o.source else ""
                culprits.append(f"{o.ref}{src}{' ' + field + ': ' + str(o.spec.replicas) if field else ''}")
        if adding <= 0:
            return
        running = len(self.state.pods())
        why = limits.pods_problem(adding, running)
        if why is None and running + adding > POD_ADDRESSES:
            why = (f"{running + adding} pods would not fit in the lab's address block ({POD_ADDRESSES} pod "
                   f"addresses)")
        if why:
            shown = "; ".join(culprits[:3]) + (f"; and {len(culprits) - 3} more" if len(culprits) > 3 else "")
            raise ApplyError(f"{shown}: refused, nothing was applied: {why}")

    def _apply_step(self, objects: list[K8sObject], xds_order: Sequence[str] | str) -> None:
        """Apply one step; if the lab cannot run it (Envoy rejects the config, a pod cannot
        start), put the previous objects back so the state matches what is running, and raise."""
        for o in objects:
            if o.GROUP == GATEWAY_API_GROUP:
                o.status = None     # a status subresource: what apply sends never sets it
        held = {o.key: o for o in self.state.all()}
        before = {o.key: held.get(o.key) for o in objects}
        try:
            with self.reconciler.push_order(xds_order):
                self.state.apply(objects)
        except ApplyError:                 # refused before anything was stored
            raise
        except Exception as e:
            try:
                added = [o for o in objects if before.get(o.key) is None]
                if added:
                    self.state.delete(added)
                old = [o for o in before.values() if o is not None]
                if old:
                    self.state.apply(old)
            except Exception:
                pass
            if isinstance(e, EnvoyConfigRejected) and not e.applying:
                raise EnvoyConfigRejected(e.proxy, e.resource, e.envoy_message, applying=blame(objects, e.envoy_message)) \
                    from None
            raise

    def delete(self, objects: list[K8sObject]) -> None:
        self._check_open()
        self.state.delete(list(objects))

    def objects(self) -> list[K8sObject]:
        """Copies: editing one must not change the lab until it is applied (as with kubectl get).
        Gateway API objects carry the status istiod's controller would have written
        (`meshlab.gateway_api`): Accepted, ResolvedRefs, Programmed, attached routes."""
        from ...gateway_api import GatewayAPI
        status = GatewayAPI(self.state).convert().status
        out = []
        for o in self.state.all():
            copy = o.model_copy(deep=True)
            if o.key in status:
                copy.status = status[o.key]
            out.append(copy)
        return out

    # ----------------------------------------------------------------------------- pods
    def pods(self) -> pd.DataFrame:
        import pandas as pd
        rows = []
        for p in self.state.pods():
            proc = self.reconciler.runner.pods.get((p.namespace, p.name))
            phase = p.phase
            if proc is not None and not proc.alive and phase == "Running":
                phase = "Failed"
            rows.append({"name": p.name, "namespace": p.namespace, "ip": p.ip, "labels": dict(p.labels),
                         "version": p.version, "ready": p.ready, "phase": phase, "node": p.node or "",
                         "zone": zone_of(p.locality)})
        return pd.DataFrame(rows, columns=list(POD_COLUMNS))

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
                error_code: int | None = None, latency_jitter_ms: float | None = None,
                keepalive_timeout_ms: float | None = None, connection_close: bool | None = None,
                network_delay_ms: float | None = None) -> None:
        """Turn a pod's knobs (`meshlab.app`). `ready=False` takes it out of every endpoint list
        (readiness probe failing), `ready=True` puts it back."""
        self._check_open()
        name = self._pod_name(name, namespace)
        proc = self.reconciler.runner.get(name, namespace)
        if ready and not proc.alive:
            # a dead container never passes its readiness probe
            raise LabError(f"pod {namespace}/{name} is not running (killed), so it cannot be ready; "
                           f"restart_pod({name!r}) starts it again")
        try:
            proc.set_knobs(latency_ms=latency_ms, error_rate=error_rate, error_code=error_code, ready=ready,
                           latency_jitter_ms=latency_jitter_ms, keepalive_timeout_ms=keepalive_timeout_ms,
                           connection_close=connection_close, network_delay_ms=network_delay_ms)
        except ValueError as e:
            raise LabError(str(e)) from None
        if ready is not None:
            self.state.set_pod(name, namespace, ready=ready)

    def app_log(self, *, namespace: str | None = None) -> pd.DataFrame:
        """What the pods' app received (each pod's `/requests`), one row per request, oldest first."""
        import pandas as pd
        self._check_open()
        out = []
        for p in self.state.pods(namespace):
            proc = self.reconciler.runner.pods.get((p.namespace, p.name))
            if proc is None:
                continue
            try:
                got = proc.requests()
            except OSError:        # died in between: its log died with it, as a container's would
                continue
            out += [{"pod": p.name, "namespace": p.namespace, "version": p.version, **r} for r in got]
        df = pd.DataFrame(out, columns=list(APP_LOG_COLUMNS))
        return df.sort_values("t", kind="stable").reset_index(drop=True) if len(df) else df

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
        self.reconciler.notice_death(key, None)
        self.reconciler.runner.kill(name, namespace)
        self.reconciler.notice_death(key, notready_after, never=notready_after is None)

    def restart_pod(self, name: str, *, namespace: str = "default") -> None:
        """A fresh process on the same IP (knobs reset), ready again."""
        self._check_open()
        name = self._pod_name(name, namespace)
        self.reconciler.notice_death((namespace, name), None)
        self.reconciler.runner.restart(name, namespace)
        self.state.set_pod(name, namespace, ready=True, phase="Running")

    # ----------------------------------------------------------------------------- probing
    def probing(self, url: str, *, n: int | None = None, rate: float | None = 100.0,
                duration: float | None = None, concurrency: int = 1, keepalive: bool = True,
                headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
                seed: int | None = None, timeout: float = 30.0, method: str = "GET") -> ProbeRun:
        """Start traffic in the background (a timeline); `.result()` → DataFrame, `.snapshot()`
        for the rows so far. With neither `n` nor `duration` it runs until stopped (use `with`)."""
        self._check_open()
        check_args(n=n, concurrency=concurrency, keepalive=keepalive, headers=headers, rate=rate,
                   duration=duration, timeout=timeout, seed=seed, method=method)   # before a client sidecar is started
        too_many = limits.concurrency_problem(concurrency)
        if too_many:
            raise ProbeError(too_many)
        self._trim_access_logs()
        target = self.dns.target(url, via=via, namespace=namespace)
        if seed is not None and target.proxy == "none" and target.connect is not None:
            self.reconciler.kubeproxy.reseed(seed)   # the same seed picks the same pods, connection by connection
        run = run_probe(target, n=n, concurrency=concurrency, keepalive=keepalive, headers=headers,
                        rate=rate, duration=duration, timeout=timeout, seed=seed, method=method)
        run.attrs.update(url=url, via=via, namespace=namespace)   # explain() reads them
        self._runs.add(run)
        _recording.probed(self.state, {"url": url, "via": via, "namespace": namespace,
                                       "headers": dict(headers or {})})
        return run

    def _trim_access_logs(self, limit: int = 32 << 20) -> None:
        """Empty Envoy's access logs once they pass `limit` bytes and no probe still needs them
        (a long timeline at hundreds of requests/s would otherwise fill /tmp). Envoy appends
        (O_APPEND), so truncating under it is safe."""
        if any(not r.collected for r in list(self._runs)):
            return
        for proxy in list(self.reconciler.proxies.values()):
            path = proxy.envoy.access_log_path
            try:
                if path.stat().st_size > limit:
                    os.truncate(path, 0)
            except OSError:
                pass

    # ----------------------------------------------------------------------------- Envoy
    def envoy(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> Envoy:
        """The Envoy process (admin API, stats, access log) of the client sidecar of `namespace`
        (started on first use) or of the ingress gateway."""
        self._check_open()
        if proxy == "gateway":
            return self.reconciler.gateway().envoy
        if proxy != "sidecar":
            if not isinstance(proxy, str) or not proxy:
                raise LabError(f"proxy must be 'sidecar', 'gateway' or a gateway deployment's name, not {proxy!r}")
            ns, _, name = proxy.rpartition("/")
            return self.reconciler.gateway_deployment(name, ns or None).envoy
        return self.reconciler.client(namespace).envoy

    # ----------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        _open_labs.discard(self)
        for run in list(getattr(self, "_runs", [])):   # background traffic ends with the lab
            run.stop()
        if hasattr(self, "reconciler"):
            self.reconciler.close()
        if getattr(self, "_own_workdir", False):
            shutil.rmtree(self.workdir, ignore_errors=True)
        if getattr(self, "_sockets_made", False):
            shutil.rmtree(self._sockets, ignore_errors=True)
        self.lease.release()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.state.pods())} pods"
        return f"LocalBackend(127.{self.lease.block}.0.0/16, {state})"
