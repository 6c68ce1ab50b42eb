"""Talking to a real Kubernetes API: which context, which REST path, is it ready yet.

Why a thin REST layer over the `kubernetes` client instead of its typed APIs: the lab applies
Istio custom resources and core objects alike, by server-side apply (one PATCH with
`application/apply-patch+yaml` and `fieldManager=meshlab`), which the typed APIs do not cover
uniformly. Readiness checks are pure functions of the objects the API returns, so they are tested
against recorded real objects.

Safety (DESIGN.md promise): the kubeconfig is only *read* (`persist_config=False`, so even a token
refresh is not written back) and the current context is never switched; a client is built for
one named context.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Callable

from ...errors import ContextError, KubeError
from .config import CONTEXT, MANAGED_BY, NODE_LABEL

FIELD_MANAGER = "meshlab"

#: kind → (plural, namespaced). Anything else falls back to kubectl's simple pluralisation.
RESOURCES: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "Service": ("services", True),
    "Pod": ("pods", True),
    "Deployment": ("deployments", True),
    "VirtualService": ("virtualservices", True),
    "DestinationRule": ("destinationrules", True),
    "Gateway": ("gateways", True),
    "ServiceEntry": ("serviceentries", True),
    "Sidecar": ("sidecars", True),
    "ServiceAccount": ("serviceaccounts", True),
    "ConfigMap": ("configmaps", True),
    "HTTPRoute": ("httproutes", True),
    "GRPCRoute": ("grpcroutes", True),
    "ReferenceGrant": ("referencegrants", True),
    "GatewayClass": ("gatewayclasses", False),
}


# --------------------------------------------------------------------------------- the guard

def resolve_context(backend: str, context: str | None) -> str:
    """The one context a lab may mutate. kind → `kind-meshlab` unless the user names another;
    a shared cluster must always be named (no silent use of whatever kubectl points at)."""
    if backend == "kind":
        return context or CONTEXT
    if backend == "cluster":
        if not context:
            raise ContextError("Lab(backend='cluster') needs the context named explicitly, e.g. "
                               "Lab(backend='cluster', context='workshop', namespace='alice'); "
                               "meshlab never uses your current kubectl context implicitly")
        return context
    raise ContextError(f"unknown backend {backend!r} (kind, cluster)")


def kubeconfig_path(kubeconfig: str | None = None) -> str | None:
    """The kubeconfig to read: the one named, else `KUBECONFIG` as it is now (kubectl's rule; the
    kubernetes client reads the variable only once, when it is imported), else the client's default
    (~/.kube/config)."""
    return kubeconfig or os.environ.get("KUBECONFIG") or None
def owned_by_meshlab(kube: "Kube") -> bool:
    """True when the cluster's nodes carry meshlab's label (`NODE_LABEL`, set by kind-config.yaml
    when `meshlab up` creates the cluster): the one sign that a cluster is meshlab's to change,
    whatever its context is called. Raises KubeError when the API server does not answer."""
    from ...names import selector_string
    return bool(kube.list("v1", "Node", None, selector_string([NODE_LABEL])))


def known_contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """(context names, current context) — read only."""
    from kubernetes import config

    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig_path(kubeconfig))
    except (config.ConfigException, FileNotFoundError, OSError):
        return [], None
    return [c["name"] for c in contexts or []], (current or {}).get("name")


def api_client_for(context: str, kubeconfig: str | None = None, *, backend: str = "kind"):
    """A kubernetes ApiClient bound to `context` — never the current context by accident."""
    from kubernetes import config

    names, _ = known_contexts(kubeconfig)
    if context not in names:
        if backend == "kind" and context == CONTEXT:
            raise ContextError(f"no kube context {context!r}: create the course cluster with `meshlab up` "
                               "(needs Docker, kind and istioctl; `meshlab doctor` checks them)")
        raise ContextError(f"no kube context {context!r} in your kubeconfig "
                           f"(known: {', '.join(names) or 'none'})")
    return config.new_client_from_config(config_file=kubeconfig_path(kubeconfig), context=context,
                                         persist_config=False)


def is_managed(obj: dict[str, Any] | None) -> bool:
    """Did meshlab create this object? Only such objects are ever deleted."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1]


# --------------------------------------------------------------------------------- REST paths

def plural(kind: str) -> str:
    if kind in RESOURCES:
        return RESOURCES[kind][0]
    k = kind.lower()
    if k.endswith("s"):
        return k + "es"
    if k.endswith("y"):
        return k[:-1] + "ies"
    return k + "s"


def namespaced(kind: str) -> bool:
    return RESOURCES.get(kind, ("", True))[1]


def resource_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    """`/api/v1/namespaces/default/services/reviews`, `/apis/networking.istio.io/v1/...`."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced(kind):
        if not namespace:
            raise ValueError(f"{kind} {name} needs a namespace")
        base += f"/namespaces/{namespace}"
    base += f"/{plural(kind)}"
    return base + (f"/{name}" if name else "")


class Kube:
    """Raw JSON calls against one cluster (an ApiClient for one context)."""

    def __init__(self, api_client: Any, context: str) -> None:
        self.api_client, self.context = api_client, context

    def _call(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
              body: Any = None, content_type: str | None = None, what: str = "",
              timeout: float = 30.0) -> dict[str, Any] | None:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None and not isinstance(body, (str, bytes)):
            headers.setdefault("Content-Type", "application/json")   # the client encodes it (once)
        req = self.api_client.param_serialize(method=method, resource_path=path, query_params=query or [],
                                              header_params=headers, body=body, auth_settings=["BearerToken"])
        try:
            resp = self.api_client.call_api(*req, _request_timeout=timeout)
            resp.read()
        except Exception as e:   # noqa: BLE001 - connection refused, TLS, DNS: one clear line
            if type(e).__name__ == "ApiException":
                status, data = getattr(e, "status", 0) or 0, getattr(e, "body", "") or ""
                return self._raise(status, data, what or path)
            hint = " (is Docker running? `meshlab status` checks the cluster)" if self.context == CONTEXT else ""
            raise KubeError(0, f"cannot reach the API server of context {self.context!r}{hint}: {e}", what) from None
        if not 200 <= resp.status <= 299:
            return self._raise(resp.status, resp.data, what or path)
        return json.loads(resp.data) if resp.data else None

    @staticmethod
    def _raise(status: int, data: bytes | str, what: str) -> None:
        """KubeError from the API's `Status` body (its message, reason and causes)."""
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        try:
            body = json.loads(text)
            message = body.get("message", text)
            reason, causes = body.get("reason") or "", (body.get("details") or {}).get("causes") or []
        except (ValueError, AttributeError):
            message, reason, causes = text.strip() or f"HTTP {status}", "", []
        raise KubeError(status, message, what, reason=reason, causes=causes)

    def version(self) -> dict[str, Any]:
        """The API server's `/version` (`major`, `minor`, `gitVersion`, …)."""
        return self._call("GET", "/version", what="version") or {}

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", resource_path(api_version, kind, namespace, name), what=f"{kind} {name}")
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        try:
            out = self._call("GET", resource_path(api_version, kind, namespace), query=query, what=f"list {kind}")
        except KubeError as e:
            if e.status == 404:   # CRD not installed (no Istio): nothing of that kind
                return []
            raise
        items = (out or {}).get("items") or []
        for it in items:   # list items carry no apiVersion/kind
            it.setdefault("apiVersion", api_version)
            it.setdefault("kind", kind)
        return items

    def apply(self, manifest: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any] | None:
        """Server-side apply, field manager `meshlab`, taking over fields another manager set
        (force), with strict field validation (unknown and duplicate fields are errors), as
        `kubectl apply --server-side --force-conflicts` does by default."""
        md = manifest["metadata"]
        query = [("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Strict")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self._call("PATCH", resource_path(manifest["apiVersion"], manifest["kind"], md.get("namespace"), md["name"]),
                          query=query, body=json.dumps(manifest), content_type="application/apply-patch+yaml",
                          what=f"{manifest['kind']} {md.get('namespace') + '/' if md.get('namespace') else ''}{md['name']}")

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        try:
            self._call("DELETE", resource_path(api_version, kind, namespace, name),
                       body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
                       what=f"delete {kind} {name}")
        except KubeError as e:
            if e.status != 404:
                raise

    def logs(self, namespace: str, pod: str, container: str, since_seconds: int | None = None) -> str:
        query = [("container", container)]
        if since_seconds:
            query.append(("sinceSeconds", str(int(since_seconds))))
        headers = {"Accept": "text/plain"}
        req = self.api_client.param_serialize(method="GET", resource_path=f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                                              query_params=query, header_params=headers, auth_settings=["BearerToken"])
        try:
            resp = self.api_client.call_api(*req, _request_timeout=30)
            resp.read()
        except Exception as e:   # noqa: BLE001
            raise KubeError(getattr(e, "status", 0) or 0, str(e), f"logs {namespace}/{pod}") from None
        if not 200 <= resp.status <= 299:
            self._raise(resp.status, resp.data, f"logs {namespace}/{pod} -c {container}")
        return resp.data.decode(errors="replace")

    def exec(self, namespace: str, pod: str, container: str, command: list[str],
             on_line: Callable[[str], None] | None = None, timeout: float = 600.0,
             stop: threading.Event | None = None) -> tuple[str, str]:
        """Run `command` in a container (like `kubectl exec`); stdout lines stream to `on_line`.
        With `stop`, stdin is attached and `stop\\n` is written to it once the event is set (the
        in-pod prober then finishes its requests in flight and exits). Returns (stdout, stderr)."""
        from kubernetes import client
        from kubernetes.stream import stream

        core = client.CoreV1Api(self.api_client)
        try:
            ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=command, container=container,
                        stderr=True, stdin=stop is not None, stdout=True, tty=False, _preload_content=False)
        except Exception as e:   # noqa: BLE001 - the client wraps every websocket failure in ApiException
            raise KubeError(getattr(e, "status", 0) or 0, str(getattr(e, "reason", "") or e),
                            f"exec in {namespace}/{pod} -c {container}") from None
        out, err, partial = [], [], ""
        deadline = time.monotonic() + timeout
        told = False
        try:
            while ws.is_open() and time.monotonic() < deadline:
                if stop is not None and stop.is_set() and not told:
                    ws.write_stdin("stop\n")
                    told = True
                ws.update(timeout=0.2)
                if ws.peek_stdout():
                    chunk = ws.read_stdout()
                    out.append(chunk)
                    if on_line is not None:
                        partial += chunk
                        *lines, partial = partial.split("\n")
                        for ln in lines:
                            on_line(ln)
                if ws.peek_stderr():
                    err.append(ws.read_stderr())
            # channel 3 carries the exit status (`kubectl exec` prints it as "command terminated…")
            status = ws.read_channel(3)
            if status:
                try:
                    st = json.loads(status)
                except ValueError:
                    st = {"status": "Failure", "message": status}
                if st.get("status") != "Success":
                    err.append(f"\n{st.get('message', status)}")
        finally:
            ws.close()
        if on_line is not None and partial:
            on_line(partial)
        return "".join(out), "".join(err)


# --------------------------------------------------------------------------------- readiness
# Pure functions over API objects, as `kubectl rollout status` / `kubectl wait` judge them.

def deployment_ready(d: dict[str, Any]) -> tuple[bool, str]:
    """(done, why-not) for a Deployment, like `kubectl rollout status`."""
    spec, st, md = d.get("spec") or {}, d.get("status") or {}, d.get("metadata") or {}
    want = spec.get("replicas", 1)
    if md.get("generation", 0) > st.get("observedGeneration", 0):
        return False, "waiting for the rollout to be observed"
    for c in st.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return False, f"rollout stuck: {c.get('message', 'progress deadline exceeded')}"
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
            # e.g. a serviceAccountName whose ServiceAccount is not applied: no pod can be created
            return False, f"cannot create pods: {c.get('message', c.get('reason', 'replica failure'))}"
    updated, total, available = st.get("updatedReplicas", 0), st.get("replicas", 0), st.get("availableReplicas", 0)
    if updated < want:
        return False, f"{updated} of {want} updated replicas"
    if total > updated:
        return False, f"{total - updated} old replicas pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, ""


def pod_ready(p: dict[str, Any]) -> tuple[bool, str]:
    """(ready, why-not) for a Pod: phase Running and condition Ready=True; names a waiting
    container's reason (ImagePullBackOff, CrashLoopBackOff…) so a stuck rollout says why."""
    st = p.get("status") or {}
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            return False, f"container {cs.get('name')}: {waiting.get('reason')}" + (
                f" ({waiting['message']})" if waiting.get("message") else "")
    if st.get("phase") != "Running":
        return False, f"phase {st.get('phase', 'Pending')}"
    for c in st.get("conditions") or []:
        if c.get("type") == "Ready":
            return (c.get("status") == "True"), "" if c.get("status") == "True" else "not ready"
    return False, "no Ready condition yet"


def wait_until(check: Callable[[], tuple[bool, str]], *, timeout: float, what: str,
               interval: float = 1.0, on_wait: Callable[[str], None] | None = None,
               sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Poll `check` until it says done; TimeoutError naming `what` and the last reason otherwise.
    Interruptible (KeyboardInterrupt passes through between polls)."""
    deadline = clock() + timeout
    last = ""
    while True:
        done, why = check()
        if done:
            return
        if why != last and on_wait is not None:
            on_wait(f"{what}: {why}")
        last = why
        if clock() >= deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s: {why}")
        sleep(interval)
