"""ClusterState: what the API server and the controllers would hold, derived the way Kubernetes does.

Deployments become Pods (names like `reviews-v1-7f9c8d6b5-x2k4q`), Services select Pods into
endpoints (ready ones only, targetPort resolved per pod), and every change is announced to
subscribers, so a backend (or a notebook chart) can react. Nothing here starts processes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, TypeVar

from .errors import ApplyError
from .names import ISTIO_NAMESPACE, cluster_dns, labels_match
from .objects import (
    Deployment, DestinationRule, Gateway, K8sObject, Namespace, ObjectMeta, Pod, PodSpec, Service,
    ServiceEntry, ServicePort, VirtualService,
)

#: Namespaces every cluster (and the lab) starts with; Istio's default install adds istio-system.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", ISTIO_NAMESPACE)
#: The API server refuses to delete these (NamespaceLifecycle admission).
_UNDELETABLE_NAMESPACES = ("default", "kube-system", "kube-public")

T = TypeVar("T", bound=K8sObject)
Op = Literal["added", "modified", "deleted"]


@dataclass(frozen=True)
class Change:
    """One change event: what happened to which object (pods included, as kind 'Pod')."""

    op: Op
    kind: str
    namespace: str
    name: str


@dataclass
class PodInfo:
    """A running pod as the lab sees it: where it listens and whether it is ready."""

    name: str
    namespace: str
    labels: dict[str, str]
    spec: PodSpec
    owner: str | None = None            # the Deployment's name, for pods it made
    ip: str | None = None
    ready: bool = True
    phase: Literal["Pending", "Running", "Failed"] = "Running"

    @property
    def version(self) -> str:
        return self.labels.get("version", "")

    def container_port(self, name: str) -> int | None:
        """Resolve a named targetPort against this pod's containers, as the endpoints controller does."""
        return self.spec.container_port(name)

    def listen_ports(self) -> list[int]:
        return sorted({p.container_port for c in self.spec.containers for p in c.ports})


@dataclass(frozen=True)
class Endpoint:
    """One address behind a Service port: pod IP and the resolved targetPort."""

    ip: str | None
    port: int
    pod: str
    namespace: str
    labels: dict[str, str] = field(hash=False, compare=False, default_factory=dict)
    ready: bool = True


def _template_hash(dep: Deployment) -> str:
    raw = json.dumps(dep.spec.template.model_dump(mode="json", by_alias=True), sort_keys=True)
    digest = hashlib.sha256(raw.encode()).hexdigest()
    # Kubernetes' pod-template-hash alphabet avoids vowels; keep the look, derive it stably.
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(digest, 16)
    return "".join(alphabet[(n >> (5 * i)) % len(alphabet)] for i in range(10))


def _pod_suffix(dep_name: str, template_hash: str, index: int) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(hashlib.sha256(f"{dep_name}/{template_hash}/{index}".encode()).hexdigest(), 16)
    return "".join(alphabet[(n >> (5 * i)) % len(alphabet)] for i in range(5))


class ClusterState:
    """The objects of one cluster, the pods they imply, and change events.

    `pod_ip` and `cluster_ip` allocate addresses (the local backend gives loopback ones); without
    them pods and Services have no address, which is all `analyze` needs.
    `strict_namespaces`: refuse objects in a namespace that does not exist, as the API server does.
    """

    def __init__(self, *, pod_ip: Callable[[PodInfo], str] | None = None,
                 cluster_ip: Callable[[Service], str] | None = None,
                 strict_namespaces: bool = True):
        self._objects: dict[tuple[str, str, str], K8sObject] = {}
        self._created: dict[tuple[str, str, str], int] = {}
        self._seq = 0
        self._pods: dict[tuple[str, str], PodInfo] = {}
        self._cluster_ips: dict[tuple[str, str], str] = {}
        self._pod_ip = pod_ip
        self._cluster_ip = cluster_ip
        self._strict_namespaces = strict_namespaces
        self._subscribers: list[Callable[[list[Change]], None]] = []
        self._lock = threading.RLock()
        for ns in BUILTIN_NAMESPACES:
            self._store(Namespace(api_version="v1", kind="Namespace", metadata=ObjectMeta(name=ns)))

    # ----------------------------------------------------------------------------- subscribers
    def subscribe(self, fn: Callable[[list[Change]], None]) -> Callable[[], None]:
        """Call `fn(changes)` after every apply/delete/pod change; returns an unsubscribe function."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def _emit(self, changes: list[Change]) -> None:
        if changes:
            for fn in list(self._subscribers):
                fn(changes)

    # ----------------------------------------------------------------------------- apply/delete
    def apply(self, objects: Iterable[K8sObject]) -> list[Change]:
        """Create or update objects, all or nothing, then derive pods and announce the changes."""
        objects = list(objects)
        with self._lock:
            self._check_namespaces(objects)
            changes: list[Change] = []
            for obj in objects:
                op: Op = "modified" if obj.key in self._objects else "added"
                self._store(obj)
                changes.append(Change(op, obj.kind, obj.namespace or "", obj.name))
            changes += self._reconcile_pods()
        self._emit(changes)
        return changes

    def delete(self, objects: Iterable[K8sObject]) -> list[Change]:
        """Delete objects (missing ones are ignored, like `kubectl delete --ignore-not-found`)."""
        objects = list(objects)
        for obj in objects:
            if isinstance(obj, Namespace) and obj.name in _UNDELETABLE_NAMESPACES:
                # the API server's NamespaceLifecycle admission; nothing of this delete happens
                raise ApplyError(f'namespaces "{obj.name}" is forbidden: this namespace may not be deleted')
        with self._lock:
            changes: list[Change] = []
            for obj in objects:
                if self._objects.pop(obj.key, None) is not None:
                    self._created.pop(obj.key, None)
                    self._cluster_ips.pop((obj.namespace or "", obj.name), None) if obj.kind == "Service" else None
                    changes.append(Change("deleted", obj.kind, obj.namespace or "", obj.name))
                    if obj.kind == "Namespace":
                        changes += self._delete_namespace_contents(obj.name)
            changes += self._reconcile_pods()
        self._emit(changes)
        return changes

    def _store(self, obj: K8sObject) -> None:
        if obj.key not in self._created:
            self._seq += 1
            self._created[obj.key] = self._seq
        self._objects[obj.key] = obj
        if isinstance(obj, Service) and self._cluster_ip and not obj.spec.headless:
            self._cluster_ips.setdefault((obj.namespace or "", obj.name), obj.spec.cluster_ip or self._cluster_ip(obj))

    def _check_namespaces(self, objects: list[K8sObject]) -> None:
        if not self._strict_namespaces:
            return
        known = {o.name for o in self.list(Namespace)} | {o.name for o in objects if isinstance(o, Namespace)}
        for o in objects:
            if o.NAMESPACED and o.namespace not in known:
                where = f" ({o.source})" if o.source else ""
                raise ApplyError(f'{o.ref}{where}: namespaces "{o.namespace}" not found; '
                                 f"create the Namespace first (kubectl create namespace {o.namespace})")

    def _delete_namespace_contents(self, ns: str) -> list[Change]:
        gone = [k for k in self._objects if k[1] == ns and k[0] != "Namespace"]
        for k in gone:
            del self._objects[k]
            self._created.pop(k, None)
        return [Change("deleted", k[0].split(".", 1)[0], k[1], k[2]) for k in gone]

    # ----------------------------------------------------------------------------- pods
    def _desired_pods(self) -> dict[tuple[str, str], PodInfo]:
        desired: dict[tuple[str, str], PodInfo] = {}
        for obj in self._objects.values():
            if isinstance(obj, Deployment):
                h = _template_hash(obj)
                labels = {**obj.spec.template.metadata.labels, "pod-template-hash": h}
                for i in range(obj.spec.replicas):
                    name = f"{obj.name}-{h}-{_pod_suffix(obj.name, h, i)}"
                    desired[(obj.namespace or "", name)] = PodInfo(
                        name, obj.namespace or "", labels, obj.spec.template.spec, owner=obj.name)
            elif isinstance(obj, Pod):
                desired[(obj.namespace or "", obj.name)] = PodInfo(obj.name, obj.namespace or "", dict(obj.labels), obj.spec)
        return desired

    def _reconcile_pods(self) -> list[Change]:
        desired = self._desired_pods()
        changes: list[Change] = []
        for key in [k for k in self._pods if k not in desired]:
            del self._pods[key]
            changes.append(Change("deleted", "Pod", *key))
        for key, pod in desired.items():
            if key not in self._pods:
                if self._pod_ip:
                    pod.ip = self._pod_ip(pod)
                self._pods[key] = pod
                changes.append(Change("added", "Pod", *key))
        return changes

    def pods(self, namespace: str | None = None) -> list[PodInfo]:
        with self._lock:
            return [p for p in self._pods.values() if namespace is None or p.namespace == namespace]

    def pod(self, name: str, namespace: str = "default") -> PodInfo:
        try:
            return self._pods[(namespace, name)]
        except KeyError:
            raise KeyError(f"no pod {namespace}/{name}; pods: {', '.join(p.name for p in self.pods(namespace)) or 'none'}") from None

    def set_pod(self, name: str, namespace: str = "default", *, ready: bool | None = None,
                phase: Literal["Pending", "Running", "Failed"] | None = None) -> None:
        """Change a pod's readiness or phase (the kubelet's job) and announce it."""
        with self._lock:
            pod = self.pod(name, namespace)
            if ready is not None:
                pod.ready = ready
            if phase is not None:
                pod.phase = phase
        self._emit([Change("modified", "Pod", namespace, name)])

    # ----------------------------------------------------------------------------- queries
    def list(self, kind: type[T], namespace: str | None = None) -> list[T]:
        """Objects of one kind, oldest first (creation order, then name, then namespace, as Istio sorts)."""
        with self._lock:
            found = [o for o in self._objects.values() if isinstance(o, kind)
                     and (namespace is None or o.namespace == namespace)]
            return sorted(found, key=lambda o: (self._created[o.key], o.name, o.namespace or ""))

    def created(self, obj: K8sObject) -> int:
        """The object's place in creation order (1 for the first object applied): what Istio's
        creation-time ordering compares."""
        return self._created.get(obj.key, 0)

    def all(self) -> list[K8sObject]:
        with self._lock:
            return sorted(self._objects.values(), key=lambda o: self._created[o.key])

    def get(self, kind: type[T], name: str, namespace: str = "default") -> T | None:
        obj = self._objects.get((kind.key_kind(), namespace if kind.NAMESPACED else "", name))
        return obj if isinstance(obj, kind) else None

    def services(self, namespace: str | None = None) -> list[Service]:
        return self.list(Service, namespace)

    def virtual_services(self, namespace: str | None = None) -> list[VirtualService]:
        return self.list(VirtualService, namespace)

    def destination_rules(self, namespace: str | None = None) -> list[DestinationRule]:
        return self.list(DestinationRule, namespace)

    def gateways(self, namespace: str | None = None) -> list[Gateway]:
        return self.list(Gateway, namespace)

    def service_entries(self, namespace: str | None = None) -> list[ServiceEntry]:
        return self.list(ServiceEntry, namespace)

    def namespaces(self) -> list[str]:
        return [n.name for n in self.list(Namespace)]

    def cluster_ip(self, service: Service) -> str | None:
        return self._cluster_ips.get((service.namespace or "", service.name))

    def resolve_host(self, name: str, client_namespace: str = "default") -> Service | None:
        """The Service cluster DNS answers for `name` asked from a pod in `client_namespace`
        (search path and trailing dot: `meshlab.names.cluster_dns`); None is NXDOMAIN."""
        parts = cluster_dns(name, client_namespace)
        return None if parts is None else self.get(Service, parts[0], parts[1])

    def pods_selected(self, selector: dict[str, str] | None, namespace: str) -> list[PodInfo]:
        """Pods in `namespace` matching a label selector (a Service without selector selects none)."""
        if selector is None:
            return []
        return [p for p in self.pods(namespace) if labels_match(selector, p.labels)]

    def endpoints(self, service: Service, port: ServicePort, *, include_unready: bool = False) -> list[Endpoint]:
        """Service port → pod IP:targetPort for ready, running pods (the EndpointSlice controller)."""
        result = []
        for pod in self.pods_selected(service.spec.selector, service.namespace or "default"):
            if pod.phase != "Running" or (not pod.ready and not include_unready
                                          and not service.spec.publish_not_ready_addresses):
                continue
            target = port.target_port if port.target_port is not None else port.port
            number = pod.container_port(target) if isinstance(target, str) else target
            if number is None:    # a named targetPort this pod does not declare: no endpoint
                continue
            result.append(Endpoint(pod.ip, number, pod.name, pod.namespace, dict(pod.labels), pod.ready))
        return sorted(result, key=lambda e: e.pod)

    def subset_pods(self, service: Service, labels: dict[str, str]) -> list[PodInfo]:
        """Pods behind a Service that also carry a DestinationRule subset's labels."""
        return [p for p in self.pods_selected(service.spec.selector, service.namespace or "default")
                if labels_match(labels, p.labels)]
