"""What the API server checks, with Istio's CRDs installed: served kinds and versions, names,
labels, and the per-kind rules a field type alone cannot say (a Service's ports, a Deployment's
selector, a pod spec's fields), written from the Kubernetes API reference (v1.33) and
k8s.io/kubernetes pkg/apis/core/validation/validation.go (v1.36: ValidateService,
validateClientIPAffinityConfig, ValidateServiceClusterIPsRelatedFields).

Plus one rule of the lab's own: a Service port or a containerPort on a port Istio's sidecar owns
in every pod (`ISTIO_RESERVED_PORTS`), or on the demo app's control port, is refused — on a real
cluster such a port collides with istio-proxy in the pod's network namespace.

Every pattern is matched whole (`fullmatch`, `\\Z`): Python's `$` also matches before a final
newline, so `name: "web\n"` passed where Go's (and so the API server's) `$` refuses it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from ..app import CONTROL_PORT
from ..names import labels_match
from ..objects import MODELLED, Deployment, Gateway, K8sObject, Namespace, Pod, Service, ServiceEntry, UnmodelledObject
from .messages import Where, clip, describe, format_path, or_, unknown_field_message

# API groups meshlab knows the served versions of: a known kind in another version, or an unknown
# version of a known group, is an error (as "no matches for kind" is on a real cluster). Kinds in
# groups not listed here (other CRDs) are kept as unmodelled.
SERVED_VERSIONS: dict[str, tuple[str, ...]] = {
    "": ("v1",),
    "apps": ("v1",),
    "batch": ("v1",),
    "autoscaling": ("v1", "v2"),
    "policy": ("v1",),
    "networking.k8s.io": ("v1",),
    "rbac.authorization.k8s.io": ("v1",),
    "apiextensions.k8s.io": ("v1",),
    "admissionregistration.k8s.io": ("v1",),
    "storage.k8s.io": ("v1",),
    "discovery.k8s.io": ("v1",),
    "coordination.k8s.io": ("v1",),
    "scheduling.k8s.io": ("v1",),
    "networking.istio.io": ("v1", "v1beta1", "v1alpha3"),
    "security.istio.io": ("v1", "v1beta1"),
    "telemetry.istio.io": ("v1", "v1alpha1"),
    "extensions.istio.io": ("v1alpha1",),
    # the Gateway API's standard channel (v1.6.0 CRDs, which Istio's go.mod requires) serves these
    "gateway.networking.k8s.io": ("v1", "v1beta1"),
    "extensions": (),
}

# Every kind of the groups a course manifest uses, so a misspelt kind is an error ("no matches for
# kind" on a real cluster), not a silently kept unmodelled object. Other groups are not checked.
KINDS: dict[str, frozenset[str]] = {
    "": frozenset("""Binding ComponentStatus ConfigMap Endpoints Event LimitRange Namespace Node PersistentVolume
        PersistentVolumeClaim Pod PodTemplate ReplicationController ResourceQuota Secret Service
        ServiceAccount""".split()),
    "apps": frozenset("ControllerRevision DaemonSet Deployment ReplicaSet StatefulSet".split()),
    "networking.istio.io": frozenset("""DestinationRule EnvoyFilter Gateway ProxyConfig ServiceEntry Sidecar
        VirtualService WorkloadEntry WorkloadGroup""".split()),
    "security.istio.io": frozenset("AuthorizationPolicy PeerAuthentication RequestAuthentication".split()),
    "telemetry.istio.io": frozenset({"Telemetry"}),
    "extensions.istio.io": frozenset({"TrafficExtension", "WasmPlugin"}),
    "gateway.networking.k8s.io": frozenset("""BackendTLSPolicy GatewayClass Gateway GRPCRoute HTTPRoute ListenerSet
        ReferenceGrant TCPRoute TLSRoute UDPRoute""".split()),
}

# Field names of the big Kubernetes structs meshlab keeps open (PodSpec, Container), written from
# the Kubernetes API reference (v1.33), so a typo such as `contianers` is caught, not kept.
POD_SPEC_FIELDS = frozenset("""
activeDeadlineSeconds affinity automountServiceAccountToken containers dnsConfig dnsPolicy
enableServiceLinks ephemeralContainers hostAliases hostIPC hostNetwork hostPID hostUsers hostname
hostnameOverride imagePullSecrets initContainers nodeName nodeSelector os overhead preemptionPolicy
priority priorityClassName readinessGates resourceClaims resources restartPolicy runtimeClassName
schedulerName schedulingGates securityContext serviceAccount serviceAccountName setHostnameAsFQDN
shareProcessNamespace subdomain terminationGracePeriodSeconds tolerations topologySpreadConstraints
volumes""".split())
CONTAINER_FIELDS = frozenset("""
args command env envFrom image imagePullPolicy lifecycle livenessProbe name ports readinessProbe
resizePolicy resources restartPolicy restartPolicyRules securityContext startupProbe stdin stdinOnce
terminationMessagePath terminationMessagePolicy tty volumeDevices volumeMounts workingDir""".split())

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")

#: Ports Istio's data plane owns in every pod with a sidecar (istio/istio
#: pilot/cmd/pilot-agent/status/server.go `istioReservedPorts`); an app port there collides with
#: istio-proxy in the pod's network namespace, and istiod builds no listener for a Service port
#: on 15001/15006/15021/15090 (pilot/pkg/model/context.go `conflictWithReservedListener`).
ISTIO_RESERVED_PORTS = {
    15000: "Envoy admin", 15001: "outbound traffic capture", 15004: "pilot debug",
    15006: "inbound traffic capture", 15008: "HBONE tunnel", 15020: "pilot-agent status / merged Prometheus",
    15021: "Envoy health", 15053: "DNS proxy", 15090: "Envoy Prometheus",
}
#: …and the ports meshlab's own pods use besides the app's: the demo app's control port.
LAB_RESERVED_PORTS = {**ISTIO_RESERVED_PORTS, CONTROL_PORT: "the demo app's control port (knobs, readiness)"}
#: Kubernetes' most for sessionAffinityConfig.clientIP.timeoutSeconds (core.MaxClientIPServiceAffinitySeconds).
MAX_AFFINITY_SECONDS = 86400


def model_for(where: Where, api_version: str, kind: str) -> type[K8sObject] | None:
    """The model of (apiVersion, kind); UnmodelledObject for a kind meshlab keeps as is; None (with
    the problem recorded) for what the API server would not serve: "no matches for kind"."""
    cls = MODELLED.get((api_version, kind))
    if cls is not None:
        return cls
    group, _, version = api_version.rpartition("/")
    if api_version.count("/") > 1 or not version or (group == "" and "/" in api_version):
        where.problem(["apiVersion"], f'{clip(api_version)} is not an apiVersion; expected "group/version" '
                      f'(apps/v1) or "v1"')
        return None
    served_for_kind = sorted(av for av, k in MODELLED if k == kind)
    same_group = [av for av in served_for_kind if av.rpartition("/")[0] == group]
    served_for_kind = same_group or served_for_kind
    if served_for_kind:
        where.problem(["apiVersion"], f'{kind} is not served in {clip(api_version)}; '
                      f"use {or_(served_for_kind)}")
        return None
    if group in KINDS and kind not in KINDS[group]:
        where.problem(["kind"], _unknown_kind_message(kind, group))
        return None
    if group in SERVED_VERSIONS and version not in SERVED_VERSIONS[group]:
        served = SERVED_VERSIONS[group]
        use = f"; this group serves {or_([f'{group}/{v}' if group else v for v in served])}" if served else \
            "; this group is no longer served by Kubernetes"
        where.problem(["apiVersion"], f'{clip(api_version)} is not a version the API server knows{use}')
        return None
    return UnmodelledObject


def _unknown_kind_message(kind: str, group: str) -> str:
    where = f"the {group} group" if group else "the core group (apiVersion v1)"
    msg = f'no kind {clip(kind)} in {where}'
    known = sorted(KINDS[group])
    close = [k for k in known if k.lower() == kind.lower()] or difflib.get_close_matches(kind, known, n=1, cutoff=0.7)
    if close:
        return msg + f' — did you mean "{close[0]}"?'
    elsewhere = [g for g, kinds in KINDS.items() if kind in kinds]
    if elsewhere:
        api = "v1" if elsewhere[0] == "" else f"{elsewhere[0]}/…"
        return msg + f"; {kind} is in apiVersion {api}"
    return msg


def check_metadata(cls: type[K8sObject], data: dict[str, Any], where: Where) -> None:
    """Names and labels as the API server checks them; on raw data, so they show up with type errors."""
    p = where.problem
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        return
    name, namespace, labels = meta.get("name"), meta.get("namespace"), meta.get("labels")
    if isinstance(name, str):
        if cls is Namespace:
            _check_name(name, DNS1123_LABEL, 63, "an RFC 1123 label", p)
        elif cls is Service:
            _check_name(name, DNS1035_LABEL, 63, "an RFC 1035 label (it must start with a letter)", p)
        elif cls is not UnmodelledObject:
            _check_name(name, DNS1123_SUBDOMAIN, 253, "an RFC 1123 subdomain", p)
        elif not name or name in (".", "..") or "/" in name or "%" in name:
            p(["metadata", "name"], f'{clip(name)} is not a valid name (it may not be empty, ".", ".." or contain "/" or "%")')
    if isinstance(namespace, str) and namespace and cls.NAMESPACED and not valid(namespace, DNS1123_LABEL, 63):
        p(["metadata", "namespace"], f'{clip(namespace)} is not a valid namespace name: lower case letters, '
          f"digits and '-', starting and ending with a letter or digit, at most 63 characters")
    if isinstance(labels, dict):
        _check_labels({k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)},
                      ["metadata", "labels"], p)


def check_object(obj: K8sObject, data: dict[str, Any], where: Where) -> None:
    """What the API server checks that a per-field type cannot say: cross-field and per-kind rules
    (with Istio's CRDs installed: a Gateway server's or ServiceEntry port's name is required)."""
    p = where.problem
    if isinstance(obj, Service):
        _check_service(obj, p)
    elif isinstance(obj, Deployment):
        _check_labels(obj.spec.template.metadata.labels, ["spec", "template", "metadata", "labels"], p)
        _check_labels(obj.spec.selector.match_labels, ["spec", "selector", "matchLabels"], p)
        sel = obj.spec.selector.match_labels
        if not sel and not obj.spec.selector.match_expressions:
            p(["spec", "selector"], "an empty selector is invalid for a Deployment: set matchLabels")
        elif not labels_match(sel, obj.spec.template.metadata.labels):
            p(["spec", "template", "metadata", "labels"],
              f"selector does not match template labels: the selector {sel} needs every one of these labels "
              f"on the pod template (found {obj.spec.template.metadata.labels})")
        _check_pod_spec(data.get("spec", {}).get("template", {}).get("spec", {}), ["spec", "template", "spec"], p)
    elif isinstance(obj, Pod):
        _check_pod_spec(data.get("spec", {}), ["spec"], p)
    elif isinstance(obj, Gateway):
        for i, server in enumerate(obj.spec.servers):
            if server.port.name is None:
                p(["spec", "servers", i, "port", "name"], "required field name is missing")
    elif isinstance(obj, ServiceEntry):
        for i, port in enumerate(obj.spec.ports):
            if port.name is None:
                p(["spec", "ports", i, "name"], "required field name is missing")


def valid(value: str, pattern: re.Pattern[str], max_len: int) -> bool:
    return len(value) <= max_len and bool(pattern.fullmatch(value))


def _check_name(name: str, pattern: re.Pattern[str], max_len: int, what: str, p: Any) -> None:
    if not valid(name, pattern, max_len):
        p(["metadata", "name"], f"{clip(name)} is not a valid name: it must be {what} — lower case letters, digits "
          f"and '-'{', and .' if 'subdomain' in what else ''}, starting and ending with a letter or digit, "
          f"at most {max_len} characters")


def _check_labels(labels: dict[str, str], path: list[str | int], p: Any) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not valid(name, LABEL_NAME, 63) or (prefix and not valid(prefix, DNS1123_SUBDOMAIN, 253)) \
                or key.count("/") > 1:
            p([*path, key], f'{clip(key)} is not a valid label key: a name of at most 63 letters, digits, '
              f"'-', '_' or '.' (starting and ending with a letter or digit), optionally prefixed by a "
              f"DNS subdomain and '/'", at_key=True)
        if value and not valid(value, LABEL_NAME, 63):
            p([*path, key], f'{clip(value)} is not a valid label value: at most 63 letters, digits, '
              f"'-', '_' or '.', starting and ending with a letter or digit (or empty)")


def _check_service(svc: Service, p: Any) -> None:
    spec = svc.spec
    if not spec.ports and spec.type != "ExternalName" and not spec.headless:
        p(["spec", "ports"], "required: a Service needs at least one port (only headless and ExternalName "
          "Services may have none)", )
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[int, str], int] = {}
    for i, port in enumerate(spec.ports):
        if len(spec.ports) > 1 and not port.name:
            p(["spec", "ports", i], "a Service with more than one port must name every port (and Istio picks "
              "the protocol from names like http-web)")
        if port.name is not None:
            if not valid(port.name, DNS1123_LABEL, 63):
                p(["spec", "ports", i, "name"], f'{clip(port.name)} is not a valid port name: an RFC 1123 label '
                  f"(lower case letters, digits and '-')")
            if port.name in seen_names:
                p(["spec", "ports", i, "name"], f'duplicate port name {clip(port.name)} (also spec.ports[{seen_names[port.name]}])')
            seen_names.setdefault(port.name, i)
        if (port.port, port.protocol) in seen_ports:
            p(["spec", "ports", i, "port"], f"duplicate port {port.port}/{port.protocol} "
              f"(also spec.ports[{seen_ports[(port.port, port.protocol)]}])")
        seen_ports.setdefault((port.port, port.protocol), i)
        tp = port.target_port
        if isinstance(tp, int) and tp != 0 and not 1 <= tp <= 65535:   # 0: defaulted to port
            p(["spec", "ports", i, "targetPort"], f"must be between 1 and 65535, found {tp}")
        if isinstance(tp, str) and not (valid(tp, IANA_SVC_NAME, 15) and "--" not in tp
                                        and any(c.isalpha() for c in tp)):
            p(["spec", "ports", i, "targetPort"], f'{clip(tp)} is neither a port number nor a valid port name '
              f"(at most 15 lower case letters, digits and '-', with at least one letter)")
        if not _istios_own(svc.labels):
            for field, number in (("port", port.port), ("targetPort", tp)):
                if isinstance(number, int) and number in LAB_RESERVED_PORTS:
                    p(["spec", "ports", i, field], _reserved(number))
                    break
    _check_cluster_ips(svc, p)
    _check_session_affinity(svc, p)


def _istios_own(labels: dict[str, str]) -> bool:
    """Istio's own workloads (its gateways: `istio: ingressgateway`) use Istio's ports on purpose."""
    return "istio" in labels


def _reserved(port: int) -> str:
    return (f"port {port} is reserved: {LAB_RESERVED_PORTS[port]}. In a pod with Istio's sidecar an app cannot "
            f"use it (Istio reserves 15000-15090 for its data plane, see ISTIO_RESERVED_PORTS); pick another "
            f"port, e.g. 8080")


def _check_cluster_ips(svc: Service, p: Any) -> None:
    """`clusterIP` is empty, "None" or an IP address, and `clusterIPs` starts with it
    (ValidateServiceClusterIPsRelatedFields; an ExternalName Service is not checked)."""
    spec = svc.spec
    if spec.type == "ExternalName":
        return
    ip = spec.cluster_ip
    if ip not in (None, "", "None") and not is_ip_address(ip):
        p(["spec", "clusterIP"], f"{clip(ip)} is not an IP address: clusterIP is an IP address, \"None\" for a "
          f"headless Service, or left out to have one allocated")
    ips = spec.cluster_ips or []
    for i, each in enumerate(ips):
        if not (each == "None" and i == 0) and not is_ip_address(each):
            p(["spec", "clusterIPs", i], f"{clip(each)} is not an IP address")
    if ips and ip and ips[0] != ip:
        p(["spec", "clusterIPs"], f"first value must match `clusterIP` ({clip(ip)})")
    if ips and not ip:
        p(["spec", "clusterIPs"], "must be empty when `clusterIP` is not specified")


def is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 address as the API server's IsValidIPForLegacyField takes one."""
    import ipaddress
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:          # the legacy field also takes IPv4 with leading zeros (010.0.0.1)
        parts = text.split(".")
        return len(parts) == 4 and all(x.isdigit() and x.isascii() and int(x) <= 255 for x in parts)


def _check_session_affinity(svc: Service, p: Any) -> None:
    """sessionAffinityConfig.clientIP.timeoutSeconds is 1..86400 with ClientIP, and the config is
    not set at all with None (validateClientIPAffinityConfig, validateAffinityTimeout)."""
    cfg = svc.spec.session_affinity_config
    if cfg is None:
        return
    if svc.spec.session_affinity == "None":
        p(["spec", "sessionAffinityConfig"], "must not be set when sessionAffinity is None (set sessionAffinity: "
          "ClientIP, or leave sessionAffinityConfig out)")
        return
    client = cfg.get("clientIP")
    if not isinstance(client, dict):
        p(["spec", "sessionAffinityConfig", "clientIP"], "required when sessionAffinity is ClientIP")
        return
    t = client.get("timeoutSeconds")
    path = ["spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"]
    if t is None:
        return                                  # defaulted to 10800 (3 hours)
    if not isinstance(t, int) or isinstance(t, bool):
        p(path, f"expected an integer, found {describe(t)}")
    elif not 0 < t <= MAX_AFFINITY_SECONDS:
        p(path, f"must be greater than 0 and at most {MAX_AFFINITY_SECONDS} (one day), found {t}")


def _check_pod_spec(spec: Any, path: list[str | int], p: Any) -> None:
    if not isinstance(spec, dict):
        return
    for key in spec:
        if key not in POD_SPEC_FIELDS:
            p([*path, key], unknown_field_message(key, sorted(POD_SPEC_FIELDS)), at_key=True)
    names: dict[str, str] = {}
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(group) or []):
            if not isinstance(c, dict):
                continue
            for key in c:
                if key not in CONTAINER_FIELDS:
                    p([*path, group, i, key], unknown_field_message(key, sorted(CONTAINER_FIELDS)), at_key=True)
            name = c.get("name")
            if isinstance(name, str):
                if not valid(name, DNS1123_LABEL, 63):
                    p([*path, group, i, "name"], f'{clip(name)} is not a valid container name: an RFC 1123 label')
                elif name in names:
                    p([*path, group, i, "name"], f'duplicate container name {clip(name)} (also {names[name]})')
                names.setdefault(name, format_path([*path, group, i]))
            for j, var in enumerate(c.get("env") or []):
                if not isinstance(var, dict):
                    continue
                value = var.get("value")
                if value is not None and not isinstance(value, str):
                    p([*path, group, i, "env", j, "value"], f"expected a string, found {describe(value)} — environment "
                      f'values are strings: quote it ({clip(str(value).lower() if isinstance(value, bool) else str(value))})')
                if not isinstance(var.get("name"), str) or not var.get("name"):
                    p([*path, group, i, "env", j, "name"], "required field name is missing", )
            for j, port in enumerate(c.get("ports") or []):
                number = port.get("containerPort") if isinstance(port, dict) else None
                if isinstance(number, int) and number in LAB_RESERVED_PORTS and c.get("name") != "istio-proxy":
                    p([*path, group, i, "ports", j, "containerPort"], _reserved(number))
                pname = port.get("name") if isinstance(port, dict) else None
                if isinstance(pname, str) and not (valid(pname, IANA_SVC_NAME, 15) and "--" not in pname
                                                   and any(ch.isalpha() for ch in pname)):
                    p([*path, group, i, "ports", j, "name"], f'{clip(pname)} is not a valid port name: at most 15 lower '
                      f"case letters, digits and '-', with at least one letter")
