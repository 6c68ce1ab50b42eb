"""Every code `meshlab.analyze` reports, with its level: Istio's own (IST) and meshlab's (MLB).

IST codes, names and levels are those of Istio's message table (pkg/config/analysis/msg/messages.yaml),
for the analyzers meshlab implements, as the newest Istio source the Go module proxy serves has it
(the 1.31 line, `backends.kind.config.ISTIO_SOURCE`; no 1.32 source is served, so the table of the
release the course pins, 1.32.0, is not checked); a test compares them. A finding takes its level
from here, so a rule cannot drift from istioctl's. MLB codes are
meshlab's own: traps Envoy acts on that `istioctl analyze` stays silent about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["Error", "Warning", "Info"]
LEVEL_ORDER: dict[str, int] = {"Error": 0, "Warning": 1, "Info": 2}


@dataclass(frozen=True)
class Code:
    level: Level
    name: str       # Istio's message name (IST), or what the trap is (MLB)


#: The istioctl analyzer messages meshlab reproduces (messages.yaml, see above).
ISTIO: dict[str, Code] = {
    "IST0101": Code("Error", "ReferencedResourceNotFound"),
    "IST0106": Code("Error", "SchemaValidationError"),
    "IST0109": Code("Error", "ConflictingMeshGatewayVirtualServiceHosts"),
    "IST0112": Code("Error", "VirtualServiceDestinationPortSelectorRequired"),
    "IST0118": Code("Info", "PortNameIsNotUnderNamingConvention"),
    "IST0130": Code("Warning", "VirtualServiceUnreachableRule"),
    "IST0131": Code("Info", "VirtualServiceIneffectiveMatch"),
    "IST0132": Code("Warning", "VirtualServiceHostNotFoundInGateway"),
    "IST0140": Code("Warning", "IngressRouteRulesNotAffected"),
    "IST0150": Code("Warning", "ExternalNameServiceTypeInvalidPortName"),
    "IST0162": Code("Warning", "GatewayPortNotDefinedOnService"),
    "IST0171": Code("Warning", "NegativeConditionStatus"),
    "IST0173": Code("Error", "DestinationRuleSubsetNotSelectPods"),
    "IST0174": Code("Warning", "UnknownDestinationRuleHost"),
}

#: meshlab's own findings: what each means.
MESHLAB: dict[str, Code] = {
    "MLB0001": Code("Warning", "VirtualService rule after a catch-all match can never match"),
    "MLB0002": Code("Warning", "VirtualService http rules ignored on a port Istio treats as TCP"),
    "MLB0003": Code("Warning", "Fault injection without percentage never fires"),
    "MLB0004": Code("Warning", "Host like name.namespace is not expanded by Istio"),
    "MLB0005": Code("Warning", "Mesh VirtualService host matches no Service or ServiceEntry"),
    "MLB0006": Code("Warning", "DestinationRule subset has no ready endpoint behind its Service"),
    "MLB0007": Code("Warning", "Service has no ready endpoint"),
    "MLB0008": Code("Info", "VirtualService bound only to gateways is ignored by sidecars"),
    "MLB0009": Code("Info", "Weight of a single destination is ignored"),
    "MLB0010": Code("Info", "perTryTimeout not shorter than the route timeout"),
    "MLB0011": Code("Warning", "Subset defined only in a DestinationRule no client sidecar will use"),
    "MLB0012": Code("Warning", "Service targetPort matches no container port of its pods"),
}

CODES: dict[str, Code] = {**ISTIO, **MESHLAB}


def level_of(code: str) -> Level:
    """The level a finding with `code` is reported at (KeyError for a code not in the table)."""
    return CODES[code].level
