"""ClusterState: what the API server and the controllers would hold, derived the way Kubernetes does.

Deployments become Pods (names like `reviews-v1-7f9c8d6b5-x2k4q`), pods are placed on the
cluster's nodes (`schedule`: nodeName, nodeSelector, node affinity), Services select Pods into
endpoints (ready ones only, targetPort resolved per pod, each with its pod's locality), and every
change is announced to subscribers, so a backend (or a notebook chart) can react. Nothing here
starts processes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Literal, Sequence, TypeVar

from . import _recording
from .errors import ApplyError
from .names import (
    INGRESS_GATEWAY, INGRESS_GATEWAY_LABELS, INGRESS_GATEWAY_PORTS, ISTIO_NAMESPACE, cluster_dns, labels_match,
)
from .objects import (
    Deployment, DestinationRule, Gateway, K8sObject, Namespace, ObjectKey, ObjectMeta, Pod, PodSpec, Service,
    ServiceEntry, ServicePort, VirtualService,
)

#: Namespaces every cluster (and the lab) starts with; Istio's default install adds istio-system.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", ISTIO_NAMESPACE)
#: The API server refuses to delete these (NamespaceLifecycle admission).
_UNDELETABLE_NAMESPACES = ("default", "kube-system", "kube-public")

T = TypeVar("T", bound=K8sObject)
Op = Literal["added", "modified", "deleted"]

#: The lab's clock: the creation time of objects applied by the n-th apply is EPOCH + n seconds
#: (objects applied together are equally old, as one `kubectl apply` stamps them within a second).
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)

#: Kubernetes' well-known node labels for where a node runs (k8s.io/api/core/v1 well_known_labels.go),
#: and Istio's for a subzone and for a workload's own locality (istio.io/api label/labels.yaml).
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
LOCALITY_LABEL = "topology.istio.io/locality"     # `region.zone.subzone` on a pod overrides its node's
LEGACY_LOCALITY_LABEL = "istio-locality"


@dataclass(frozen=True)
class NodeInfo:
    """One node of the cluster: its name and labels (where it runs: region, zone)."""

    name: str
    labels: dict[str, str] = field(hash=False, default_factory=dict)

    @property
    def region(self) -> str:
        return self.labels.get(REGION_LABEL, "")

    @property
    def zone(self) -> str:
        return self.labels.get(ZONE_LABEL, "")


def _node(name: str, region: str, zone: str) -> NodeInfo:
    return NodeInfo(name, {HOSTNAME_LABEL: name, REGION_LABEL: region, ZONE_LABEL: zone,
                           "kubernetes.io/os": "linux"})


#: The nodes of a lab's cluster, as a managed multi-zone cluster labels them: two zones of region
#: eu-west and one of us-east. The first is where the lab's client and its ingress gateway run, and
#: where a pod that says nothing about placement goes (the local lab does not spread a Deployment
#: over zones as Kubernetes' default topology spread would; pin pods with a nodeSelector).
LAB_NODES: tuple[NodeInfo, ...] = (
    _node("worker-a", "eu-west", "eu-west-a"),
    _node("worker-b", "eu-west", "eu-west-b"),
    _node("worker-c", "us-east", "us-east-a"),
)


def _expression_matches(expr: dict, labels: dict[str, str]) -> bool:
    """One node selector requirement (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`)."""
    key, op, values = expr.get("key", ""), expr.get("operator", ""), [str(v) for v in expr.get("values") or []]
    has = key in labels
    if op == "In":
        return has and labels[key] in values
    if op == "NotIn":
        return not has or labels[key] not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and values:
        try:
            a, b = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _term_matches(term: dict, node: NodeInfo) -> bool:
    """A NodeSelectorTerm: every matchExpression and matchField (metadata.name) holds."""
    fields = {"metadata.name": node.name}
    return (all(_expression_matches(e, node.labels) for e in term.get("matchExpressions") or [])
            and all(_expression_matches(e, fields) for e in term.get("matchFields") or []))


def schedule(spec: PodSpec, nodes: Sequence[NodeInfo]) -> NodeInfo | None:
    """The node a pod goes to, by the scheduler's filters: `nodeName` (that node), `nodeSelector`
    (every label), `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution` (any
    term); among the nodes left, the highest sum of `preferredDuringScheduling…` weights, the first
    node on a tie (the lab's default node first). None: no node fits, the pod stays Pending.
    Kubernetes: pkg/scheduler/framework/plugins/nodeaffinity and nodename."""
    fits = list(nodes)
    if spec.node_name:
        fits = [n for n in fits if n.name == spec.node_name]
    if spec.node_selector:
        fits = [n for n in fits if all(n.labels.get(k) == v for k, v in spec.node_selector.items())]
    affinity = (spec.affinity or {}).get("nodeAffinity") or {}
    required = (affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    if required:
        fits = [n for n in fits if any(_term_matches(t, n) for t in required)]
    if not fits:
        return None
    preferred = affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []

    def score(n: NodeInfo) -> int:
        return sum(int(p.get("weight", 0)) for p in preferred if _term_matches(p.get("preference") or {}, n))
    best = max(score(n) for n in fits)
    return next(n for n in fits if score(n) == best)


def locality_of(labels: dict[str, str], node: NodeInfo | None) -> str:
    """Where istiod places a workload, `region/zone/subzone`: the pod's `topology.istio.io/locality`
    (or `istio-locality`) label with `.` for `/`, else its node's topology labels; '' when neither
    says (pilot/pkg/serviceregistry/kube/controller/controller.go getPodLocality)."""
    own = labels.get(LOCALITY_LABEL) or labels.get(LEGACY_LOCALITY_LABEL)
    if own:
        return own if "/" in own else own.replace(".", "/")
    if node is None:
        return ""
    region, zone, sub = node.labels.get(REGION_LABEL, ""), node.labels.get(ZONE_LABEL, ""), \
        node.labels.get(SUBZONE_LABEL, "")
    return f"{region}/{zone}/{sub}" if (region or zone or sub) else ""


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
    node: str | None = None             # the node it was scheduled to (None: Pending, no node fits)
    locality: str = ""                  # `region/zone/subzone`, as istiod reads it (`locality_of`)

    @property
    def version(self) -> str:
        return self.labels.get("version", "")

    def container_port(self, name: str) -> int | None:
        """Resolve a named targetPort against this pod's containers, as the endpoints controller does."""
        return self.spec.container_port(name)

    def listen_ports(self) -> list[int]:
        return sorted({p.container_port for c in self.spec.containers for p in c.ports})

    def env(self) -> dict[str, str]:
        """The plain `env` values of the pod's containers (name → value; `valueFrom` left out):
        what the demo app reads its configuration from (`meshlab.app.KNOB_ENV`)."""
        out: dict[str, str] = {}
        for c in self.spec.containers:
            for e in c.env or []:
                if isinstance(e, dict) and "name" in e and "value" in e:
                    out[str(e["name"])] = str(e["value"])
        return out


@dataclass(frozen=True)
class Endpoint:
    """One address behind a Service port: pod IP and the resolved targetPort."""

    ip: str | None
    port: int
    pod: str
    namespace: str
    labels: dict[str, str] = field(hash=False, compare=False, default_factory=dict)
    ready: bool = True
    locality: str = ""                  # the pod's `region/zone/subzone` (istiod's endpoint locality)
    node: str = ""                      # the pod's node


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
                 strict_namespaces: bool = True, nodes: Sequence[NodeInfo] = LAB_NODES):
        self._objects: dict[ObjectKey, K8sObject] = {}
        self._created: dict[ObjectKey, datetime] = {}
        self._tick = 0
        self._pods: dict[tuple[str, str], PodInfo] = {}
        self._cluster_ips: dict[tuple[str, str], str] = {}
        self._pod_ip = pod_ip
        self._cluster_ip = cluster_ip
        self._strict_namespaces = strict_namespaces
        self._subscribers: list[Callable[[list[Change]], None]] = []
        self._lock = threading.RLock()
        self._nodes = tuple(nodes)
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
            if any(o.key not in self._objects for o in objects):
                self._tick += 1
            for obj in objects:
                op: Op = "modified" if obj.key in self._objects else "added"
                self._store(obj)
                changes.append(Change(op, obj.kind, obj.namespace or "", obj.name))
            changes += self._reconcile_pods()
        self._emit(changes)
        _recording.state_changed(self)
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
                if obj.key in self._objects:
                    self._forget(obj.key)
                    changes.append(Change("deleted", obj.kind, obj.namespace or "", obj.name))
                    if obj.kind == "Namespace":
                        changes += self._delete_namespace_contents(obj.name)
            changes += self._reconcile_pods()
        self._emit(changes)
        _recording.state_changed(self)
        return changes

    def _store(self, obj: K8sObject) -> None:
        if obj.key not in self._created:
            given = _timestamp(obj.metadata.creation_timestamp)
            self._created[obj.key] = given or EPOCH + timedelta(seconds=self._tick)
        self._objects[obj.key] = obj
        if isinstance(obj, Service) and self._cluster_ip and not obj.spec.headless:
            self._cluster_ips.setdefault((obj.namespace or "", obj.name), obj.spec.cluster_ip or self._cluster_ip(obj))

    def _forget(self, key: ObjectKey) -> None:
        """Drop one stored object, and a Service's ClusterIP with it (its "deleted" change tells
        the allocator, `backends.local.reconcile`)."""
        del self._objects[key]
        self._created.pop(key, None)
        if key.group == "" and key.kind == "Service":
            self._cluster_ips.pop((key.namespace, key.name), None)

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
        gone = [k for k in self._objects if k.namespace == ns and k.kind != "Namespace"]
        for k in gone:
            self._forget(k)
        return [Change("deleted", k.kind, k.namespace, k.name) for k in gone]

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
                node = schedule(pod.spec, self._nodes)
                if node is None:           # no node fits: Pending, no address, never started
                    pod.phase, pod.ready = "Pending", False
                else:
                    pod.node = node.name
                    if self._pod_ip:
                        pod.ip = self._pod_ip(pod)
                pod.locality = locality_of(pod.labels, node)
                self._pods[key] = pod
                changes.append(Change("added", "Pod", *key))
        return changes

    # ----------------------------------------------------------------------------- nodes
    def nodes(self) -> list[NodeInfo]:
        """The cluster's nodes (the lab's: `LAB_NODES`)."""
        return list(self._nodes)

    def node(self, name: str | None) -> NodeInfo | None:
        return next((n for n in self._nodes if n.name == name), None)

    @property
    def default_node(self) -> NodeInfo | None:
        """Where the lab's client and gateway run, and pods that say nothing about placement go."""
        return self._nodes[0] if self._nodes else None

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
        _recording.state_changed(self)

    # ----------------------------------------------------------------------------- queries
    def list(self, kind: type[T], namespace: str | None = None) -> list[T]:
        """Objects of one kind, oldest first: creation time, then name, then namespace, as istiod
        sorts configs (pilot/pkg/model sortConfigByCreationTime). Objects applied together are
        equally old, so their names order them; a manifest's own `creationTimestamp` is kept."""
        with self._lock:
            found = [o for o in self._objects.values() if isinstance(o, kind)
                     and (namespace is None or o.namespace == namespace)]
            return sorted(found, key=self._age)

    def all(self) -> list[K8sObject]:
        """Every object, oldest first; objects applied together keep the order they came in."""
        with self._lock:
            return sorted(self._objects.values(), key=lambda o: self._created[o.key])

    def _age(self, o: K8sObject) -> tuple[datetime, str, str]:
        return (self._created[o.key], o.name, o.namespace or "")

    def created(self, obj: K8sObject) -> datetime:
        """When `obj` (or the object with its kind, namespace and name) was created in this state,
        what Istio's creation-time ordering compares; EPOCH for an object the state does not hold."""
        return self._created.get(obj.key, EPOCH)

    def get(self, kind: type[T], name: str, namespace: str = "default") -> T | None:
        obj = self._objects.get(kind.key_of(name, namespace))
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
            result.append(Endpoint(pod.ip, number, pod.name, pod.namespace, dict(pod.labels), pod.ready,
                                   pod.locality, pod.node or ""))
        return sorted(result, key=lambda e: e.pod)

    def subset_pods(self, service: Service, labels: dict[str, str]) -> list[PodInfo]:
        """Pods behind a Service that also carry a DestinationRule subset's labels."""
        return [p for p in self.pods_selected(service.spec.selector, service.namespace or "default")
                if labels_match(labels, p.labels)]

    # ----------------------------------------------------------------------------- export
    def recording(self) -> dict[str, Any]:
        """What a replay needs to rebuild this state (`meshlab._recording`): the applied objects as
        manifests, grouped by the apply that created them (oldest first), and the pods that are
        not ready or not running."""
        with self._lock:
            groups: dict[datetime, list[dict[str, Any]]] = {}
            for o in self.all():
                if isinstance(o, Namespace) and o.name in BUILTIN_NAMESPACES and not o.labels:
                    continue
                # the fields as applied, not the model's empty defaults: `endpoints: []` in a
                # ServiceEntry is not what was applied, and the API server would refuse it
                groups.setdefault(self._created[o.key], []).append(
                    o.model_dump(by_alias=True, exclude_none=True, exclude_unset=True, mode="json"))
            return {"applies": list(groups.values()),
                    "notReady": sorted(f"{p.namespace}/{p.name}" for p in self._pods.values() if not p.ready),
                    "failed": sorted(f"{p.namespace}/{p.name}" for p in self._pods.values() if p.phase != "Running")}

    def to_objects(self, *, ingress_gateway: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """The state as an API server would serve it, as manifests: what istiod reads.

        Namespaces; Services with their `clusterIP`; Pods with IP, labels, phase and the Ready
        condition; the EndpointSlices the EndpointSlice controller would write (ready and
        not-ready endpoints of running pods with an IP, the targetPort resolved per pod, one slice
        per distinct port mapping); and every other object as applied. Each object carries its
        `metadata.creationTimestamp` from this state's clock (`EPOCH` + one second per apply), so
        istiod orders equally old objects as this state does.

        `ingress_gateway`: (pod IP, cluster IP) — also add what the local lab's ingress gateway
        stands for, Istio's default install: the `istio-ingressgateway` Service (ports
        `INGRESS_GATEWAY_PORTS`, with `networking.istio.io/exportTo: "~"`, so sidecars do not see
        it — meshlab's registry does not hold Istio's own Services), its Pod and its EndpointSlice.
        """
        with self._lock:
            out: list[dict[str, Any]] = []
            for o in self.all():
                if isinstance(o, (Deployment,)):
                    continue             # its pods are exported below
                if isinstance(o, Pod):
                    continue
                m = o.to_manifest()
                meta = m.setdefault("metadata", {})
                if o.NAMESPACED:
                    meta.setdefault("namespace", o.namespace or "default")
                meta["creationTimestamp"] = _rfc3339(self._created[o.key])
                if isinstance(o, Service) and o.spec.type != "ExternalName":
                    ip = "None" if o.spec.headless else self.cluster_ip(o)
                    if ip:
                        m.setdefault("spec", {})["clusterIP"] = ip
                out.append(m)
                if isinstance(o, Service):
                    out += self._endpoint_slices(o)
            for pod in sorted(self._pods.values(), key=lambda p: (p.namespace, p.name)):
                out.append(_pod_manifest(pod, self._pod_created(pod)))
            if ingress_gateway:
                out += _ingress_gateway_objects(*ingress_gateway)
            return out

    def _pod_created(self, pod: PodInfo) -> datetime:
        owner = Deployment if pod.owner else Pod
        return self._created.get(owner.key_of(pod.owner or pod.name, pod.namespace), EPOCH)

    def _endpoint_slices(self, service: Service) -> list[dict[str, Any]]:
        """The EndpointSlice controller's slices for one Service (none without a selector)."""
        if service.spec.selector is None or service.spec.type == "ExternalName":
            return []
        ns = service.namespace or "default"
        by_ports: dict[tuple[tuple[str, int, str, str | None], ...], list[dict[str, Any]]] = {}
        for pod in sorted(self.pods_selected(service.spec.selector, ns), key=lambda p: p.name):
            if not pod.ip or pod.phase != "Running":
                continue
            ports = []
            for sp in service.spec.ports:
                target = sp.target_port if sp.target_port is not None else sp.port
                number = pod.container_port(target) if isinstance(target, str) else target
                if number is not None:
                    ports.append((sp.name or "", number, sp.protocol, sp.app_protocol))
            ready = pod.ready or bool(service.spec.publish_not_ready_addresses)
            by_ports.setdefault(tuple(ports), []).append({
                "addresses": [pod.ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "targetRef": {"kind": "Pod", "name": pod.name, "namespace": pod.namespace}})
        slices = []
        for i, (ports, endpoints) in enumerate(by_ports.items()):
            slices.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{service.name}-{i}", "namespace": ns,
                             "creationTimestamp": _rfc3339(self._created[service.key]),
                             "labels": {"kubernetes.io/service-name": service.name,
                                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                "addressType": "IPv4",
                "ports": [{"name": n, "port": p, "protocol": proto, **({"appProtocol": ap} if ap else {})}
                          for n, p, proto, ap in ports],
                "endpoints": endpoints})
        return slices


def _timestamp(value: Any) -> datetime | None:
    """A manifest's `metadata.creationTimestamp` (RFC 3339 text, or what YAML made of it)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_manifest(pod: PodInfo, created: datetime) -> dict[str, Any]:
    spec = pod.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    status: dict[str, Any] = {"phase": pod.phase, "conditions": [
        {"type": "Ready", "status": "True" if pod.ready and pod.phase == "Running" else "False"}]}
    if pod.ip:
        status.update(podIP=pod.ip, podIPs=[{"ip": pod.ip}])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels),
                         "creationTimestamp": _rfc3339(created)},
            "spec": spec, "status": status}


def _ingress_gateway_objects(ip: str, cluster_ip: str) -> list[dict[str, Any]]:
    """Istio's default ingress gateway (Service, Pod, EndpointSlice), hidden from sidecars."""
    name, ns, created = INGRESS_GATEWAY, ISTIO_NAMESPACE, _rfc3339(EPOCH)
    ports = [("status-port", 15021, 15021)] + [(("http2" if p == 80 else "https" if p == 443 else f"tcp-{p}"), p, t)
                                                for p, t in INGRESS_GATEWAY_PORTS.items()]
    pod = f"{name}-0"
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": ns, "creationTimestamp": created,
                      "labels": dict(INGRESS_GATEWAY_LABELS),
                      "annotations": {"networking.istio.io/exportTo": "~"}},
         "spec": {"type": "ClusterIP", "clusterIP": cluster_ip,
                  "selector": dict(INGRESS_GATEWAY_LABELS),
                  "ports": [{"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in ports]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": pod, "namespace": ns, "labels": dict(INGRESS_GATEWAY_LABELS), "creationTimestamp": created},
         "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2",
                                  "ports": [{"containerPort": t} for _, _, t in ports]}]},
         "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": "True"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-0", "namespace": ns, "creationTimestamp": created,
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4",
         "ports": [{"name": n, "port": t, "protocol": "TCP"} for n, _, t in ports],
         "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}]},
    ]
