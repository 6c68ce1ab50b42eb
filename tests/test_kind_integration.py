"""The whole kind path on a real cluster: `meshlab up`, then a Lab on it — apply, probe with
Envoy's own columns, a readiness knob, an undefined subset — then close.

Runs whenever Docker (daemon reachable), kind and istioctl are present; skipped, saying what is
missing, otherwise. One command (from the repository root):

    .venv/bin/pytest -m kind tests/test_kind_integration.py -v

The cluster is left running for the next run (`meshlab down` removes it), unless
MESHLAB_KIND_DOWN=1 is set. Needs ~6–8 GiB for Docker and several minutes the first time.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from _manifests import deployment, destination_rule, docs, virtual_service

pytestmark = [pytest.mark.kind, pytest.mark.slow, pytest.mark.timeout(1800)]


def _missing() -> list[str]:
    missing = [t for t in ("docker", "kind", "istioctl") if shutil.which(t) is None]
    if "docker" not in missing:
        try:
            ok = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                text=True, timeout=20)
            if ok.returncode != 0 or not ok.stdout.strip():
                missing.append("a reachable Docker daemon")
        except (OSError, subprocess.TimeoutExpired):
            missing.append("a reachable Docker daemon")
    return missing


_MISSING = _missing()
if _MISSING:
    pytestmark.append(pytest.mark.skip(reason=f"needs {', '.join(_MISSING)} (the kind backend runs on a real cluster)"))

WORKLOADS = docs(
    """\
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: 8080}]
""",
    deployment("web", "v1", replicas=2, port=8080, container="web", image="example/web:1"),
    deployment("web", "v2", port=8080, container="web", image="example/web:2"),
    destination_rule("web", ["v1", "v2"]),
)


def _vs(*routes: tuple[str, int]) -> str:
    return virtual_service("web", ["web"], "- route:\n" + "".join(
        f"  - destination: {{host: web, subset: {s}}}\n    weight: {w}\n" for s, w in routes))


@pytest.fixture(scope="module")
def lab():
    from meshlab import cluster
    from meshlab.lab import Lab

    cluster.up()
    lab = Lab(backend="kind")
    yield lab
    lab.close()
    if os.environ.get("MESHLAB_KIND_DOWN") == "1":
        cluster.down()


def test_split_subsets_and_envoys_columns(lab):
    lab.apply(WORKLOADS)
    lab.apply(_vs(("v1", 80), ("v2", 20)))
    pods = lab.pods()
    assert sorted(pods.version) == ["v1", "v1", "v2"] and pods.ready.all()
    df = lab.probe("http://web:8080/", n=400, seed=1)
    assert (df.status == 200).all(), df[df.status != 200].head()
    share_v2 = (df.version == "v2").mean()
    assert 0.13 <= share_v2 <= 0.27, share_v2           # 80/20 per request; binomial n=400 ± ~3.5 sd
    assert (df["flags"] == "-").all() and (df.proxy == "sidecar").all()
    assert (df.subset == df.version).all()                # Envoy's cluster agrees with the pod that answered
    assert set(df.cluster) == {f"outbound|8080|{v}|web.default.svc.cluster.local" for v in ("v1", "v2")}
    assert df.upstream.str.endswith(":8080").all()
    assert set(df.pod) == set(pods.name)


def test_an_undefined_subset_is_envoys_503_nc(lab):
    lab.apply(_vs(("v3", 100)))
    df = lab.probe("http://web:8080/", n=20)
    assert (df.status == 503).all() and (df["flags"] == "NC").all()
    assert set(df.details) == {"cluster_not_found"}


def test_a_pod_made_unready_leaves_the_endpoints(lab):
    lab.apply(_vs(("v2", 100)))
    v2 = lab.pods().query("version == 'v2'").name.iloc[0]
    lab.set_pod(v2, ready=False)
    try:
        df = lab.probe("http://web:8080/", n=20)
        assert (df.status == 503).all() and (df["flags"] == "UH").all()
    finally:
        lab.set_pod(v2, ready=True)
    df = lab.probe("http://web:8080/", n=20)
    assert (df.status == 200).all() and set(df.pod) == {v2}


def test_without_a_sidecar_kube_proxy_balances_and_no_envoy_columns(lab):
    df = lab.probe("http://web:8080/", n=30, via="none", keepalive=False)
    assert (df.status == 200).all() and (df.proxy == "none").all() and (df["flags"] == "").all()
    assert df.version.isin(["v1", "v2"]).all()


def test_objects_read_back_from_the_cluster(lab):
    kinds = {(o.kind, o.name) for o in lab.objects()}
    assert {("Service", "web"), ("Deployment", "web-v1"), ("DestinationRule", "web"), ("VirtualService", "web")} <= kinds
