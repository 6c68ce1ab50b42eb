"""`Lab`: the one object a notebook holds — the same calls on every backend.

It loads whatever the learner hands it (paths, YAML strings, dicts, objects) with
`meshlab.load`, so bad input is rejected with a message naming file/object/field before anything
changes, then delegates to a Backend (`meshlab.backends.base.Backend`). Notebooks never branch on
the backend: `Lab()` is local unless `MESHLAB_BACKEND` says otherwise (so the very same notebooks
run on kind), and `Lab(backend="kind")` asks for a real cluster with real Istio explicitly.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import pandas  # noqa: F401  (imported up front so the first probe does not pay for it)

from .backends.base import Backend, ProxyName, RunningProbe, Via
from .errors import InternalError, LabClosed, LabOptionError, MeshlabError, ProbeError

if TYPE_CHECKING:
    import pandas as pd

    from .explanation import Explanation
    from .objects import K8sObject

#: Backend name → (module, class, what the class is told). `kind` is the course cluster `meshlab up`
#: makes; `cluster` one attendee's namespace on an existing cluster with Istio (workshops).
BACKENDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "local": ("meshlab.backends.local", "LocalBackend", {}),
    "kind": ("meshlab.backends.kind", "KindBackend", {"backend": "kind"}),
    "cluster": ("meshlab.backends.kind", "KindBackend", {"backend": "cluster"}),
}


class LabOptions(TypedDict, total=False):
    """The keywords `Lab(...)` takes; each backend takes its own (others are a `LabOptionError`)."""

    # local
    seed: int | None                      # kube-proxy's and the pods' random choices, reproducibly
    workdir: str | os.PathLike[str] | None   # where Envoy's files and logs go (default: a temp dir)
    envoy_log_level: str                  # Envoy's --log-level (default "warning")
    start_timeout: float                  # seconds an Envoy or a pod may take to start
    # kind and cluster
    context: str | None                   # the kube context (kind: kind-meshlab unless named)
    namespace: str | None                 # cluster: the attendee's namespace
    image: str | None                     # the demo image (default: the one `meshlab up` built)
    kubeconfig: str | None
    kube: Any                             # a Kubernetes client in place of the kubeconfig's (tests)
    timeout: float                        # seconds a rollout may take
    settle_s: float                       # seconds istiod gets to push a change (and the default gap)
    poll_s: float                         # API polling period
    log_timeout: float                    # seconds to wait for Envoy to flush access-log lines
    progress: Callable[[str], None] | None   # where rollout progress lines go (default: print)


def _backend_class(name: str) -> tuple[type, dict[str, Any]]:
    if name not in BACKENDS:
        raise LabOptionError(f"unknown backend {name!r}: use 'local', 'kind' or 'cluster'")
    module, cls, preset = BACKENDS[name]
    return getattr(importlib.import_module(module), cls), preset   # lazily: kind needs the kubernetes client


def backend_options(name: str) -> list[str]:
    """The `Lab(...)` keywords the backend `name` takes."""
    cls, preset = _backend_class(name)
    params = inspect.signature(cls).parameters
    return sorted(p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY and p not in preset)


def _backend(name: str, options: dict[str, Any]) -> Backend:
    cls, preset = _backend_class(name)
    known = backend_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise LabOptionError(f"Lab(backend={name!r}) takes no option {', '.join(map(repr, unknown))}; "
                             f"its options: {', '.join(known)}")
    return cls(**preset, **options)


# ----------------------------------------------------------------- one lab per setup cell

#: In a Jupyter kernel: the lab each cell made last, and the execution that made it.
_by_cell: dict[str, tuple[weakref.ref[Lab], int]] = {}


def _cell() -> tuple[str, int] | None:
    """(the identity of the notebook cell running now, its execution count), or None outside an
    IPython kernel. The identity is the cell's id when the front end sends it (JupyterLab puts
    `cellId` in the execute request's metadata); else the file name ipykernel compiles the cell
    under, which is a hash of its code, so re-running an unchanged cell gives the same one."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None   # type: ignore[attr-defined]
    if shell is None:
        return None
    count = int(getattr(shell, "execution_count", 0) or 0)
    header = getattr(shell, "parent_header", None) or {}
    cell_id = (header.get("metadata") or {}).get("cellId") if isinstance(header, dict) else None
    if cell_id:
        return f"id:{cell_id}", count
    frame = sys._getframe(1)
    here = os.path.dirname(__file__) + os.sep
    while frame is not None and frame.f_code.co_filename.startswith(here):
        frame = frame.f_back                                  # the first frame outside meshlab
    return (f"code:{frame.f_code.co_filename}", count) if frame is not None else None


def _close_the_lab_this_cell_made_before() -> tuple[str, int] | None:
    """Re-running a chapter's setup cell (`lab = Lab()`) must leave one lab, not two.

    What kept the old one alive: the setup cell ends with `lab`, so IPython's output cache
    (`Out[n]`, `_`, `__`, `___`) still holds the old Lab after `lab` is rebound, and its ~6
    processes and ~80 MB stay until the kernel ends. Emptying the cache is not meshlab's to do,
    and a lab kept on purpose must not be closed behind the learner's back, so the rule is
    narrow: a Lab made by the same cell as an earlier one, in a later execution of it, replaces
    it — the earlier lab is closed first (its block and memory are free for the new one; its
    Out[] entry then shows a closed lab). Labs made by different cells, or in one execution of a
    cell (`a, b = Lab(), Lab()`), are left alone; outside a kernel nothing changes.

    Returns the cell (to record the new lab under), or None outside an IPython kernel."""
    cell = _cell()
    if cell is None:
        return None
    previous = _by_cell.get(cell[0])
    old = previous[0]() if previous is not None and previous[1] != cell[1] else None
    if old is not None:
        try:
            old.close()
        except Exception:
            pass
    return cell


@contextlib.contextmanager
def plainly(doing: str) -> Iterator[None]:
    """Let meshlab's own errors through (they say what to fix); turn anything else raised inside
    the lab into an `InternalError`: one paragraph in the notebook instead of a long traceback
    naming no file, object or field. The original stays attached (`__cause__`, `%tb`)."""
    try:
        yield
    except MeshlabError:
        raise
    except Exception as e:
        raise InternalError(doing, e) from e


class Lab:
    """A lab: apply manifests, turn pod knobs, send traffic, read Envoy's view.

    ``with Lab() as lab: lab.apply("manifests/"); df = lab.probe("http://reviews:9080/")``

    `backend`: "local" (default, or `MESHLAB_BACKEND`), "kind" or "cluster"; the keywords are
    the backend's own (`LabOptions`), and one it does not take is a `LabOptionError`.
    """

    #: What a closed lab answers to every call: what happened and how to start again.
    CLOSED_MESSAGE = ("this lab is closed: lab.close() stopped its Envoy proxies and pods. To start a new one, "
                      "run the chapter again from its first cell (Run ▸ Run All Cells), or in code "
                      "`lab = Lab()` and apply your manifests again")

    def __init__(self, backend: str | None = None, **options: Unpack[LabOptions]) -> None:
        self._closed = False
        cell = _close_the_lab_this_cell_made_before()
        with plainly("starting the lab"):
            self.backend: Backend = _backend(backend or os.environ.get("MESHLAB_BACKEND") or "local", dict(options))
        if cell is not None:
            _by_cell[cell[0]] = (weakref.ref(self), cell[1])

    @property
    def closed(self) -> bool:
        """True once `close()` ran: every call then raises `LabClosed`, saying how to start again."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LabClosed(self.CLOSED_MESSAGE)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def warnings(self) -> list[str]:
        """What the backend cannot honour in the objects the lab holds now (e.g. a field the local
        Envoy translation does not implement, a kind it does not model), in words; a warning goes
        when its object is deleted."""
        return list(self.backend.warnings)

    # ---- objects -------------------------------------------------------------------------------
    @staticmethod
    def _load(x: Any) -> list[K8sObject]:
        """The objects; an object given twice is applied once, the later definition (as `kubectl
        apply -f` does), with a UserWarning naming both places."""
        import warnings

        from .manifests import load
        objs = load(x)
        for w in objs.warnings:
            warnings.warn(str(w), UserWarning, stacklevel=3)
        return objs

    def apply(self, x: Any, order: Sequence[str] | str | None = None, *, gap: float | None = None,
              xds_order: Sequence[str] | str = "istiod") -> list[K8sObject]:
        """Create or update objects (paths, YAML strings, dicts, objects, or lists of them).

        `order=["VirtualService", "DestinationRule"]` applies the kinds not listed first, then
        each listed kind on its own, `gap` seconds apart (the make-before-break window; one rule
        on every backend: `meshlab.backends.base.apply_steps`). `xds_order` orders the resource
        types of each push of the local Envoys. Returns the objects applied."""
        self._check_open()
        objs = self._load(x)
        with plainly("applying manifests"):
            self.backend.apply(objs, order=order, gap=gap, xds_order=xds_order)
        return objs

    def delete(self, x: Any) -> list[K8sObject]:
        """Delete objects (missing ones are ignored, like ``kubectl delete --ignore-not-found``)."""
        self._check_open()
        objs = self._load(x)
        with plainly("deleting objects"):
            self.backend.delete(objs)
        return objs

    def objects(self) -> list[K8sObject]:
        self._check_open()
        with plainly("listing objects"):
            return self.backend.objects()

    @contextlib.contextmanager
    def restoring(self) -> Iterator[Lab]:
        """Put the lab's objects back as they were when the block ends, whatever it applied or
        deleted::

            with lab.restoring():
                lab.apply(my_virtualservice)          # try something...
                df = lab.probe("http://reviews:9080/")
            # ...the lab holds exactly the objects it held before the block

        Objects changed or deleted inside the block are applied again in their earlier form;
        objects created inside it are deleted. Pod knobs (`set_pod`) are not objects and stay.
        This is how a widget or an exercise measures its own variant of the lab without changing
        what the chapter's later cells see. Yields the lab."""
        self._check_open()
        before = {o.key: o for o in self.backend.objects()}
        try:
            yield self
        finally:
            if not self._closed:
                self._put_back(before)

    def _put_back(self, before: dict[tuple[str, str, str], K8sObject]) -> None:
        now = {o.key: o for o in self.backend.objects()}

        def spec(o: K8sObject | None) -> Any:   # status is the controllers' to write, never put back
            return None if o is None else o.model_copy(update={"status": None})
        changed = [obj for key, obj in before.items() if spec(now.get(key)) != spec(obj)]
        added = [obj for key, obj in now.items() if key not in before]
        if changed:
            self.backend.apply(changed)
        if added:
            self.backend.delete(added)

    # ---- pods ----------------------------------------------------------------------------------
    def pods(self) -> pd.DataFrame:
        self._check_open()
        with plainly("listing pods"):
            return self.backend.pods()

    def set_pod(self, name: str, *, namespace: str = "default", latency_ms: float | None = None,
                error_rate: float | None = None, ready: bool | None = None, error_code: int | None = None,
                latency_jitter_ms: float | None = None, keepalive_timeout_ms: float | None = None,
                connection_close: bool | None = None, network_delay_ms: float | None = None) -> None:
        """Turn the knobs of a pod's app (`name`: the pod, or a Deployment's name when it has one
        pod). Only the knobs given change:

        - `latency_ms` (+ `latency_jitter_ms` × a seeded uniform draw): how long each answer takes;
        - `error_rate` (0–1) of answers with status `error_code` (default 503);
        - `ready`: the readiness probe's answer (False takes the pod out of the endpoints);
        - `keepalive_timeout_ms`: the app closes a keep-alive connection idle this long, silently
          (0: never) — the server side of the 503 UC race (chapter 7);
        - `connection_close`: every answer says `connection: close` and the app closes;
        - `network_delay_ms`: each way, the pod's bytes and closes take this long, as over a network
          between nodes (loopback has none).
        """
        self._check_open()
        with plainly(f"setting pod {name!r}'s knobs"):
            self.backend.set_pod(name, namespace=namespace, latency_ms=latency_ms, error_rate=error_rate,
                                 ready=ready, error_code=error_code, latency_jitter_ms=latency_jitter_ms,
                                 keepalive_timeout_ms=keepalive_timeout_ms, connection_close=connection_close,
                                 network_delay_ms=network_delay_ms)

    def app_log(self, probe: pd.DataFrame | None = None, *, namespace: str | None = None) -> pd.DataFrame:
        """What the pods' app received, one row per request — the app's own access log (on a real
        cluster: `kubectl logs` of the pods): pod, namespace, version, t, method, path, request_id,
        status. Envoy keeps a request's `x-request-id` on every retry, so a request the app saw
        three times has three rows with one id.

        `probe`: only the requests of that probe (what `lab.probe` returned)."""
        self._check_open()
        with plainly("reading the app's log"):
            log = self.backend.app_log(namespace=namespace)
        prefix = (getattr(probe, "attrs", {}) or {}).get("request_id_prefix") if probe is not None else None
        if probe is not None and not prefix:
            raise ProbeError("app_log(probe): that table has no request ids (pass what lab.probe returned)")
        if prefix:
            log = log[log["request_id"].astype(str).str.startswith(prefix)].reset_index(drop=True)
        return log

    def kill_pod(self, name: str, *, namespace: str = "default", notready_after: float | None = 1.0) -> None:
        self._check_open()
        with plainly(f"killing pod {name!r}"):
            self.backend.kill_pod(name, namespace=namespace, notready_after=notready_after)

    def restart_pod(self, name: str, *, namespace: str = "default") -> None:
        self._check_open()
        with plainly(f"restarting pod {name!r}"):
            self.backend.restart_pod(name, namespace=namespace)

    # ---- traffic -------------------------------------------------------------------------------
    def probe(self, url: str, *, n: int = 100, concurrency: int = 1, keepalive: bool = True,
              headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
              seed: int | None = None, rate: float | None = None, duration: float | None = None,
              timeout: float = 30.0, method: str = "GET") -> pd.DataFrame:
        """Send `n` requests as a client pod in `namespace` would; one row per request.

        `method`: GET (default), POST, PUT, PATCH or DELETE (no body). `timeout`: seconds the
        client waits for each answer before it gives up (status 0, error `timeout`).

        The rows are a `charts.ProbeTable`: a DataFrame that shows the columns a learner reads
        first (status, flags, pod, version…) at the left.

        Bounded (`meshlab.probe.client`): n <= 100,000, concurrency <= 10,000 (and, locally, what
        the open-files limit allows), at most an hour of traffic; beyond that a `ProbeError` says
        which bound and why, before anything is sent."""
        from .charts import ProbeTable
        self._check_open()
        with plainly("probing"):
            df = self.backend.probe(url, n=n, concurrency=concurrency, keepalive=keepalive, headers=headers,
                                    via=via, namespace=namespace, seed=seed, rate=rate, duration=duration,
                                    timeout=timeout, method=method)
        rows = ProbeTable(df)
        rows.attrs.update(df.attrs)
        # what explain() reads for what no Envoy row says: the name asked for, the path and headers sent
        rows.attrs.update(url=url, via=via, namespace=namespace, headers=dict(headers or {}), method=method,
                          timeout=timeout)
        return rows

    def probing(self, url: str, *, n: int | None = None, rate: float | None = 100.0, duration: float | None = None,
                concurrency: int = 1, keepalive: bool = True, headers: dict[str, str] | None = None,
                via: Via = "sidecar", namespace: str = "default", seed: int | None = None,
                timeout: float = 30.0, method: str = "GET") -> RunningProbe:
        """Traffic in the background while you change things::

            with lab.probing("http://reviews:9080/", rate=200) as p:
                lab.apply(vs, order=["VirtualService", "DestinationRule"])
            df = p.result()
        """
        self._check_open()
        with plainly("starting a probe"):
            return self.backend.probing(url, n=n, rate=rate, duration=duration, concurrency=concurrency,
                                        keepalive=keepalive, headers=headers, via=via, namespace=namespace,
                                        seed=seed, timeout=timeout, method=method)

    def watch(self, url: str, *, n: int | None = None, rate: float | None = 100.0, duration: float | None = None,
              concurrency: int = 1, every: float = 0.05, via: Via = "sidecar", namespace: str = "default",
              seed: int | None = None, timeout: float = 30.0, method: str = "GET") -> pd.DataFrame:
        """Send traffic as `probe` does and watch the proxy's own view of it: while the requests
        flow, Envoy's `/clusters` is read every `every` seconds (each outbound endpoint's health
        and outlier-detection state, what `istioctl proxy-config endpoints` shows as STATUS and
        OUTLIER CHECK), and its cluster counters are read before and after.

        Returns the probe's rows (`probe`'s table) with, in `.attrs`:
        `endpoints` — samples, one dict per endpoint per reading: t (seconds since the probe
        started), cluster, endpoint (`ip:port`), pod, status, outlier_check (`OK`/`FAILED`);
        `envoy_stats` — each `cluster.outbound|…` counter's increase over the probe
        (`upstream_rq_pending_total`, `upstream_rq_pending_overflow`, `outlier_detection.ejections_enforced_total`…).
        `charts.ejections` and `charts.overflow` draw them."""
        import time

        from .charts import ProbeTable
        self._check_open()
        if not (isinstance(every, (int, float)) and not isinstance(every, bool) and 0.005 <= every <= 10):
            raise ProbeError(f"every must be a number of seconds between 0.005 and 10, not {every!r}")
        proxy: ProxyName = "gateway" if via == "gateway" else "sidecar"
        with plainly("probing"):
            envoy = self.backend.envoy(proxy, namespace=namespace)
            before = envoy.stats(r"^cluster\.outbound\|")
            pods = self.backend.pods()
            ips = {str(ip): str(name) for ip, name in zip(pods["ip"], pods["name"])}
            samples: list[dict[str, Any]] = []
            run = self.backend.probing(url, n=n, rate=rate, duration=duration, concurrency=concurrency,
                                       keepalive=True, headers=None, via=via, namespace=namespace, seed=seed,
                                       timeout=timeout, method=method)
            start = time.perf_counter()
            while True:
                done = run.done()
                t = round(time.perf_counter() - start, 4)
                for cs in envoy.clusters().get("cluster_statuses", []):
                    if not str(cs.get("name", "")).startswith("outbound|"):
                        continue
                    for hs in cs.get("host_statuses", []):
                        sa = hs.get("address", {}).get("socket_address", {})
                        health = hs.get("health_status", {})
                        samples.append({"t": t, "cluster": cs["name"], "endpoint": f"{sa.get('address')}:{sa.get('port_value')}",
                                        "pod": ips.get(str(sa.get("address")), ""),
                                        "status": health.get("eds_health_status", "HEALTHY"),
                                        "outlier_check": "FAILED" if health.get("failed_outlier_check") else "OK"})
                if done:
                    break
                time.sleep(every)
            df = run.result()
            after = envoy.stats(r"^cluster\.outbound\|")
        rows = ProbeTable(df)
        rows.attrs.update(df.attrs)
        rows.attrs.update(url=url, via=via, namespace=namespace, headers={}, method=method, timeout=timeout,
                          endpoints=samples,
                          envoy_stats={k: v - before.get(k, 0) for k, v in after.items()
                                       if isinstance(v, int) and isinstance(before.get(k, 0), int)})
        return rows

    # ---- views ---------------------------------------------------------------------------------
    def envoy_config(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> dict[str, Any]:
        """The live proxy config, like ``istioctl proxy-config all -o json`` (the client sidecar of
        `namespace`, or the ingress gateway)."""
        self._check_open()
        with plainly("reading Envoy's config"):
            return self.backend.envoy_config(proxy, namespace=namespace)

    def explain(self, probe_df: pd.DataFrame) -> Explanation:
        """Name the misconfiguration behind what a probe saw: `meshlab.explain(df, lab)`
        reads this lab's objects, pods and live Envoy config."""
        from .explanation import explain
        with plainly("explaining a probe"):
            return explain(probe_df, self)

    # ---- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the lab's Envoy proxies and pods (the kernel's end does it too). Idempotent."""
        self._closed = True
        with plainly("closing the lab"):
            self.backend.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Re-running `lab = Lab()` in a notebook drops the old lab: free its processes and
        # addresses now rather than at kernel exit (Binder has 1-2 GB).
        try:
            backend = self.__dict__.get("backend")
            if backend is not None:
                backend.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"Lab({self.backend!r})"
