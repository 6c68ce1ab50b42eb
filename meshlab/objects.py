"""Typed Kubernetes and Istio objects, so the rest of meshlab never digs in raw dicts.

Attribute names are snake_case (`vs.spec.http[0].route[0].destination.host`); the YAML names are the
camelCase aliases, exactly as `kubectl apply` takes them. Models are strict (no "80" for 80) and
forbid unknown fields, as the API server's strict field validation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

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
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name): what makes two objects 'the same object' in one cluster."""
        return (self.kind, self.metadata.namespace or "", self.metadata.name)

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


class UnmodelledObject(K8sObject):
    """A kind meshlab does not model (ServiceAccount, AuthorizationPolicy, …): kept and reported."""

    model_config = ConfigDict(extra="allow")
    NAMESPACED = True


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
}

__all__ = [
    "K8sObject", "Source", "ObjectMeta", "Namespace", "Service", "ServicePort", "Pod", "PodSpec",
    "Container", "ContainerPort", "Deployment", "VirtualService", "HTTPRoute", "HTTPMatchRequest",
    "HTTPRouteDestination", "Destination", "StringMatch", "DestinationRule", "Subset",
    "TrafficPolicy", "LoadBalancerSettings", "ConnectionPoolSettings", "OutlierDetection",
    "PortTrafficPolicy", "Gateway", "Server", "ServiceEntry", "UnmodelledObject", "MODELLED",
]
