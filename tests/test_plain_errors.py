"""Errors, not tracebacks (issue 17): an Envoy rejection names the file, object and field that made
it; a failure inside meshlab is one paragraph in the notebook and on the command line; inputs that
used to fail deep inside (a 253-character name, an empty string) are handled where they arrive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _manifests import deployment, docs, service
from meshlab.errors import EnvoyConfigRejected, InternalError, ManifestError, MeshlabError
from meshlab.lab import Lab

WEB = docs(deployment("web", "v1", replicas=2, port=8080), service("web", 80, target_port=8080))


@pytest.fixture(scope="module")
def lab():
    with Lab() as lab:
        lab.apply(WEB)
        yield lab


def test_an_envoy_rejection_names_the_file_object_and_field(lab, tmp_path):
    """`%FOO%` passes Istio's webhook (it only checks the formatter's syntax) and Envoy rejects it.
    The learner got Envoy's words about "RDS 80" and 88 lines of traceback, naming no file, line,
    object or field."""
    vs = tmp_path / "vs.yaml"
    vs.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n"
                  "  hosts: [web]\n  http:\n  - headers: {request: {set: {x-who: '%FOO%'}}}\n"
                  "    route: [{destination: {host: web}}]\n")
    before = sorted(o.key for o in lab.objects())
    with pytest.raises(EnvoyConfigRejected) as info:
        lab.apply(vs)
    e = info.value
    assert "FOO" in e.envoy_message                                          # Envoy's own words, kept
    assert e.applying == f'VirtualService default/web ({vs}:1) spec.http[0].headers.request.set["x-who"]'
    assert str(vs) in str(e) and "nothing was applied" in str(e)
    assert len(e._render_traceback_()) == 1                                   # one paragraph in Jupyter
    assert sorted(o.key for o in lab.objects()) == before
    assert set(lab.probe("http://web/", n=5).status) == {200}


def test_a_failure_inside_meshlab_is_one_paragraph_with_its_cause_kept(lab, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("cluster_statuses")
    monkeypatch.setattr(type(lab.backend), "envoy_config", broken)
    with pytest.raises(InternalError) as info:
        lab.envoy_config()
    e = info.value
    assert isinstance(e, MeshlabError) and isinstance(e.__cause__, KeyError)
    lines = e._render_traceback_()
    assert len(lines) == 1 and "reading Envoy's config" in lines[0] and "KeyError" in lines[0]


def test_a_253_character_deployment_name_runs(lab):
    """The pod's log file was named after the pod: "File name too long" (a file name is at most 255
    bytes; a valid Deployment name 253 characters, its pods' longer still)."""
    name = "w" * 253
    dep = deployment("long", "v1", replicas=1, port=8080, name=name)
    lab.apply(dep)
    try:
        assert [p for p in lab.pods().name if p.startswith(name)]
    finally:
        lab.delete(dep)


def test_an_empty_string_is_not_the_current_folder(tmp_path, monkeypatch):
    """`lab.apply("")` and `meshlab validate ""` read every YAML file of the current folder
    (Path("") is "."), and applied them."""
    (tmp_path / "stray.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: stray}\n")
    monkeypatch.chdir(tmp_path)
    from meshlab.manifests import load
    with pytest.raises(ManifestError, match="an empty string holds no manifest"):
        load("")
    r = subprocess.run([sys.executable, "-m", "meshlab.cli", "validate", ""], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 65 and "stray" not in r.stdout + r.stderr, r.stdout


def _meshlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshlab.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_meshlab_probe_never_prints_a_traceback(tmp_path):
    """`meshlab probe … --url 'http://[::1/'` printed urllib's ValueError traceback and exited 1."""
    web = tmp_path / "web.yaml"
    web.write_text(WEB)
    r = _meshlab("probe", str(web), "--url", "http://[::1/")
    assert r.returncode == 65 and "Invalid IPv6 URL" in r.stderr and "Traceback" not in r.stderr
    r = _meshlab("probe", str(web), "--url", "http://web/", "-n", str(10**9))
    assert r.returncode == 65 and "n=1000000000" in r.stderr and "Traceback" not in r.stderr


def test_a_bug_on_the_command_line_is_one_paragraph_exit_70(monkeypatch, capsys):
    from meshlab import cli
    from meshlab.cli import commands

    def broken(args):
        raise RuntimeError("something inside went wrong")
    monkeypatch.setattr(commands, "validate", broken)
    monkeypatch.delenv("MESHLAB_DEBUG", raising=False)
    assert cli.main(["validate", "x.yaml"]) == 70
    err = capsys.readouterr().err
    assert "RuntimeError: something inside went wrong" in err and "bug in meshlab" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("MESHLAB_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["validate", "x.yaml"])
