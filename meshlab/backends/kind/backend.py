"""The lab on a real cluster: real Kubernetes, real istiod, real sidecars.

`KindBackend()` drives the course cluster `meshlab up` made (context `kind-meshlab`);
`KindBackend(backend="cluster", context=..., namespace=...)` runs one attendee's lab in one
namespace of an existing cluster with Istio (workshops). Same interface and same DataFrame as the
local backend (backends/base.py), so notebooks never branch.

How the pieces map:
- apply/delete: the typed objects, server-side applied with field manager `meshlab`; every
  object meshlab creates is labelled `app.kubernetes.io/managed-by=meshlab` and nothing without
  that label is ever deleted. Deployments/Pods run the meshlab demo image (the same app.py as
  local) listening on the containerPorts the manifest declares.
- probe: a client pod (`meshlab-client`, label `app: sleep`) in the mesh runs meshlab's in-pod
  prober; rows stream back over exec; Envoy columns come from that pod's `istio-proxy` access
  log (or the ingress gateway's) joined by request id.
- pod knobs: the app's control port, reached over exec inside the pod (works under STRICT mTLS).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ...errors import ApplyError, ContextError, KubeError, LabError, ManifestError, MeshlabError, ProbeError
from ...names import ISTIO_NAMESPACE, selector_string, zone_of
from ...objects import ObjectKey, api_group
from ...state import NodeInfo, locality_of
from ...probe import check_args
from ...probe.rows import parse_access_log
from ..base import APP_LOG_COLUMNS, POD_COLUMNS, BackendBase, ProxyName, Via, apply_steps, check_gap, run_steps
from .admin import ProxyAdmin
from .config import COURSE_NAMESPACES, MANAGED_BY, NODE_LABEL
from .image import image_tag
from .kube import (Kube, api_client_for, deployment_ready, is_managed, owned_by_meshlab, pod_ready, resolve_context,
                   wait_until)
from .probe import KindProbeRun, probe_command
from .refusal import refusal
from .workloads import (CLIENT_NAME, CLIENT_NO_SIDECAR, CONTROL_PORT, GATEWAY_SELECTOR,
                        ROLE_LABEL, clean_for_objects, client_pod, translate)

if TYPE_CHECKING:
    import pandas as pd

    from ...objects import K8sObject

def _one(errors: list[MeshlabError]) -> MeshlabError:
    """Several refusals as one error: the field problems together (a ManifestError, as load gives
    them), or else the first refusal that is not about a field (RBAC, a missing namespace …)."""
    if all(isinstance(e, ManifestError) for e in errors):
        return ManifestError([p for e in errors for p in e.problems])  # type: ignore[attr-defined]
    return next(e for e in errors if not isinstance(e, ManifestError))


_KIND_API = {"Namespace": "v1", "Service": "v1", "Pod": "v1", "Deployment": "apps/v1",
             "VirtualService": "networking.istio.io/v1", "DestinationRule": "networking.istio.io/v1",
             "Gateway": "networking.istio.io/v1", "ServiceEntry": "networking.istio.io/v1"}
#: The Gateway API kinds a lab reads back (chapter 9); their Gateway is not Istio's.
_GATEWAY_API_KINDS = [("gateway.networking.k8s.io/v1", k) for k in ("Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant")]

# ----------------------------------------------------------------------------------- backend

def _manifest_key(m: dict[str, Any]) -> ObjectKey:
    """A manifest's `K8sObject.key`: an Istio Gateway and a Gateway API Gateway of one name are two."""
    return ObjectKey(api_group(m["apiVersion"]), m["kind"], m["metadata"].get("namespace") or "", m["metadata"]["name"])


def _app_container_name(pod: dict[str, Any]) -> str:
    """The demo app's container: not the injected `istio-proxy` (which comes first in the list when
    holdApplicationUntilProxyStarts is on, and is an init container with native sidecars)."""
    names = [c["name"] for c in pod["spec"]["containers"]]
    return next((n for n in names if n != "istio-proxy"), names[0])


class KindBackend(BackendBase):
    """A lab on a real cluster. See the module docstring; errors name the object and the reason."""

    def __init__(self, *, backend: str = "kind", context: str | None = None, namespace: str | None = None,
                 image: str | None = None, kubeconfig: str | None = None, kube: Kube | None = None,
                 timeout: float = 300.0, settle_s: float = 2.0, poll_s: float = 1.0, log_timeout: float = 30.0,
                 progress: Callable[[str], None] | None = None) -> None:
        self.name = backend
        self.warnings: list[str] = []     # nothing to own up to: real istiod translates
        self.context = resolve_context(backend, context)
        if backend == "cluster" and not namespace:
            raise ContextError("Lab(backend='cluster') needs namespace=… (one namespace per attendee)")
        self.lab_namespace = namespace
        self.image = image or image_tag()
        # settle_s: istiod debounce + push time allowed after a change; poll_s: API polling period;
        # log_timeout: how long to wait for Envoy to flush access-log lines.
        self.timeout, self.settle_s, self.poll_s, self.log_timeout = timeout, settle_s, poll_s, log_timeout
        # Rollouts on a real cluster take tens of seconds: say what is being waited for (a notebook
        # cell shows these lines as they come).
        self._progress = progress or (lambda line: print(f"  … {line}", flush=True))
        self.kube = kube or Kube(api_client_for(self.context, kubeconfig, backend=backend), self.context)
        if backend == "kind":
            self._check_cluster_is_meshlabs()
        self._applied: dict[ObjectKey, str] = {}   # key → apiVersion, for close()
        self._clients: set[tuple[str, str]] = set()
        self._closed = False

    def _check_cluster_is_meshlabs(self) -> None:
        """The kind backend creates and deletes namespaces, Deployments and Services at will: only
        on a cluster `meshlab up` created (its nodes carry `NODE_LABEL`), as `meshlab up` and
        `meshlab down` check — a context merely named `kind-meshlab`, or another named with
        context=, may be anyone's cluster. A cluster you manage yourself: backend='cluster'."""
        try:
            ours = owned_by_meshlab(self.kube)
        except KubeError as e:
            raise ContextError(f"cannot confirm that context {self.context!r} is a cluster meshlab created "
                               f"({e}); nothing was changed") from None
        if not ours:
            raise ContextError(f"context {self.context!r} is not a cluster meshlab created (its nodes lack the "
                               f"{NODE_LABEL[0]}={NODE_LABEL[1]} label `meshlab up` sets), so Lab(backend='kind') "
                               f"will not change it. For the course cluster run `meshlab up`; for a cluster you "
                               f"manage, Lab(backend='cluster', context=..., namespace=...)")

    # ------------------------------------------------------------------ namespaces
    def _ns(self, ns: str | None) -> str:
        """Where an object's namespace lives on this cluster (attendee namespace on a shared one)."""
        ns = ns or "default"
        if self.name != "cluster":
            return ns
        if ns in ("default", self.lab_namespace):
            return self.lab_namespace  # type: ignore[return-value]
        raise ApplyError(f"on a shared cluster this lab lives in namespace {self.lab_namespace!r}; "
                         f"objects for namespace {ns!r} cannot be applied (use the default namespace)")

    def _namespaces(self) -> list[str]:
        if self.name == "cluster":
            return [self.lab_namespace]  # type: ignore[list-item]
        found = {n["metadata"]["name"] for n in self.kube.list("v1", "Namespace", None, selector_string([MANAGED_BY]))}
        return sorted(set(COURSE_NAMESPACES) | found)

    # ------------------------------------------------------------------ apply / delete
    def _manifests(self, objects: list[K8sObject]) -> list[tuple[K8sObject, dict[str, Any]]]:
        """Each object with what meshlab applies for it (workloads.translate); a shared-cluster lab
        leaves out the Namespace it lives in (the organiser made it)."""
        out = []
        for o in objects:
            m = o.to_manifest() if hasattr(o, "to_manifest") else dict(o)  # type: ignore[arg-type]
            if m.get("kind") == "Namespace" and self.name == "cluster":
                if m["metadata"]["name"] not in ("default", self.lab_namespace):
                    raise ApplyError(f"Namespace {m['metadata']['name']}: a shared-cluster lab cannot create namespaces")
                continue
            out.append((o, translate(m, self.image, self._ns)))
        return out

    def _check_namespaces(self, manifests: list[dict[str, Any]]) -> None:
        """As the API server (and the local backend) would: a missing namespace fails the whole apply.
        A shared-cluster lab puts everything in its one namespace, whose absence the dry run reports
        (and an attendee may not read Namespaces: they are cluster-scoped), so it skips this."""
        if self.name == "cluster":
            return
        creating = {m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"}
        for ns in sorted({m["metadata"].get("namespace") for m in manifests if m.get("metadata", {}).get("namespace")}):
            try:
                exists = ns in creating or self.kube.get("v1", "Namespace", None, ns) is not None
            except KubeError as e:
                if e.status != 403:
                    raise ApplyError(str(e)) from None
                continue   # an attendee may not read Namespaces (RBAC); the apply itself will say
            if not exists:
                culprit = next(m for m in manifests if m["metadata"].get("namespace") == ns)
                raise ApplyError(f'{culprit["kind"]} {ns}/{culprit["metadata"]["name"]}: namespaces "{ns}" not found; '
                                 f"create the Namespace first (kubectl create namespace {ns})")

    def apply(self, objects: list[K8sObject], *, order: Sequence[str] | str | None = None,
              gap: float | None = None, xds_order: Sequence[str] | str = "istiod") -> None:
        """Server-side apply (dry run of everything first); waits for rollouts. `order` applies in
        steps (`backends.base.apply_steps`), `gap` seconds apart (default settle_s), so istiod
        pushes each separately; each step's workloads roll out before the next step.
        `xds_order` is accepted for parity with local and ignored: real istiod orders its pushes."""
        steps = apply_steps(list(objects), order)
        gap = check_gap(self.settle_s if gap is None else gap)
        pairs = self._manifests(objects)
        if not pairs:
            return
        manifests = [m for _, m in pairs]
        self._check_namespaces(manifests)
        creating = {m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"}
        # Dry run everything first: a refusal anywhere means nothing is changed. Every refusal is
        # collected, so the learner sees all of them at once, as meshlab.load reports every problem.
        refusals: list[MeshlabError] = []
        for o, m in pairs:
            try:
                self.kube.apply(m, dry_run=True)
            except KubeError as e:
                if e.status == 404 and m["metadata"].get("namespace") in creating:
                    continue   # its namespace is created in this same apply; the real apply will tell
                refusals.append(refusal(e, o, m))
        if refusals:
            raise _one(refusals)
        run_steps(steps, gap, self._apply_step)
        if any(m["kind"] not in ("Namespace",) for m in manifests):
            time.sleep(self.settle_s)   # istiod debounces (100 ms) then pushes; let sidecars take it

    def _apply_step(self, objects: list[K8sObject]) -> None:
        pairs = self._manifests(objects)
        for o, m in pairs:
            md = m["metadata"]
            live = self.kube.get(m["apiVersion"], m["kind"], md.get("namespace"), md["name"])
            foreign = live is not None and not is_managed(live)
            if foreign:
                # It existed before meshlab and stays someone else's: updated, never labelled as
                # meshlab's, so neither delete() nor close() will ever remove it.
                m = json.loads(json.dumps(m))
                m["metadata"]["labels"].pop(MANAGED_BY[0], None)
            try:
                self.kube.apply(m)
            except KubeError as e:
                err = refusal(e, o, m)   # after a clean dry run: the cluster changed in between
                raise (err if isinstance(err, ApplyError) else ApplyError(str(err))) from None
            if not foreign:
                self._applied[_manifest_key(m)] = m["apiVersion"]
        self._wait_workloads([m for _, m in pairs])

    def _image_problem(self, pod: dict[str, Any]) -> None:
        """A pod that cannot get the demo image will never be ready: say so now, with the fix."""
        ok, why = pod_ready(pod)
        if not ok and any(r in why for r in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")):
            fix = ("run `meshlab up` (it builds the demo image from this meshlab and loads it into the cluster)"
                   if self.name == "kind" else
                   "push the demo image to a registry the cluster can pull from and pass Lab(..., image='registry/…')")
            md = pod["metadata"]
            raise ApplyError(f"Pod {md.get('namespace')}/{md.get('name')}: {why}; the image {self.image} is not "
                             f"available in the cluster: {fix}")

    def _rollout(self, ns: str, name: str) -> tuple[bool, str]:
        d = self.kube.get("apps/v1", "Deployment", ns, name) or {}
        done, why = deployment_ready(d)
        if not done:
            selector = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            if selector:
                for p in self.kube.list("v1", "Pod", ns, selector_string(selector)):
                    self._image_problem(p)
        return done, why

    def _pod_up(self, ns: str, name: str) -> tuple[bool, str]:
        p = self.kube.get("v1", "Pod", ns, name) or {}
        if p:
            self._image_problem(p)
        return pod_ready(p)

    def _wait_workloads(self, manifests: list[dict[str, Any]]) -> None:
        for m in manifests:
            md = m["metadata"]
            if m["kind"] == "Deployment":
                what = f"Deployment {md['namespace']}/{md['name']}"
                wait_until(lambda: self._rollout(md["namespace"], md["name"]),
                           timeout=self.timeout, what=what, on_wait=self._progress, interval=self.poll_s)
            elif m["kind"] == "Pod":
                what = f"Pod {md['namespace']}/{md['name']}"
                wait_until(lambda: self._pod_up(md["namespace"], md["name"]),
                           timeout=self.timeout, what=what, on_wait=self._progress, interval=self.poll_s)

    def delete(self, objects: list[K8sObject]) -> None:
        targets = []
        for _, m in self._manifests(objects):
            md = m["metadata"]
            live = self.kube.get(m["apiVersion"], m["kind"], md.get("namespace"), md["name"])
            if live is None:
                continue
            if not is_managed(live):
                raise ApplyError(f"{m['kind']} {md.get('namespace') + '/' if md.get('namespace') else ''}{md['name']} "
                                 "was not created by meshlab; meshlab leaves it alone (delete it yourself if you mean to)")
            targets.append(m)
        for m in targets:
            md = m["metadata"]
            self.kube.delete(m["apiVersion"], m["kind"], md.get("namespace"), md["name"])
            self._applied.pop(_manifest_key(m), None)
        if targets:
            time.sleep(self.settle_s)

    # ------------------------------------------------------------------ reading back
    def objects(self) -> list[K8sObject]:
        """Everything of the modelled kinds in the lab's namespaces, as the cluster has it now."""
        from ...manifests import load

        raw: list[dict[str, Any]] = []
        kinds = [(_KIND_API[k], k) for k in ("Service", "Deployment", "Pod", "VirtualService", "DestinationRule",
                                             "Gateway", "ServiceEntry")] + _GATEWAY_API_KINDS
        for ns in self._namespaces():
            for api, kind in kinds:
                try:
                    listed = self.kube.list(api, kind, ns)
                except KubeError as e:
                    if e.status == 404 and api.startswith("gateway.networking.k8s.io"):
                        continue   # a cluster without the Gateway API's CRDs holds none
                    raise
                for o in listed:
                    md = o.get("metadata") or {}
                    if (md.get("labels") or {}).get(ROLE_LABEL) == "client" or md.get("ownerReferences"):
                        continue   # meshlab's own client, and pods a Deployment made
                    if kind == "Service" and md.get("name") == "kubernetes":
                        continue
                    raw.append(clean_for_objects(o))
        return load(raw)

    def _pod_objects(self, namespace: str | None = None) -> list[dict[str, Any]]:
        nss = [self._ns(namespace)] if namespace else self._namespaces()
        pods = []
        for ns in nss:
            for p in self.kube.list("v1", "Pod", ns, selector_string([MANAGED_BY])):
                if (p["metadata"].get("labels") or {}).get(ROLE_LABEL) != "client":
                    pods.append(p)
        return pods

    def pods(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        # Nodes (their topology labels give a pod's zone) are cluster-scoped: a lab on a shared cluster
        # asks for nothing cluster-scoped (workshop-rbac grants nothing of the kind), so there a pod's
        # zone comes from its own locality label, or stays empty
        nodes = {} if self.name == "cluster" else {
            n["metadata"]["name"]: NodeInfo(n["metadata"]["name"], n["metadata"].get("labels") or {})
            for n in self.kube.list("v1", "Node", None, None)}
        for p in self._pod_objects():
            md, st = p["metadata"], p.get("status") or {}
            all_labels = md.get("labels") or {}
            labels = {k: v for k, v in all_labels.items() if k not in (MANAGED_BY[0], "pod-template-hash",
                      "security.istio.io/tlsMode", "service.istio.io/canonical-name", "service.istio.io/canonical-revision")}
            node = (p.get("spec") or {}).get("nodeName") or ""
            rows.append({"name": md["name"], "namespace": md["namespace"], "ip": st.get("podIP", ""),
                         "labels": labels, "version": labels.get("version", ""), "ready": pod_ready(p)[0],
                         "phase": st.get("phase", "Pending"), "node": node,
                         "zone": zone_of(locality_of(all_labels, nodes.get(node)))})
        return pd.DataFrame(rows, columns=list(POD_COLUMNS))

    # ------------------------------------------------------------------ pod knobs
    def _app_pod(self, name: str, namespace: str) -> dict[str, Any]:
        ns = self._ns(namespace)
        p = self.kube.get("v1", "Pod", ns, name)
        if p is None or not is_managed(p):
            known = ", ".join(x["metadata"]["name"] for x in self._pod_objects(namespace)) or "none"
            raise LabError(f"no meshlab pod {ns}/{name}; pods: {known}")
        return p

    def _control(self, pod: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the app's control port from inside its own pod (loopback, so no sidecar or mTLS involved)."""
        md = pod["metadata"]
        container = _app_container_name(pod)
        script = ("import json,sys,urllib.request as u;"
                  f"r=u.Request('http://127.0.0.1:{CONTROL_PORT}{path}',method={method!r},"
                  "data=(sys.argv[1].encode() if len(sys.argv)>1 else None),"
                  "headers={'content-type':'application/json'});"
                  "print(u.urlopen(r,timeout=10).read().decode())")
        cmd = ["python", "-c", script] + ([json.dumps(body)] if body is not None else [])
        out, err = self.kube.exec(md["namespace"], md["name"], container, cmd, timeout=30)
        try:
            return json.loads(out)
        except ValueError:
            raise LabError(f"pod {md['namespace']}/{md['name']}: control port answered "
                               f"{(out or err).strip()[:300]!r}") from None

    def set_pod(self, name: str, *, namespace: str = "default", latency_ms: float | None = None,
                error_rate: float | None = None, ready: bool | None = None, error_code: int | None = None,
                latency_jitter_ms: float | None = None, keepalive_timeout_ms: float | None = None,
                connection_close: bool | None = None, network_delay_ms: float | None = None) -> None:
        """Turn the app's knobs in the pod; `ready` goes through the kubelet's readiness probe, so
        this waits until the pod's Ready condition (and then the endpoints) follow."""
        knobs = {k: v for k, v in (("latency_ms", latency_ms), ("error_rate", error_rate), ("ready", ready),
                                   ("error_code", error_code), ("latency_jitter_ms", latency_jitter_ms),
                                   ("keepalive_timeout_ms", keepalive_timeout_ms),
                                   ("connection_close", connection_close),
                                   ("network_delay_ms", network_delay_ms)) if v is not None}
        if not knobs:
            return
        pod = self._app_pod(name, namespace)
        self._control(pod, "POST", "/knobs", knobs)
        if ready is not None:   # the kubelet's readiness probe carries it to the endpoints
            md = pod["metadata"]
            wait_until(lambda: ((pod_ready(self.kube.get("v1", "Pod", md["namespace"], name) or {})[0] == ready), "readiness probe"),
                       timeout=60, what=f"pod {md['namespace']}/{name} ready={ready}", interval=self.poll_s)
            time.sleep(self.settle_s)   # endpoints → istiod → EDS push

    def app_log(self, *, namespace: str | None = None) -> pd.DataFrame:
        """What the pods' app received (each pod's `/requests` over exec), one row per request."""
        import pandas as pd
        out = []
        for pod in self._pod_objects(namespace):
            md = pod["metadata"]
            if (pod.get("status") or {}).get("phase") != "Running":
                continue
            try:
                data = self._control(pod, "GET", "/requests")
            except Exception:      # a pod without the app (a client) or not running: nothing logged
                continue
            version = (md.get("labels") or {}).get("version", "")
            for r in data.get("requests", []):
                out.append({"pod": md["name"], "namespace": md["namespace"], "version": version, **r})
        return pd.DataFrame(out, columns=list(APP_LOG_COLUMNS))

    def kill_pod(self, name: str, *, namespace: str = "default", notready_after: float | None = 1.0) -> None:
        """SIGTERM to the app (PID 1): the container exits; the kubelet restarts it by itself after its
        back-off, as on any real cluster (the local backend keeps a killed pod down until restarted).
        `notready_after` is accepted for parity with local: here the kubelet decides."""
        pod = self._app_pod(name, namespace)
        md = pod["metadata"]
        self.kube.exec(md["namespace"], name, _app_container_name(pod),
                       ["python", "-c", "import os,signal; os.kill(1, signal.SIGTERM)"], timeout=30)

    def restart_pod(self, name: str, *, namespace: str = "default") -> None:
        """Wait until the kubelet has the pod's container running and ready again."""
        pod = self._app_pod(name, namespace)
        md = pod["metadata"]
        wait_until(lambda: pod_ready(self.kube.get("v1", "Pod", md["namespace"], name) or {}),
                   timeout=120, what=f"pod {md['namespace']}/{name}", on_wait=self._progress, interval=self.poll_s)

    # ------------------------------------------------------------------ probe
    def _ensure_client(self, namespace: str, sidecar: bool) -> str:
        name = CLIENT_NAME if sidecar else CLIENT_NO_SIDECAR
        ns = self._ns(namespace)
        if (ns, name) not in self._clients:
            live = self.kube.get("v1", "Pod", ns, name)
            if live is None:
                try:
                    self.kube.apply(client_pod(name, ns, self.image, sidecar))
                except KubeError as e:
                    raise ApplyError(str(e)) from None
            elif not is_managed(live):
                raise ApplyError(f"Pod {ns}/{name} exists and was not created by meshlab; "
                                 "meshlab will not use it as its client")
            wait_until(lambda: self._pod_up(ns, name), timeout=self.timeout,
                       what=f"probe client {ns}/{name}", on_wait=self._progress, interval=self.poll_s)
            self._clients.add((ns, name))
        return name

    def _gateway_pods(self) -> list[str]:
        pods = self.kube.list("v1", "Pod", ISTIO_NAMESPACE, GATEWAY_SELECTOR)
        return [p["metadata"]["name"] for p in pods if pod_ready(p)[0]]

    def _deployment_pods(self, via: str) -> tuple[str, list[str]]:
        """(namespace, ready pods) of a Gateway API gateway deployment (`[namespace/]<gateway>-istio`):
        Istio labels them gateway.networking.k8s.io/gateway-name=<gateway>."""
        ns, _, name = via.rpartition("/")
        ns = self._ns(ns or "default")
        gateway = name.rsplit("-", 1)[0]
        pods = self.kube.list("v1", "Pod", ns, f"gateway.networking.k8s.io/gateway-name={gateway}")
        return ns, [p["metadata"]["name"] for p in pods if pod_ready(p)[0]]

    def _read_logs(self, via: Via, ns: str, client: str, since: int) -> dict[str, dict[str, Any]]:
        if via not in ("gateway", "sidecar", "none"):
            gw_ns, pods = self._deployment_pods(via)
            found: dict[str, dict[str, Any]] = {}
            for pod in pods:
                found.update(parse_access_log(self.kube.logs(gw_ns, pod, "istio-proxy", since)))
            return found
        if via == "gateway":
            entries: dict[str, dict[str, Any]] = {}
            for gw in self._gateway_pods():
                entries.update(parse_access_log(self.kube.logs(ISTIO_NAMESPACE, gw, "istio-proxy", since)))
            return entries
        return parse_access_log(self.kube.logs(ns, client, "istio-proxy", since))

    def probing(self, url: str, *, n: int | None = None, rate: float | None = 100.0,
                duration: float | None = None, concurrency: int = 1, keepalive: bool = True,
                headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
                seed: int | None = None, timeout: float = 30.0, method: str = "GET") -> KindProbeRun:
        """Traffic from the client pod in the background (a timeline), as on local: `.result()` →
        DataFrame, `.snapshot()` → rows so far, `.stop()`; with neither `n` nor `duration` it runs
        until stopped (use `with`)."""
        if not isinstance(via, str) or not via:
            raise ProbeError(f"via must be 'sidecar', 'none', 'gateway' or a gateway deployment's name, not {via!r}")
        check_args(n=n, concurrency=concurrency, keepalive=keepalive, headers=headers, rate=rate,
                   duration=duration, timeout=timeout, seed=seed, method=method)   # before a client pod is started
        ns = self._ns(namespace)
        # via=gateway sends from the client without a sidecar, as `curl -H Host:` from outside the
        # mesh would, so no client-side route can get in between.
        client = self._ensure_client(namespace, sidecar=(via == "sidecar"))
        open_ended = n is None and duration is None and rate is not None
        cmd = probe_command(url, n=n, concurrency=concurrency, keepalive=keepalive, headers=headers, via=via,
                            seed=seed, rate=rate, duration=duration, timeout=timeout, stdin_stop=open_ended,
                            method=method)
        return KindProbeRun(self.kube, self._read_logs, ns, client, cmd, via, open_ended=open_ended, expected=n,
                            log_timeout=self.log_timeout, poll_s=self.poll_s,
                            on_failure=lambda: self._clients.discard((ns, client)))

    # ------------------------------------------------------------------ envoy config
    def envoy(self, proxy: ProxyName = "sidecar", *, namespace: str = "default") -> ProxyAdmin:
        """The real proxy's admin API (the client pod's sidecar in `namespace`, or the ingress
        gateway), as the local backend's `envoy()`: `.config_dump()`, `.clusters()`, `.stats()`."""
        if proxy == "gateway":
            pods = self._gateway_pods()
            if not pods:
                raise LabError("no ready ingress gateway pod (istio=ingressgateway) in istio-system")
            return ProxyAdmin(self.kube, ISTIO_NAMESPACE, pods[0])
        if proxy != "sidecar":
            gw_ns, found = self._deployment_pods(str(proxy))
            if not found:
                raise LabError(f"no ready pod of gateway deployment {proxy!r} in namespace {gw_ns}")
            return ProxyAdmin(self.kube, gw_ns, found[0])
        return ProxyAdmin(self.kube, self._ns(namespace), self._ensure_client(namespace, sidecar=True))

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Delete what this lab applied and its probe clients — only objects meshlab labelled."""
        if self._closed:
            return
        self._closed = True
        for (_, kind, ns, name), api in reversed(list(self._applied.items())):
            if kind == "Namespace":
                continue
            try:
                live = self.kube.get(api, kind, ns or None, name)
                if live is not None and is_managed(live):
                    self.kube.delete(api, kind, ns or None, name)
            except KubeError:
                pass
        for ns, name in self._clients:
            try:
                live = self.kube.get("v1", "Pod", ns, name)
                if live is not None and is_managed(live):
                    self.kube.delete("v1", "Pod", ns, name)
            except KubeError:
                pass
        self._applied.clear()
        self._clients.clear()


class ClusterBackend(KindBackend):
    """Bring your own cluster: one namespace per attendee on an existing cluster with Istio."""

    def __init__(self, *, context: str | None = None, namespace: str | None = None, **kw: Any) -> None:
        kw.pop("backend", None)
        super().__init__(backend="cluster", context=context, namespace=namespace, **kw)


__all__ = ["KindBackend", "ClusterBackend"]
