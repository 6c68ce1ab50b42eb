"""`meshlab probe --json` and `meshlab envoy-config`: one object out, labs torn down."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from test_lab_local import WEB


@pytest.fixture
def manifests(tmp_path):
    p = tmp_path / "web.yaml"
    p.write_text(WEB)
    return p


def _meshlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshlab.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_probe_json_shape(manifests):
    r = _meshlab("probe", str(manifests), "--url", "http://web/", "-n", "30", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)            # exactly one JSON object on stdout
    assert set(out) == {"requests", "codes", "flags", "errors", "versions", "pods", "subsets", "clusters"}
    assert out["requests"] == 30 and out["codes"] == {"200": 30} and out["flags"] == {"-": 30}
    assert sum(out["versions"].values()) == 30 and set(out["versions"]) <= {"v1", "v2"}
    assert out["clusters"] == {"outbound|80||web.default.svc.cluster.local": 30}
    assert out["errors"] == {} and out["subsets"] == {}


def test_probe_json_no_sidecar_and_dns_error(manifests):
    r = _meshlab("probe", str(manifests), "--url", "http://nope/", "-n", "5", "--via", "none", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["errors"] == {"dns": 5} and out["codes"] == {"0": 5} and out["flags"] == {}, (out, r.stderr)


def test_probe_text_summary(manifests):
    r = _meshlab("probe", str(manifests), "--url", "http://web/", "-n", "10", "--no-keepalive", "-H", "x-a: b")
    assert r.returncode == 0, r.stderr
    assert "10 requests" in r.stdout and "200" in r.stdout


def test_bad_manifest_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 99999}]}\n")
    r = _meshlab("probe", str(bad), "--url", "http://x/", "--json")
    assert r.returncode != 0 and "bad.yaml" in r.stderr and "Traceback" not in r.stderr
    r = _meshlab("probe", str(tmp_path / "missing.yaml"), "--url", "http://x/")
    assert r.returncode != 0 and "missing.yaml" in r.stderr


def test_envoy_config_json(manifests):
    r = _meshlab("envoy-config", str(manifests), "--json")
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert "outbound|80||web.default.svc.cluster.local" in json.dumps(view)


def test_bad_header_is_named_and_non_ascii_values_are_sent(manifests):
    """-H 'end user: jason' used to go out and come back as Envoy's bare 400 (exit 0); a value
    outside Latin-1 died with "'latin-1' codec can't encode character"."""
    r = _meshlab("probe", str(manifests), "--url", "http://web/", "-n", "2", "-H", "end user: jason")
    assert r.returncode == 65 and "'end user'" in r.stderr and "Traceback" not in r.stderr, r
    assert r.stdout == ""
    r = _meshlab("probe", str(manifests), "--url", "http://web/", "-n", "2", "-H", "x-user: j\u00e4s\u00f6n \u20ac", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["codes"] == {"200": 2}
