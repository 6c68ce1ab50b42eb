"""Typed Kubernetes and Istio objects, so the rest of meshlab never digs in raw dicts.

Attribute names are snake_case (`vs.spec.http[0].route[0].destination.host`); the YAML names are the
camelCase aliases, exactly as `kubectl apply` takes them. Models are strict (no "80" for 80) and
forbid unknown fields, as the API server's strict field validation does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .names import parse_duration


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True,
        validate_assignment=False,
    )


class _OpenModel(_Model):
    """A Kubernetes struct with many fields meshlab does not use: known ones typed, others kept."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class Source:
    """Where an object came from, for error messages: file (or '<string>', '<dict>') and line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def _quoted(text: str, limit: int = 60) -> str:
    """A learner's string in a message: quoted, clipped (a 2 MB value is not echoed whole), no raw
    control characters."""
    shown = text if len(text) <= limit else text[:limit - 1] + "…"
    return repr(shown)[1:-1].join('""') + (f" ({len(text)} characters)" if len(text) > limit else "")


def duration_ns(text: str) -> int:
    """Nanoseconds in a duration as Istio's CRDs take it (any Go duration, `meshlab.names`), with the
    learner-facing reason when it is not one."""
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f'{_quoted(text)} is not a duration; write a number with a unit, e.g. "2s", "500ms", "1m30s"') \
            from None


def _istio_duration(text: str) -> str:
    """Istio's CRD rule `duration(self) >= duration('1ms')`, with the reason when it fails."""
    if duration_ns(text) < 1_000_000:
        raise ValueError(f'must be a valid duration of at least 1ms, found {_quoted(text)}')
    return text


#: A duration as Istio's CRDs accept it (Go syntax, at least 1ms). Still a plain `str` at runtime.
Duration = Annotated[str, AfterValidator(_istio_duration)]
_U32 = 4294967295
#: The largest int32: Kubernetes' `replicas` and Istio's int32 fields (weight, attempts, pool limits)
#: refuse more (the JSON decoder of the API server or of Istio's webhook: "cannot unmarshal number").
_I32 = 2147483647


def _at_most_one(model: BaseModel, *aliases: str) -> None:
    """Istio's `oneOf` in the CRD schema: at most one of these fields may be set."""
    names = {(f.alias or n): n for n, f in type(model).model_fields.items()}
    given = [a for a in aliases if getattr(model, names[a]) is not None]
    if len(given) > 1:
        raise ValueError(f"only one of {', '.join(aliases)} may be set, found {' and '.join(given)}")


# ---------------------------------------------------------------------------------------- metadata

class ObjectMeta(_Model):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # Set by the API server or by tools; accepted and kept, never used for semantics.
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Any = None
    deletion_timestamp: Any = None
    deletion_grace_period_seconds: int | None = None
    generate_name: str | None = None
    owner_references: list[dict[str, Any]] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[dict[str, Any]] | None = None
    self_link: str | None = None


class ObjectKey(NamedTuple):
    """What makes two objects the same object on one API server: API group ("" for the core group),
    kind, namespace ("" for a cluster-scoped kind) and name — not the version (`networking.istio.io/v1`
    and `/v1beta1` are one object, as kubectl sees them), and not the kind alone (an Istio Gateway and
    a Gateway API Gateway of one name are two objects, `gateway.networking.istio.io` and
    `gateway.gateway.networking.k8s.io` to kubectl)."""

    group: str
    kind: str
    namespace: str
    name: str


def api_group(api_version: str) -> str:
    """The group of an apiVersion: `networking.istio.io/v1` → `networking.istio.io`, `v1` → `""`."""
    return api_version.rpartition("/")[0]


class K8sObject(_Model):
    """Base of every object: apiVersion, kind, metadata, and where it was read from."""

    KIND: ClassVar[str] = ""
    GROUP: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True

    api_version: str
    kind: str
    metadata: ObjectMeta
    _source: Source | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels

    @property
    def group(self) -> str:
        """The API group the class models (`GROUP`); an unmodelled object's is its apiVersion's."""
        return self.GROUP

    @property
    def key(self) -> ObjectKey:
        """(group, kind, namespace, name): what makes two objects 'the same object' in one cluster."""
        return ObjectKey(self.group, self.kind, self.metadata.namespace or "", self.metadata.name)

    @classmethod
    def key_of(cls, name: str, namespace: str | None = "default") -> ObjectKey:
        """The key of the object of this class named `name` in `namespace` (ignored when cluster-scoped)."""
        return ObjectKey(cls.GROUP, cls.KIND, (namespace or "") if cls.NAMESPACED else "", name)

    @property
    def ref(self) -> str:
        """How istioctl names a resource in findings: `VirtualService default/reviews`."""
        return f"{self.kind} {self.metadata.namespace}/{self.name}" if self.NAMESPACED else f"{self.kind} {self.name}"

    @property
    def source(self) -> Source | None:
        return self._source

    def with_source(self, source: Source | None) -> K8sObject:
        self._source = source
        return self

    def to_manifest(self) -> dict[str, Any]:
        """The object as a manifest dict (camelCase), as a learner would write it."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# ---------------------------------------------------------------------------------------- core/v1

class Namespace(K8sObject):
    KIND = "Namespace"
    NAMESPACED = False
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


class ServicePort(_Model):
    port: int = Field(ge=1, le=65535)
    name: str | None = None
    target_port: int | str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    node_port: int | None = None


class ServiceSpec(_Model):
    ports: list[ServicePort] = Field(default_factory=list)
    selector: dict[str, str] | None = None
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    session_affinity: Literal["None", "ClientIP"] = "None"
    session_affinity_config: dict[str, Any] | None = None
    external_name: str | None = None
    external_ips: list[str] | None = Field(default=None, alias="externalIPs")
    external_traffic_policy: str | None = None
    internal_traffic_policy: str | None = None
    ip_families: list[str] | None = None
    ip_family_policy: str | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] | None = None
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    health_check_node_port: int | None = None
    publish_not_ready_addresses: bool | None = None
    traffic_distribution: str | None = None

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"


class Service(K8sObject):
    KIND = "Service"
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: dict[str, Any] | None = None

    def port(self, number_or_name: int | str) -> ServicePort | None:
        for p in self.spec.ports:
            if p.port == number_or_name or (p.name is not None and p.name == number_or_name):
                return p
        return None


class ContainerPort(_Model):
    container_port: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    host_port: int | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")


class Container(_OpenModel):
    name: str
    image: str | None = None
    ports: list[ContainerPort] = Field(default_factory=list)
    args: list[str] | None = None
    command: list[str] | None = None
    env: list[dict[str, Any]] | None = None
    readiness_probe: dict[str, Any] | None = None


class PodSpec(_OpenModel):
    containers: list[Container] = Field(min_length=1)
    init_containers: list[Container] | None = None
    # where the pod may run (the scheduler's inputs; `meshlab.state.schedule`)
    node_name: str | None = None
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = None

    def container_port(self, name: str) -> int | None:
        """The number of the container port called `name` (a Service's named targetPort), as the
        endpoints controller resolves it; None when no container declares that name."""
        return next((p.container_port for c in self.containers for p in c.ports if p.name == name), None)


class PodTemplateMeta(_Model):
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplate(_Model):
    metadata: PodTemplateMeta = Field(default_factory=PodTemplateMeta)
    spec: PodSpec


class LabelSelector(_Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[dict[str, Any]] | None = None


class DeploymentSpec(_Model):
    selector: LabelSelector
    template: PodTemplate
    replicas: int = Field(default=1, ge=0, le=_I32)
    strategy: dict[str, Any] | None = None
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    progress_deadline_seconds: int | None = None
    paused: bool | None = None


class Deployment(K8sObject):
    KIND = "Deployment"
    GROUP = "apps"
    spec: DeploymentSpec
    status: dict[str, Any] | None = None


class Pod(K8sObject):
    KIND = "Pod"
    spec: PodSpec
    status: dict[str, Any] | None = None


# ------------------------------------------------------------------------------ networking.istio.io

class StringMatch(_Model):
    """One of exact / prefix / regex (RE2, whole string)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StringMatch:
        _at_most_one(self, "exact", "prefix", "regex")
        return self


class PortSelector(_Model):
    number: int = Field(default=0, ge=0, le=4294967295)  # 0: not set, as in Istio's proto


class Destination(_Model):
    host: str = Field(min_length=1)
    subset: str | None = None
    port: PortSelector | None = None


class HeaderOperations(_Model):
    set: dict[str, str] | None = None
    add: dict[str, str] | None = None
    remove: list[str] | None = None


class Headers(_Model):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class Percent(_Model):
    value: float = Field(default=0.0, ge=0, le=100)  # `{}` is 0 %, as in Istio's proto


class HTTPMatchRequest(_Model):
    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] | None = None
    port: int | None = Field(default=None, ge=0, le=4294967295)
    source_labels: dict[str, str] | None = None
    gateways: list[str] | None = None
    query_params: dict[str, StringMatch] | None = None
    ignore_uri_case: bool | None = None
    without_headers: dict[str, StringMatch] | None = None
    source_namespace: str | None = None
    stat_prefix: str | None = None


class HTTPRouteDestination(_Model):
    destination: Destination
    weight: int | None = Field(default=None, ge=0, le=_I32)
    headers: Headers | None = None


class HTTPRedirect(_Model):
    uri: str | None = None
    authority: str | None = None
    port: int | None = Field(default=None, ge=0, le=_U32)
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: str | None = None
    redirect_code: int | None = Field(default=None, ge=0, le=_U32)
    prefix_rewrite: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> HTTPRedirect:
        _at_most_one(self, "port", "derivePort")
        return self


class RegexRewrite(_Model):
    match: str | None = None
    rewrite: str | None = None


class HTTPRewrite(_Model):
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


class HTTPRetry(_Model):
    attempts: int | None = Field(default=None, ge=0, le=_I32)
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: Duration | None = None


class FaultDelay(_Model):
    fixed_delay: Duration | None = None
    exponential_delay: Duration | None = None
    percentage: Percent | None = None
    percent: int | None = None  # deprecated

    @model_validator(mode="after")
    def _one_of(self) -> FaultDelay:
        _at_most_one(self, "fixedDelay", "exponentialDelay")
        return self


class FaultAbort(_Model):
    http_status: int | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None

    @model_validator(mode="after")
    def _one_of(self) -> FaultAbort:
        _at_most_one(self, "httpStatus", "grpcStatus", "http2Error")
        return self


class HTTPFaultInjection(_Model):
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


class HTTPMirrorPolicy(_Model):
    destination: Destination
    percentage: Percent | None = None


class HTTPRoute(_Model):
    name: str | None = None
    match: list[HTTPMatchRequest] | None = None
    route: list[HTTPRouteDestination] | None = None
    redirect: HTTPRedirect | None = None
    direct_response: dict[str, Any] | None = None
    delegate: dict[str, Any] | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: list[HTTPMirrorPolicy] | None = None
    mirror_percentage: Percent | None = None
    mirror_percent: int | None = Field(default=None, ge=0, le=_U32)  # deprecated
    #: the same deprecated field under its old snake_case YAML name, which the CRD still accepts
    mirror_percent_legacy: int | None = Field(default=None, alias="mirror_percent", ge=0, le=_U32)
    cors_policy: dict[str, Any] | None = None
    headers: Headers | None = None

    @field_validator("direct_response")
    @classmethod
    def _direct_response(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Kept as a dict, checked as the CRD schema does: status required, body one of string/bytes."""
        if value is None:
            return value
        unknown = sorted(set(value) - {"status", "body"})
        if unknown:
            raise ValueError(f'unknown field "{unknown[0]}" in directResponse (fields here: body, status)')
        status = value.get("status")
        if status is None:
            raise ValueError("directResponse: required field status is missing")
        if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status <= _U32:
            raise ValueError(f"directResponse.status must be an HTTP status code (an integer), found {status!r}")
        body = value.get("body")
        if body is not None:
            if not isinstance(body, dict) or set(body) - {"string", "bytes"} or len(body) > 1 \
                    or not all(isinstance(v, str) for v in body.values()):
                raise ValueError("directResponse.body takes one of string or bytes (a string)")
        return value


class VirtualServiceSpec(_Model):
    hosts: list[str] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=list)
    http: list[HTTPRoute] = Field(default_factory=list)
    tls: list[dict[str, Any]] = Field(default_factory=list)
    tcp: list[dict[str, Any]] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)


class VirtualService(K8sObject):
    KIND = "VirtualService"
    GROUP = "networking.istio.io"
    spec: VirtualServiceSpec = Field(default_factory=VirtualServiceSpec)
    status: dict[str, Any] | None = None


class ConsistentHashLB(_Model):
    http_header_name: str | None = None
    http_cookie: dict[str, Any] | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: dict[str, Any] | None = None
    maglev: dict[str, Any] | None = None
    minimum_ring_size: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_of(self) -> ConsistentHashLB:
        _at_most_one(self, "httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName")
        _at_most_one(self, "ringHash", "maglev")
        return self


class LoadBalancerSettings(_Model):
    simple: Literal["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"] | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: dict[str, Any] | None = None
    warmup_duration_secs: Duration | None = None
    warmup: dict[str, Any] | None = None
    backend_utilization: dict[str, Any] | None = None
    zone_aware_lb_setting: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LoadBalancerSettings:
        _at_most_one(self, "simple", "consistentHash", "backendUtilization")
        return self


class TCPSettings(_Model):
    max_connections: int | None = Field(default=None, le=_I32)
    connect_timeout: Duration | None = None
    tcp_keepalive: dict[str, Any] | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: str | None = None


class HTTPSettings(_Model):
    http1_max_pending_requests: int | None = Field(default=None, le=_I32)
    http2_max_requests: int | None = Field(default=None, le=_I32)
    max_requests_per_connection: int | None = Field(default=None, le=_I32)
    max_retries: int | None = Field(default=None, le=_I32)
    idle_timeout: Duration | None = None
    http2_keep_alive: dict[str, Any] | None = None
    h2_upgrade_policy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: int | None = Field(default=None, le=_I32)


class ConnectionPoolSettings(_Model):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(_Model):
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: int | None = Field(default=None, ge=0, le=_U32)
    consecutive_gateway_errors: int | None = Field(default=None, ge=0, le=_U32)
    consecutive5xx_errors: int | None = Field(default=None, alias="consecutive5xxErrors", ge=0, le=_U32)
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    outlier_detection_http_error_codes: list[Annotated[int, Field(ge=100, le=599)]] | None = None
    max_ejection_percent: int | None = Field(default=None, le=_I32)
    min_health_percent: int | None = Field(default=None, le=_I32)
    consecutive_errors: int | None = None  # deprecated


class PortTrafficPolicy(_Model):
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: dict[str, Any] | None = None


class TrafficPolicy(_Model):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: dict[str, Any] | None = None
    port_level_settings: list[PortTrafficPolicy] | None = None
    tunnel: dict[str, Any] | None = None
    proxy_protocol: dict[str, Any] | None = None
    retry_budget: dict[str, Any] | None = None


class Subset(_Model):
    name: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class WorkloadSelector(_Model):
    match_labels: dict[str, str] = Field(default_factory=dict)


class DestinationRuleSpec(_Model):
    host: str = Field(min_length=1)
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    workload_selector: WorkloadSelector | None = None


class DestinationRule(K8sObject):
    KIND = "DestinationRule"
    GROUP = "networking.istio.io"
    spec: DestinationRuleSpec
    status: dict[str, Any] | None = None

    def subset(self, name: str) -> Subset | None:
        return next((s for s in self.spec.subsets if s.name == name), None)


class ServerPort(_Model):
    number: int = Field(ge=0, le=4294967295)
    protocol: str
    name: str | None = None  # required in manifests (checked by meshlab.manifests)
    target_port: int | None = Field(default=None, ge=0, le=_U32)


class Server(_Model):
    port: ServerPort
    hosts: list[str] = Field(min_length=1)
    bind: str | None = None
    tls: dict[str, Any] | None = None
    default_endpoint: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _tls_credentials(self) -> Server:
        if self.tls:
            given = [k for k in ("credentialName", "credentialNames", "tlsCertificates") if k in self.tls]
            if len(given) > 1:
                raise ValueError(f"tls: only one of credentialName, credentialNames or tlsCertificates may be set, "
                                 f"found {' and '.join(given)}")
        return self


class GatewaySpec(_Model):
    servers: list[Server] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)


class Gateway(K8sObject):
    KIND = "Gateway"
    GROUP = "networking.istio.io"
    spec: GatewaySpec = Field(default_factory=GatewaySpec)
    status: dict[str, Any] | None = None


class ServiceEntryPort(_Model):
    number: int = Field(ge=1, le=65535)
    protocol: str | None = None
    name: str | None = None  # required in manifests (checked by meshlab.manifests)
    target_port: int | None = Field(default=None, ge=1, le=65535)


class ServiceEntryWorkloadSelector(WorkloadSelector):
    """ServiceEntry selects workloads with `labels` (not `matchLabels`); kept in match_labels too."""

    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_match_labels(cls, data: Any) -> Any:
        if isinstance(data, dict) and "matchLabels" in data:
            raise ValueError("a ServiceEntry's workloadSelector takes labels, not matchLabels")
        return data

    @model_validator(mode="after")
    def _mirror(self) -> ServiceEntryWorkloadSelector:
        if self.labels and not self.match_labels:
            self.match_labels = dict(self.labels)
        return self


class ServiceEntrySpec(_Model):
    hosts: list[str] = Field(min_length=1)
    addresses: list[str] = Field(default_factory=list)
    ports: list[ServiceEntryPort] = Field(default_factory=list)
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"] | None = None
    resolution: Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"] | None = None
    endpoints: list[dict[str, Any]] = Field(default_factory=list)
    workload_selector: ServiceEntryWorkloadSelector | None = None
    export_to: list[str] = Field(default_factory=list)
    subject_alt_names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _crd_rules(self) -> ServiceEntrySpec:
        """The CEL rules of Istio's ServiceEntry CRD, which the API server runs."""
        if "*" in self.hosts:
            raise ValueError('hosts: "*" is not allowed (hostname cannot be wildcard)')
        numbers = [p.number for p in self.ports]
        if len(numbers) != len(set(numbers)):
            raise ValueError(f"ports: port number cannot be duplicated (found {numbers})")
        resolution = self.resolution or "NONE"
        if any("/" in a for a in self.addresses) and resolution not in ("STATIC", "NONE"):
            raise ValueError("CIDR addresses are allowed only with resolution NONE or STATIC")
        has_endpoints = "endpoints" in self.model_fields_set
        if resolution == "DNS_ROUND_ROBIN" and len(self.endpoints) > 1:
            raise ValueError("resolution DNS_ROUND_ROBIN cannot have more than one endpoint")
        if resolution == "NONE" and has_endpoints:
            raise ValueError("resolution NONE (the default) cannot set endpoints; use STATIC or DNS")
        if has_endpoints and self.workload_selector is not None:
            raise ValueError("only one of workloadSelector or endpoints may be set")
        for i, ep in enumerate(self.endpoints):
            if "address" not in ep and "network" not in ep:
                raise ValueError(f"endpoints[{i}]: address is required")
        return self


class ServiceEntry(K8sObject):
    KIND = "ServiceEntry"
    GROUP = "networking.istio.io"
    spec: ServiceEntrySpec
    status: dict[str, Any] | None = None


# ------------------------------------------------------------------------ gateway.networking.k8s.io
#
# The Kubernetes Gateway API (v1.6.0, standard channel: the release Istio's go.mod requires), from
# the CRDs' OpenAPI schemas and CEL rules (config/crd/standard/*.yaml of sigs.k8s.io/gateway-api).
# Two of its kinds share a name with Istio's networking API; their classes carry the prefix
# Istio gives them (`gvk.KubernetesGateway`): `KubernetesGateway`, `KubernetesHTTPRoute`.
# Fields the API server defaults are defaulted here too, so an object reads back as
# `kubectl get -o yaml` shows it (backendRef `weight: 1`, a rule's `matches: [{path: PathPrefix /}]`).

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_RE_GW_HOSTNAME = re.compile(rf"^(\*\.)?{_DNS_SUBDOMAIN}$")
_RE_PRECISE_HOSTNAME = re.compile(rf"^{_DNS_SUBDOMAIN}$")
_RE_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_RE_GROUP = re.compile(rf"^$|^{_DNS_SUBDOMAIN}$")
_RE_KIND = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_RE_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_RE_GW_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_RE_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")
_RE_PROTOCOL = re.compile(rf"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|{_DNS_SUBDOMAIN}\/[A-Za-z0-9]+$")
_RE_CONTROLLER = re.compile(rf"^{_DNS_SUBDOMAIN}\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$")
_RE_CORS_ORIGIN = re.compile(r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)")


def _shaped(pattern: re.Pattern[str], what: str, example: str, max_len: int, min_len: int = 1):
    """A string field the CRD constrains by pattern and length, with a sentence instead of the regex."""
    def check(text: str) -> str:
        if len(text) < min_len:
            raise ValueError("must not be empty")
        if len(text) > max_len:
            raise ValueError(f"too long: at most {max_len} characters")
        if not pattern.search(text):
            raise ValueError(f'"{text}" is not {what} (e.g. {example})')
        return text
    return Annotated[str, AfterValidator(check)]


#: A hostname a route or listener matches: lower-case DNS name, optionally `*.` first; no port, no IP.
GatewayHostname = _shaped(_RE_GW_HOSTNAME, 'a lower-case DNS name, optionally starting with "*."',
                          '"reviews.example.com" or "*.example.com"', 253)
PreciseHostname = _shaped(_RE_PRECISE_HOSTNAME, "a lower-case DNS name (no wildcard)", '"reviews.example.com"', 253)
_ObjectName = Annotated[str, Field(min_length=1, max_length=253)]
_SectionName = _shaped(_RE_PRECISE_HOSTNAME, "a section name: lower-case letters, digits, '-' and '.'", '"http"', 253)
_RefNamespace = _shaped(_RE_DNS_LABEL, "a namespace name: lower-case letters, digits and '-'", '"default"', 63)
_Group = _shaped(_RE_GROUP, 'an API group ("" for the core group)', '"" or "gateway.networking.k8s.io"', 253, min_len=0)
_Kind = _shaped(_RE_KIND, "a kind: letters, digits and '-', starting with a letter", '"Service"', 63)
HeaderName = _shaped(_RE_HEADER_NAME, "an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, no spaces or ':')",
                     '"x-user"', 256)
_PortNumber = Annotated[int, Field(ge=1, le=65535)]


def _gateway_duration(text: str) -> str:
    """The Gateway API's Duration: at most four `<1-5 digits><h|m|s|ms>` parts (GEP-2257)."""
    if not _RE_GW_DURATION.match(text):
        raise ValueError(f'"{text}" is not a Gateway API duration: one to four parts of up to 5 digits and a unit '
                         'h, m, s or ms, e.g. "10s", "500ms", "1m30s" (no fractions, no "us")')
    return text


GatewayDuration = Annotated[str, AfterValidator(_gateway_duration)]


def _unique(items: list[Any], key: Callable[[Any], Any], what: str, path: str) -> None:
    """x-kubernetes-list-type map/set: the API server refuses a key given twice ("Duplicate value")."""
    seen: set[Any] = set()
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise ValueError(f"{path}[{i}]: duplicate {what} {k!r} (each may appear once)")
        seen.add(k)


class ParentReference(_Model):
    """A route's `parentRefs[]`: a Gateway (default), or a Service for a mesh (GAMMA) route."""

    group: _Group = GATEWAY_API_GROUP
    kind: _Kind = "Gateway"
    namespace: _RefNamespace | None = None
    name: _ObjectName
    section_name: _SectionName | None = None
    port: _PortNumber | None = None

    @property
    def is_gateway(self) -> bool:
        """A Gateway API Gateway (an Istio `networking.istio.io` Gateway of the same kind is no parent
        Istio's Gateway API controller takes: pilot/pkg/config/kube/gateway)."""
        return (self.group, self.kind) == (GATEWAY_API_GROUP, "Gateway")

    @property
    def is_service(self) -> bool:
        """A core Service: the parent of a mesh (GAMMA) route."""
        return (self.group, self.kind) == ("", "Service")


def _parent_refs_rules(refs: list[ParentReference]) -> None:
    """The CRD's CEL rules on parentRefs: several references to one parent need distinct sectionNames."""
    def same_parent(a: ParentReference, b: ParentReference) -> bool:
        return (a.group, a.kind, a.name, a.namespace or "") == (b.group, b.kind, b.name, b.namespace or "")
    for a in refs:
        for b in refs:
            if a is not b and same_parent(a, b):
                if bool(a.section_name) != bool(b.section_name):
                    raise ValueError("sectionName must be specified when parentRefs includes 2 or more references "
                                     "to the same parent")
                if (a.section_name or "") == (b.section_name or ""):
                    raise ValueError("sectionName must be unique when parentRefs includes 2 or more references "
                                     "to the same parent")


class BackendObjectReference(_Model):
    group: _Group = ""
    kind: _Kind = "Service"
    name: _ObjectName
    namespace: _RefNamespace | None = None
    port: _PortNumber | None = None

    @model_validator(mode="after")
    def _port_for_service(self) -> BackendObjectReference:
        if self.group == "" and self.kind == "Service" and self.port is None:
            raise ValueError("port is required for a Service reference (Must have port for Service reference)")
        return self


class HTTPHeader(_Model):
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=4096)]


class HTTPHeaderFilter(_Model):
    set: list[HTTPHeader] | None = Field(default=None, max_length=16)
    add: list[HTTPHeader] | None = Field(default=None, max_length=16)
    remove: list[str] | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _keys(self) -> HTTPHeaderFilter:
        _unique(self.set or [], lambda h: h.name, "header name", "set")
        _unique(self.add or [], lambda h: h.name, "header name", "add")
        _unique(self.remove or [], lambda h: h, "header name", "remove")
        return self


class HTTPPathModifier(_Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: Annotated[str, Field(max_length=1024)] | None = None
    replace_prefix_match: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _by_type(self) -> HTTPPathModifier:
        if self.type == "ReplaceFullPath" and self.replace_full_path is None:
            raise ValueError("replaceFullPath must be specified when type is set to 'ReplaceFullPath'")
        if self.replace_full_path is not None and self.type != "ReplaceFullPath":
            raise ValueError("type must be 'ReplaceFullPath' when replaceFullPath is set")
        if self.type == "ReplacePrefixMatch" and self.replace_prefix_match is None:
            raise ValueError("replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'")
        if self.replace_prefix_match is not None and self.type != "ReplacePrefixMatch":
            raise ValueError("type must be 'ReplacePrefixMatch' when replacePrefixMatch is set")
        return self


class HTTPRequestRedirectFilter(_Model):
    scheme: Literal["http", "https"] | None = None
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None
    port: _PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewriteFilter(_Model):
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None


class Fraction(_Model):
    numerator: int = Field(ge=0, le=2147483647)
    denominator: int = Field(default=100, ge=1, le=2147483647)

    @model_validator(mode="after")
    def _le(self) -> Fraction:
        if self.numerator > self.denominator:
            raise ValueError(f"numerator must be less than or equal to denominator ({self.numerator} > {self.denominator})")
        return self


class HTTPRequestMirrorFilter(_Model):
    backend_ref: BackendObjectReference
    percent: int | None = Field(default=None, ge=0, le=100)
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one_of(self) -> HTTPRequestMirrorFilter:
        _at_most_one(self, "percent", "fraction")
        return self


class LocalObjectReference(_Model):
    group: _Group
    kind: _Kind
    name: _ObjectName


class HTTPCORSFilter(_Model):
    allow_origins: list[_shaped(_RE_CORS_ORIGIN, "an origin: \"*\" or scheme://host[:port]",  # type: ignore[valid-type]
                                '"https://example.com"', 253)] | None = Field(default=None, max_length=64)
    allow_credentials: bool | None = None
    allow_methods: list[Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
                                "*"]] | None = Field(default=None, max_length=9)
    allow_headers: list[HeaderName] | None = Field(default=None, max_length=64)
    expose_headers: list[HeaderName] | None = Field(default=None, max_length=64)
    max_age: int = Field(default=5, ge=1, le=2147483647)

    @model_validator(mode="after")
    def _sets(self) -> HTTPCORSFilter:
        for name, items in (("allowOrigins", self.allow_origins), ("allowMethods", self.allow_methods),
                            ("allowHeaders", self.allow_headers), ("exposeHeaders", self.expose_headers)):
            _unique(items or [], lambda v: v, "value", name)
            if name != "exposeHeaders" and items and "*" in items and len(items) > 1:
                raise ValueError(f"{name} cannot contain '*' alongside other values")
        return self


#: The filter types of an HTTPRoute rule and the field each one takes.
HTTP_FILTER_FIELDS = {"RequestHeaderModifier": "request_header_modifier",
                      "ResponseHeaderModifier": "response_header_modifier", "RequestMirror": "request_mirror",
                      "RequestRedirect": "request_redirect", "URLRewrite": "url_rewrite",
                      "ExtensionRef": "extension_ref", "CORS": "cors"}


class HTTPRouteFilter(_Model):
    type: Literal["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect",
                  "URLRewrite", "ExtensionRef", "CORS"]
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = Field(default=None, alias="urlRewrite")
    extension_ref: LocalObjectReference | None = None
    cors: HTTPCORSFilter | None = None

    @model_validator(mode="after")
    def _matches_type(self) -> HTTPRouteFilter:
        _filter_matches_type(self, HTTP_FILTER_FIELDS)
        return self


def _filter_matches_type(f: BaseModel, fields: dict[str, str]) -> None:
    """The CRD's CEL rules: the field named by `type` is set, and no other filter field is."""
    aliases = {n: (type(f).model_fields[n].alias or n) for n in fields.values()}
    for typ, attr in fields.items():
        given = getattr(f, attr) is not None
        if given and f.type != typ:                       # type: ignore[attr-defined]
            raise ValueError(f"filter.{aliases[attr]} must be nil if the filter.type is not {typ}")
        if not given and f.type == typ:                   # type: ignore[attr-defined]
            raise ValueError(f"filter.{aliases[attr]} must be specified for {typ} filter.type")


def _filters_rules(filters: list[Any], *, http: bool) -> None:
    """The CEL rules on a filters list: each kind of filter at most once (mirrors may repeat), and
    not both RequestRedirect and URLRewrite."""
    kinds = [f.type for f in filters]
    once = ("CORS", "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite") if http \
        else ("RequestHeaderModifier", "ResponseHeaderModifier")
    for k in once:
        if kinds.count(k) > 1:
            raise ValueError(f"{k} filter cannot be repeated")
    if "RequestRedirect" in kinds and "URLRewrite" in kinds:
        raise ValueError("May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both")


class HTTPBackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1000000)
    filters: list[HTTPRouteFilter] | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _filters(self) -> HTTPBackendRef:
        _filters_rules(self.filters or [], http=True)
        return self


def _path_rules(typ: str, value: str) -> None:
    """The CEL rules of HTTPPathMatch for Exact and PathPrefix values."""
    if typ not in ("Exact", "PathPrefix"):
        return
    if not value.startswith("/"):
        raise ValueError(f"value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix'], "
                         f'found "{value}"')
    for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if bad in value:
            raise ValueError(f"must not contain '{bad}' when type one of ['Exact', 'PathPrefix'], found \"{value}\"")
    for bad in ("/..", "/."):
        if value.endswith(bad):
            raise ValueError(f"must not end with '{bad}' when type one of ['Exact', 'PathPrefix'], found \"{value}\"")
    if not _RE_PATH_CHARS.match(value):
        raise ValueError("must only contain valid characters (letters, digits, -/._~!$&'()*+,;=:@ and %XX) when type "
                         f"one of ['Exact', 'PathPrefix'], found \"{value}\"")


class HTTPPathMatch(_Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: Annotated[str, Field(max_length=1024)] = "/"

    @model_validator(mode="after")
    def _rules(self) -> HTTPPathMatch:
        _path_rules(self.type, self.value)
        return self


class HTTPHeaderMatch(_Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=4096)]


class HTTPQueryParamMatch(_Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=1024)]


class HTTPRouteMatch(_Model):
    path: HTTPPathMatch = Field(default_factory=HTTPPathMatch)
    headers: list[HTTPHeaderMatch] | None = Field(default=None, max_length=16)
    query_params: list[HTTPQueryParamMatch] | None = Field(default=None, max_length=16)
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] | None = None

    @model_validator(mode="after")
    def _keys(self) -> HTTPRouteMatch:
        _unique(self.headers or [], lambda h: h.name, "header name", "headers")
        _unique(self.query_params or [], lambda q: q.name, "query parameter name", "queryParams")
        return self


class HTTPRouteTimeouts(_Model):
    request: GatewayDuration | None = None
    backend_request: GatewayDuration | None = None

    @model_validator(mode="after")
    def _backend_not_longer(self) -> HTTPRouteTimeouts:
        if self.request and self.backend_request:
            req, back = duration_ns(self.request), duration_ns(self.backend_request)
            if req != 0 and back > req:
                raise ValueError(f"backendRequest timeout cannot be longer than request timeout "
                                 f"({self.backend_request} > {self.request})")
        return self


def _default_matches() -> list[HTTPRouteMatch]:
    return [HTTPRouteMatch()]


class HTTPRouteRule(_Model):
    name: _SectionName | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=_default_matches, max_length=64)
    filters: list[HTTPRouteFilter] | None = Field(default=None, max_length=16)
    backend_refs: list[HTTPBackendRef] | None = Field(default=None, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None

    @model_validator(mode="after")
    def _rules(self) -> HTTPRouteRule:
        _filters_rules(self.filters or [], http=True)
        if self.backend_refs and any(f.request_redirect is not None for f in self.filters or []):
            raise ValueError("RequestRedirect filter must not be used together with backendRefs")
        one_prefix = len(self.matches) == 1 and self.matches[0].path.type == "PathPrefix"
        for what, attr in (("RequestRedirect", "request_redirect"), ("URLRewrite", "url_rewrite")):
            for where, filters in [("", self.filters or [])] + [
                    ("Within backendRefs, when", b.filters or []) for b in self.backend_refs or []]:
                uses = any(getattr(f, attr) is not None and getattr(f, attr).path is not None
                           and getattr(f, attr).path.type == "ReplacePrefixMatch" for f in filters)
                if uses and not one_prefix:
                    raise ValueError(f"{where or 'When'} using {what} filter with path.replacePrefixMatch, exactly one "
                                     "PathPrefix match must be specified")
        return self


def _default_rules() -> list[HTTPRouteRule]:
    return [HTTPRouteRule()]


class HTTPRouteSpec(_Model):
    parent_refs: list[ParentReference] | None = Field(default=None, max_length=32)
    hostnames: list[GatewayHostname] | None = Field(default=None, max_length=16)
    rules: list[HTTPRouteRule] = Field(default_factory=_default_rules, min_length=1, max_length=16)

    @model_validator(mode="after")
    def _rules(self) -> HTTPRouteSpec:
        _parent_refs_rules(self.parent_refs or [])
        if sum(len(r.matches) for r in self.rules) > 128:
            raise ValueError("While 16 rules and 64 matches per rule are allowed, the total number of matches across "
                             "all rules in a route must be less than 128")
        return self


class KubernetesHTTPRoute(K8sObject):
    """Gateway API HTTPRoute (gateway.networking.k8s.io/v1): routes attached to a Gateway's listeners,
    or (parentRef a Service) to the mesh's traffic for that Service."""

    KIND = "HTTPRoute"
    GROUP = GATEWAY_API_GROUP
    spec: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec)
    status: dict[str, Any] | None = None


# GRPCRoute: routes gRPC calls by method (istiod matches on the path /<service>/<method>; see
# meshlab.gateway_api).
GRPC_FILTER_FIELDS = {"RequestHeaderModifier": "request_header_modifier",
                      "ResponseHeaderModifier": "response_header_modifier", "RequestMirror": "request_mirror",
                      "ExtensionRef": "extension_ref"}
_RE_GRPC_SERVICE = re.compile(r"^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$", re.IGNORECASE)
_RE_GRPC_METHOD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")


class GRPCRouteFilter(_Model):
    type: Literal["ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"]
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    extension_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _matches_type(self) -> GRPCRouteFilter:
        _filter_matches_type(self, GRPC_FILTER_FIELDS)
        return self


class GRPCMethodMatch(_Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: Annotated[str, Field(max_length=1024)] | None = None
    method: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _rules(self) -> GRPCMethodMatch:
        if self.service is None and self.method is None:
            raise ValueError("One or both of 'service' or 'method' must be specified")
        if self.type == "Exact" and self.service is not None and not _RE_GRPC_SERVICE.match(self.service):
            raise ValueError(f'service must only contain valid characters (a dotted name), found "{self.service}"')
        if self.type == "Exact" and self.method is not None and not _RE_GRPC_METHOD.match(self.method):
            raise ValueError(f'method must only contain valid characters (a name), found "{self.method}"')
        return self


class GRPCHeaderMatch(HTTPHeaderMatch):
    pass


class GRPCRouteMatch(_Model):
    method: GRPCMethodMatch | None = None
    headers: list[GRPCHeaderMatch] | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _keys(self) -> GRPCRouteMatch:
        _unique(self.headers or [], lambda h: h.name, "header name", "headers")
        return self


class GRPCBackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1000000)
    filters: list[GRPCRouteFilter] | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _filters(self) -> GRPCBackendRef:
        _filters_rules(self.filters or [], http=False)
        return self


class GRPCRouteRule(_Model):
    name: _SectionName | None = None
    matches: list[GRPCRouteMatch] | None = Field(default=None, max_length=64)
    filters: list[GRPCRouteFilter] | None = Field(default=None, max_length=16)
    backend_refs: list[GRPCBackendRef] | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _rules(self) -> GRPCRouteRule:
        _filters_rules(self.filters or [], http=False)
        return self


class GRPCRouteSpec(_Model):
    parent_refs: list[ParentReference] | None = Field(default=None, max_length=32)
    hostnames: list[GatewayHostname] | None = Field(default=None, max_length=16)
    rules: list[GRPCRouteRule] | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _rules(self) -> GRPCRouteSpec:
        _parent_refs_rules(self.parent_refs or [])
        if sum(len(r.matches or []) for r in self.rules or []) > 128:
            raise ValueError("While 16 rules and 64 matches per rule are allowed, the total number of matches across "
                             "all rules in a route must be less than 128")
        return self


class GRPCRoute(K8sObject):
    """Gateway API GRPCRoute (gateway.networking.k8s.io/v1): routes attached to a Gateway's listeners (or a
    Service, in the mesh) that match gRPC calls by service, method and headers."""

    KIND = "GRPCRoute"
    GROUP = GATEWAY_API_GROUP
    spec: GRPCRouteSpec = Field(default_factory=GRPCRouteSpec)
    status: dict[str, Any] | None = None


class RouteGroupKind(_Model):
    group: _Group = GATEWAY_API_GROUP
    kind: _Kind


class RouteNamespaces(_Model):
    from_: Literal["All", "Selector", "Same"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None


class AllowedRoutes(_Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] | None = Field(default=None, max_length=8)


class SecretObjectReference(_Model):
    group: _Group = ""
    kind: _Kind = "Secret"
    name: _ObjectName
    namespace: _RefNamespace | None = None


class ListenerTLSConfig(_Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: list[SecretObjectReference] | None = Field(default=None, max_length=64)
    options: dict[str, Annotated[str, Field(max_length=4096)]] | None = None

    @model_validator(mode="after")
    def _terminate(self) -> ListenerTLSConfig:
        if self.mode == "Terminate" and not self.certificate_refs and not self.options:
            raise ValueError("certificateRefs or options must be specified when mode is Terminate")
        return self


class Listener(_Model):
    name: _SectionName
    hostname: GatewayHostname | None = None
    port: _PortNumber
    protocol: _shaped(_RE_PROTOCOL, "a protocol (HTTP, HTTPS, TLS, TCP, UDP, or domain/NAME)",  # type: ignore[valid-type]
                      '"HTTP"', 255)
    tls: ListenerTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)


# The CRD's pattern as written: only its first alternative is anchored at the start and only its
# last at the end, so the API server accepts any type containing "IPAddress" or "NamedAddress".
_RE_ADDRESS_TYPE = re.compile(r"^Hostname|IPAddress|NamedAddress|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$")
_RE_IPV4_SLOPPY = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


def _is_ip(text: str) -> bool:
    """The schema's `format: ipv4` / `ipv6` as the API server checks them (kube-openapi's strfmt:
    Go's net.ParseIP, leading zeros allowed in IPv4, no IPv6 zone)."""
    m = _RE_IPV4_SLOPPY.match(text)
    if m:
        return all(int(part) <= 255 for part in m.groups())
    if ":" not in text or "%" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


class GatewayAddress(_Model):
    type: _shaped(_RE_ADDRESS_TYPE, "an address type: IPAddress, Hostname, NamedAddress or domain/name",  # type: ignore[valid-type]
                  '"IPAddress"', 253) = "IPAddress"
    value: Annotated[str, Field(max_length=253)] | None = None

    @model_validator(mode="after")
    def _value_by_type(self) -> GatewayAddress:
        if self.type == "IPAddress" and self.value is not None and not _is_ip(self.value):
            raise ValueError(f'value "{self.value}" is not an IPv4 or IPv6 address (type IPAddress)')
        if self.type == "Hostname" and self.value is not None and not _RE_GW_HOSTNAME.match(self.value):
            raise ValueError("Hostname value must be empty or contain only valid characters (matching "
                             r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)")
        return self


class KubernetesGatewaySpec(_Model):
    gateway_class_name: _ObjectName
    listeners: list[Listener] = Field(min_length=1, max_length=64)
    addresses: list[GatewayAddress] | None = Field(default=None, max_length=16)
    infrastructure: dict[str, Any] | None = None
    allowed_listeners: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _listener_rules(self) -> KubernetesGatewaySpec:
        _unique(self.listeners, lambda lst: lst.name, "listener name", "listeners")
        seen_values: set[tuple[str, str]] = set()
        for i, a in enumerate(self.addresses or []):
            if a.type in ("IPAddress", "Hostname") and a.value is not None:
                if (a.type, a.value) in seen_values:
                    raise ValueError(f"addresses[{i}]: {a.type} values must be unique ({a.value!r} is given twice)")
                seen_values.add((a.type, a.value))
        seen: dict[tuple[int, str, str | None], str] = {}
        for lst in self.listeners:
            if lst.protocol in ("TCP", "UDP") and lst.hostname:
                raise ValueError(f"listener {lst.name}: hostname must not be specified for protocols ['TCP', 'UDP']")
            if lst.protocol in ("HTTP", "TCP", "UDP") and lst.tls is not None:
                raise ValueError(f"listener {lst.name}: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
            if lst.protocol == "HTTPS" and lst.tls is not None and lst.tls.mode != "Terminate":
                raise ValueError(f"listener {lst.name}: tls mode must be Terminate for protocol HTTPS")
            if lst.protocol == "TLS" and lst.tls is None:
                raise ValueError(f"listener {lst.name}: tls mode must be set for protocol TLS")
            key = (lst.port, lst.protocol, lst.hostname)
            if key in seen:
                raise ValueError(f"listeners {seen[key]} and {lst.name}: Combination of port, protocol and hostname "
                                 "must be unique for each listener")
            seen[key] = lst.name
        return self


class KubernetesGateway(K8sObject):
    """Gateway API Gateway (gateway.networking.k8s.io/v1). Istio (class `istio`) deploys an Envoy for
    each one, with a Service `<name>-istio`; its listeners become that Envoy's listeners."""

    KIND = "Gateway"
    GROUP = GATEWAY_API_GROUP
    spec: KubernetesGatewaySpec
    status: dict[str, Any] | None = None


class GatewayClassSpec(_Model):
    controller_name: _shaped(_RE_CONTROLLER, "a controller name: domain/path",  # type: ignore[valid-type]
                             '"istio.io/gateway-controller"', 253)
    parameters_ref: dict[str, Any] | None = None
    description: Annotated[str, Field(max_length=64)] | None = None


class GatewayClass(K8sObject):
    KIND = "GatewayClass"
    GROUP = GATEWAY_API_GROUP
    NAMESPACED = False
    spec: GatewayClassSpec
    status: dict[str, Any] | None = None


class ReferenceGrantFrom(_Model):
    group: _Group
    kind: _Kind
    namespace: _RefNamespace


class ReferenceGrantTo(_Model):
    group: _Group
    kind: _Kind
    name: _ObjectName | None = None


class ReferenceGrantSpec(_Model):
    from_: list[ReferenceGrantFrom] = Field(alias="from", min_length=1, max_length=16)
    to: list[ReferenceGrantTo] = Field(min_length=1, max_length=16)


class ReferenceGrant(K8sObject):
    """Gateway API ReferenceGrant: lets objects of `from` namespaces refer to objects of its own."""

    KIND = "ReferenceGrant"
    GROUP = GATEWAY_API_GROUP
    spec: ReferenceGrantSpec
    status: dict[str, Any] | None = None


#: The Gateway API kinds meshlab models, and the versions the CRDs (v1.6.0) serve for each.
GATEWAY_API_KINDS: dict[type[K8sObject], tuple[str, ...]] = {
    KubernetesGateway: ("v1", "v1beta1"), KubernetesHTTPRoute: ("v1", "v1beta1"), GRPCRoute: ("v1",),
    ReferenceGrant: ("v1", "v1beta1"), GatewayClass: ("v1", "v1beta1"),
}


class UnmodelledObject(K8sObject):
    """A kind meshlab does not model (ServiceAccount, AuthorizationPolicy, …): kept and reported."""

    model_config = ConfigDict(extra="allow")
    NAMESPACED = True

    @property
    def group(self) -> str:
        return api_group(self.api_version)


ISTIO_NETWORKING_VERSIONS = ("v1", "v1beta1", "v1alpha3")

#: (apiVersion, kind) → model. Istio kinds are accepted in each served version.
MODELLED: dict[tuple[str, str], type[K8sObject]] = {
    ("v1", "Namespace"): Namespace,
    ("v1", "Service"): Service,
    ("v1", "Pod"): Pod,
    ("apps/v1", "Deployment"): Deployment,
    **{
        (f"networking.istio.io/{v}", cls.KIND): cls
        for v in ISTIO_NETWORKING_VERSIONS
        for cls in (VirtualService, DestinationRule, Gateway, ServiceEntry)
    },
    **{(f"{GATEWAY_API_GROUP}/{v}", cls.KIND): cls for cls, versions in GATEWAY_API_KINDS.items() for v in versions},
}

__all__ = [
    "K8sObject", "ObjectKey", "api_group", "Source", "ObjectMeta", "Namespace", "Service", "ServicePort", "Pod",
    "PodSpec",
    "Container", "ContainerPort", "Deployment", "VirtualService", "HTTPRoute", "HTTPMatchRequest",
    "HTTPRouteDestination", "Destination", "StringMatch", "DestinationRule", "Subset",
    "TrafficPolicy", "LoadBalancerSettings", "ConnectionPoolSettings", "OutlierDetection",
    "PortTrafficPolicy", "Gateway", "Server", "ServiceEntry", "UnmodelledObject", "MODELLED",
    "GATEWAY_API_GROUP", "KubernetesGateway", "KubernetesHTTPRoute", "GRPCRoute", "ReferenceGrant", "GatewayClass",
    "Listener", "ParentReference", "HTTPRouteRule", "HTTPRouteMatch", "HTTPBackendRef", "HTTPRouteFilter",
]
