"""kind-config.yaml is a valid kind v1alpha4 Cluster, and fits the course.

The schema is meshlab's own, written from kind's API types (sigs.k8s.io/kind
pkg/apis/config/v1alpha4/types.go: Cluster, Node, Networking, PortMapping, Mount, PatchJSON6902)
and the checks kind makes when it loads a config (pkg/internal/apis/config/encoding/load.go decodes
strictly — unknown fields are errors; pkg/internal/apis/config/validate.go: cluster name pattern,
node roles, ports, listen addresses, duplicate port mappings, at least one control-plane node).
"""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path

import jsonschema
import pytest
import yaml

from meshlab.backends.kind import config as _kind

CONFIG = Path(__file__).resolve().parent.parent / "kind-config.yaml"

_PORT = {"type": "integer", "minimum": -1, "maximum": 65535}   # validatePort: -1 / 0 mean "random"
_PATCH6902 = {"type": "object", "additionalProperties": False, "required": ["group", "version", "kind", "patch"],
              "properties": {k: {"type": "string"} for k in ("group", "version", "kind", "patch")}}
KIND_V1ALPHA4_CLUSTER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "apiVersion"],
    "properties": {
        "kind": {"const": "Cluster"},
        "apiVersion": {"const": "kind.x-k8s.io/v1alpha4"},
        "name": {"type": "string", "pattern": "^[a-z0-9.-]+$"},
        "nodes": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "role": {"enum": ["control-plane", "worker"]},
                "image": {"type": "string", "minLength": 1},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extraMounts": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"containerPath": {"type": "string"}, "hostPath": {"type": "string"},
                                   "readOnly": {"type": "boolean"}, "selinuxRelabel": {"type": "boolean"},
                                   "propagation": {"enum": ["None", "HostToContainer", "Bidirectional"]}}}},
                "extraPortMappings": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"containerPort": _PORT, "hostPort": _PORT,
                                   "listenAddress": {"type": "string"},
                                   "protocol": {"enum": ["TCP", "UDP", "SCTP"]}}}},
                "kubeadmConfigPatches": {"type": "array", "items": {"type": "string"}},
                "kubeadmConfigPatchesJSON6902": {"type": "array", "items": _PATCH6902},
            },
        }},
        "networking": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "ipFamily": {"enum": ["ipv4", "ipv6", "dual"]},
                "apiServerPort": _PORT,
                "apiServerAddress": {"type": "string"},
                "podSubnet": {"type": "string"},
                "serviceSubnet": {"type": "string"},
                "disableDefaultCNI": {"type": "boolean"},
                "kubeProxyMode": {"enum": ["iptables", "ipvs", "nftables", "none"]},
                "dnsSearch": {"type": ["array", "null"], "items": {"type": "string"}},
            },
        },
        "featureGates": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "runtimeConfig": {"type": "object", "additionalProperties": {"type": "string"}},
        "kubeadmConfigPatches": {"type": "array", "items": {"type": "string"}},
        "kubeadmConfigPatchesJSON6902": {"type": "array", "items": _PATCH6902},
        "containerdConfigPatches": {"type": "array", "items": {"type": "string"}},
        "containerdConfigPatchesJSON6902": {"type": "array", "items": {"type": "string"}},
    },
}


def problems(cfg: dict) -> list[str]:
    """What kind would refuse: schema errors plus validate.go's cross-field checks."""
    out = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
           for e in jsonschema.Draft202012Validator(KIND_V1ALPHA4_CLUSTER).iter_errors(cfg)]
    nodes = cfg.get("nodes") or [{"role": "control-plane"}]   # kind's default: one control-plane
    if not any(n.get("role", "control-plane") == "control-plane" for n in nodes):
        out.append("must have at least one control-plane node")
    for i, n in enumerate(nodes):
        seen: set[tuple[str, int, str]] = set()
        for m in n.get("extraPortMappings") or []:
            addr = m.get("listenAddress", "0.0.0.0")
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                out.append(f"nodes/{i}: invalid listen address: {addr}")
                continue
            if m.get("hostPort", 0) in (0, -1):
                continue
            key = (addr, m["hostPort"], m.get("protocol", "TCP"))
            if key in seen:
                out.append(f"nodes/{i}: port mapping with same listen address, port and protocol already configured")
            seen.add(key)
    return out


@pytest.fixture(scope="module")
def cfg() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_kind_config_is_a_valid_v1alpha4_cluster(cfg):
    assert problems(cfg) == []


def test_the_schema_catches_what_kind_refuses(cfg):
    bad = copy.deepcopy(cfg)
    bad["nodes"][0]["extraPortMapping"] = []            # typo: strict decoding refuses unknown fields
    assert any("extraPortMapping" in p for p in problems(bad))
    bad = copy.deepcopy(cfg)
    bad["nodes"][0]["role"] = "master"
    assert any("master" in p for p in problems(bad))
    bad = copy.deepcopy(cfg)
    bad["nodes"][0]["extraPortMappings"].append(dict(bad["nodes"][0]["extraPortMappings"][0]))
    assert any("already configured" in p for p in problems(bad))
    bad = copy.deepcopy(cfg)
    bad["nodes"][0]["extraPortMappings"][0]["hostPort"] = 70000
    assert problems(bad)
    bad = copy.deepcopy(cfg)
    bad["nodes"] = [{"role": "worker"}]
    assert "must have at least one control-plane node" in problems(bad)
    bad = copy.deepcopy(cfg)
    bad["name"] = "MeshLab"
    assert problems(bad)
    bad = copy.deepcopy(cfg)
    bad["apiVersion"] = "kind.x-k8s.io/v1alpha3"
    assert problems(bad)


def test_it_is_the_course_cluster(cfg):
    assert cfg["name"] == _kind.CLUSTER_NAME == "meshlab"
    nodes = cfg["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane"]
    # `meshlab down` recognises its own cluster by this node label
    assert nodes[0]["labels"][_kind.NODE_LABEL[0]] == _kind.NODE_LABEL[1]
    assert not _kind.NODE_LABEL[0].split("/")[0].endswith(("kubernetes.io", "k8s.io"))


def test_gateway_node_ports_are_published_on_loopback_only(cfg):
    mappings = cfg["nodes"][0]["extraPortMappings"]
    assert {m["containerPort"] for m in mappings} == set(_kind.INGRESS_NODE_PORTS.values())
    for m in mappings:
        assert ipaddress.ip_address(m["listenAddress"]).is_loopback, m
        assert 30000 <= m["containerPort"] <= 32767      # the default NodePort range
        assert m["hostPort"] >= 1024                      # no root needed on the laptop
    assert ipaddress.ip_address(cfg["networking"]["apiServerAddress"]).is_loopback
