"""A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager,
built from `kube/go.mod`.

What runs: etcd and kube-apiserver on 127.0.0.1 with free ports, in a temporary directory, with
certificates made here (a CA, the serving certificate, the service-account key pair, one client
certificate per user), RBAC as the only authorizer, the default admission plugins, and the CRDs a
cluster with Istio has: Istio's from the `istio.io/api` module and the Gateway API's standard
channel from `sigs.k8s.io/gateway-api` (both read from Go's module cache, never copied).
kube-controller-manager runs the controllers in `CONTROLLERS`, as kubeadm runs them (its own user,
one ServiceAccount per controller): a Deployment makes a ReplicaSet and Pods, ready Pods become
EndpointSlices, a deleted Namespace is emptied, every namespace gets its `default` ServiceAccount,
and owned objects are garbage-collected.

There is no scheduler and no kubelet (no container runtime here): Pods stay Pending, unscheduled.
Where a test needs running pods, `PodStatusWriter` writes what a scheduler and a kubelet would
(the node binding; phase Running, Ready, a pod IP) through the API — and the test says so in its
name.

Use it from a test module (no conftest; the fixture is session-scoped, so the server starts once):

    from _apiserver import apiserver  # noqa: F401  (pytest fixture)

    def test_x(apiserver):
        apiserver.apply(manifest)                  # server-side apply as the admin
        apiserver.apply(manifest, context="alice") # ... as alice, whom RBAC confines

The kubeconfig (`apiserver.kubeconfig`) has one context per user, named after the user: `admin`
(group system:masters, the current context), `alice` and `bob` (no groups, so no rights until a
test binds a Role); `apiserver.add_user()` mints more.

Without Go the fixture skips, saying why; with CI set it fails instead. Both processes are
started by `meshlab._processes.spawn`, so they get SIGKILL when the test process dies, however it
dies; a normal end stops them with SIGTERM.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlab._processes import spawn

REPO = Path(__file__).resolve().parents[1]
KUBE_BIN = REPO / "kube" / "bin"

#: The Istio API module whose CRDs are installed: the Istio release the course pins (1.32.0).
ISTIO_API = "istio.io/api@v1.32.0"
ISTIO_CRDS = "kubernetes/customresourcedefinitions.gen.yaml"
#: The Gateway API release Istio 1.32's code is built against (istio.io/istio's go.mod).
GATEWAY_API = "sigs.k8s.io/gateway-api@v1.6.0"
GATEWAY_API_CRDS = "config/crd/standard"

FIELD_MANAGER = "meshlab-tests"
#: Service ClusterIPs come from here, as in a kind cluster.
SERVICE_CIDR = "10.96.0.0/16"
#: user → groups in the kubeconfig the fixture writes.
USERS: dict[str, tuple[str, ...]] = {"admin": ("system:masters",), "alice": (), "bob": ()}
#: What kube-controller-manager runs (cmd/kube-controller-manager/names): Deployments → ReplicaSets →
#: Pods, EndpointSlices from ready Pods, Namespace deletion, the `default` ServiceAccount each Pod
#: needs (the ServiceAccount admission plugin refuses Pods without it), owner-reference cleanup.
CONTROLLERS = ("deployment-controller", "replicaset-controller", "endpointslice-controller",
               "namespace-controller", "serviceaccount-controller", "garbage-collector-controller")
#: Pod IPs `PodStatusWriter` hands out (kind's default pod subnet).
POD_CIDR = "10.244.0.0/16"
#: The node name `PodStatusWriter` binds pods to (kind's single node is called this).
NODE_NAME = "meshlab-control-plane"

START_TIMEOUT = 120.0   # seconds; the shared 2-core machine is slow when other builds run


class StartError(RuntimeError):
    """etcd or kube-apiserver did not come up; the message carries the tail of its log."""


# ----------------------------------------------------------------------------- building, finding

def _env() -> dict[str, str]:
    """This process's environment without an outer make's flags (`make test` runs pytest)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the API-server tests must run)", pytrace=False)
    pytest.skip(reason)


BINARIES = ("kube-apiserver", "kube-controller-manager", "etcd")


def build() -> None:
    """`make apiserver`: a no-op when kube/bin is up to date (`make test` builds it first)."""
    if shutil.which("go") is None:
        _skip_or_fail("Go is not installed: kube-apiserver and etcd cannot be built (kube/)")
    if shutil.which("make") is None:
        _skip_or_fail("make is not installed: `make apiserver` builds kube-apiserver and etcd")
    run = subprocess.run(["make", "-s", "-C", str(REPO), "apiserver"], capture_output=True, text=True,
                         env=_env(), timeout=3600)
    if run.returncode != 0 or not all((KUBE_BIN / b).is_file() for b in BINARIES):
        pytest.fail(f"`make apiserver` failed (exit {run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}",
                    pytrace=False)


def module_dir(module: str) -> Path:
    """Where Go's module cache holds `path@version` (downloaded and checksum-verified if needed)."""
    run = subprocess.run(["go", "mod", "download", "-json", module], capture_output=True, text=True,
                         cwd="/", env=_env(), timeout=600)   # outside any module: go.mod is not touched
    info = json.loads(run.stdout or "{}")
    if run.returncode != 0 or not info.get("Dir"):
        raise StartError(f"go mod download {module} failed: {info.get('Error') or run.stderr.strip()}")
    return Path(info["Dir"])


def crd_documents() -> list[dict[str, Any]]:
    """Istio's CRDs, then the Gateway API standard channel (its CRDs and the
    ValidatingAdmissionPolicy it ships with them), as `kubectl apply -f` would read them."""
    files = [module_dir(ISTIO_API) / ISTIO_CRDS]
    files += sorted((module_dir(GATEWAY_API) / GATEWAY_API_CRDS).glob("*.yaml"))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml: 0.2 s instead of 3 s for these files
    return [d for f in files for d in yaml.load_all(f.read_text(), Loader=loader) if d]


# ----------------------------------------------------------------------------------- certificates

def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class _CA:
    """A throwaway certificate authority (ECDSA P-256, valid for a day)."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshlab-tests-ca")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def issue(self, common_name: str, *, organizations: tuple[str, ...] = (), server: bool = False) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM). A client certificate's CN is the Kubernetes user name and
        each O a group (Kubernetes' x509 authenticator); a server one is valid for 127.0.0.1."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
                            + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
                x509.DNSName("kubernetes.default.svc")]), critical=False)
        return _pem_cert(builder.sign(self.key, hashes.SHA256())), _pem_key(key)


def _service_account_keys() -> tuple[bytes, bytes]:
    """(private key PEM, public key PEM) the API server signs and checks ServiceAccount tokens with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return _pem_key(key), public


# ------------------------------------------------------------------------------------- the server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (both shut down cleanly), then SIGKILL; each runs in its own session."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class APIServer:
    """A running kube-apiserver; `url` is https://127.0.0.1:PORT, `kubeconfig` names its users."""

    dir: Path
    url: str
    kubeconfig: Path
    ca: Path
    processes: dict[str, subprocess.Popen[bytes]]
    #: seconds from the start of `start()` to each step: etcd healthy, apiserver ready, CRDs served
    timings: dict[str, float] = field(default_factory=dict)
    _ca: _CA | None = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.log"

    def audit(self, user: str) -> list[dict[str, Any]]:
        """The API server's audit events (level Metadata) of the requests `user` made so far:
        `verb`, `objectRef` (resource, namespace, name, subresource), `responseStatus.code`…"""
        events = []
        with self.audit_log.open() as f:
            for line in f:
                e = json.loads(line)
                if e.get("stage") == "ResponseComplete" and e.get("user", {}).get("username") == user:
                    events.append(e)
        return events

    # --- users and clients
    def add_user(self, name: str, groups: tuple[str, ...] = ()) -> str:
        """A client certificate for user `name` in `groups`, and a kubeconfig context `name`
        for it (the current context is left as it is). Returns the context name."""
        assert self._ca is not None
        cert, key = self._ca.issue(name, organizations=groups)
        (self.dir / "users").mkdir(exist_ok=True)
        cert_file, key_file = self.dir / "users" / f"{name}.crt", self.dir / "users" / f"{name}.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        key_file.chmod(0o600)
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"] = [u for u in config["users"] if u["name"] != name] + [
            {"name": name, "user": {"client-certificate": str(cert_file), "client-key": str(key_file)}}]
        config["contexts"] = [c for c in config["contexts"] if c["name"] != name] + [
            {"name": name, "context": {"cluster": "meshlab-tests", "user": name}}]
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        return name

    def api_client(self, context: str = "admin") -> Any:
        """A `kubernetes.client.ApiClient` for one context of the kubeconfig (read only)."""
        from kubernetes import config
        return config.new_client_from_config(config_file=str(self.kubeconfig), context=context,
                                             persist_config=False)

    def dynamic(self, context: str = "admin") -> Any:
        """The `kubernetes.dynamic.DynamicClient` of a context (one per context, made on first use;
        its discovery cache file stays in this server's dir and refreshes when a kind is missing)."""
        from kubernetes.dynamic import DynamicClient
        if context not in self._clients:
            self._clients[context] = DynamicClient(self.api_client(context),
                                                   cache_file=str(self.dir / f"discovery-{context}.json"))
        return self._clients[context]

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]] | str, *, context: str = "admin",
              namespace: str | None = None) -> list[Any]:
        """Server-side apply (`kubectl apply --server-side --force-conflicts`) of each document
        (a YAML text, one object or a list), in order, as `context`'s user. API errors raise
        `kubernetes.dynamic.exceptions.ApiException` (`.status`, `.body` = the API's Status)."""
        if isinstance(manifest, str):
            documents = [d for d in yaml.safe_load_all(manifest) if d]
        else:
            documents = [manifest] if isinstance(manifest, dict) else list(manifest)
        client = self.dynamic(context)
        applied = []
        for doc in documents:
            resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            ns = doc.get("metadata", {}).get("namespace") or namespace
            applied.append(client.server_side_apply(resource, body=doc, namespace=ns if resource.namespaced else None,
                                                    field_manager=FIELD_MANAGER, force_conflicts=True))
        return applied

    # --- raw HTTPS as the admin (readiness, discovery)
    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(self.dir / "users" / "admin.crt", self.dir / "users" / "admin.key")
        return ctx

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, context=self._ssl(), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def _write_kubeconfig(path: Path, url: str, ca: Path, current: str,
                      user: tuple[Path, Path] | None = None) -> None:
    """A kubeconfig with the cluster and no users (`add_user` adds them), or with one user
    (certificate, key) as its only context."""
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "meshlab-tests", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [], "contexts": [], "current-context": current}
    if user is not None:
        config["users"] = [{"name": current, "user": {"client-certificate": str(user[0]), "client-key": str(user[1])}}]
        config["contexts"] = [{"name": current, "context": {"cluster": "meshlab-tests", "user": current}}]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _wait(what: str, check: Any, procs: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path],
          deadline: float) -> None:
    """Poll `check()` until true; a process that exits, or the deadline, raises StartError with logs."""
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise StartError(f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                                 f"{_tail(logs[name])}")
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        if time.monotonic() > deadline:
            raise StartError(f"timed out waiting for {what}:\n"
                             + "\n".join(f"--- {n}\n{_tail(p)}" for n, p in logs.items()))
        time.sleep(0.05)


def _launch(workdir: Path, t0: float) -> APIServer:
    """One attempt: ports, certificates, etcd, kube-apiserver; returns once /readyz says ok."""
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    while len({etcd_port, peer_port, api_port}) < 3:
        peer_port, api_port = _free_port(), _free_port()
    pki = workdir / "pki"
    pki.mkdir(parents=True)
    ca = _CA()
    (pki / "ca.crt").write_bytes(_pem_cert(ca.cert))
    serving_cert, serving_key = ca.issue("kube-apiserver", server=True)
    (pki / "apiserver.crt").write_bytes(serving_cert)
    (pki / "apiserver.key").write_bytes(serving_key)
    sa_key, sa_pub = _service_account_keys()
    (pki / "sa.key").write_bytes(sa_key)
    (pki / "sa.pub").write_bytes(sa_pub)
    for p in pki.glob("*.key"):
        p.chmod(0o600)

    logs = {name: workdir / f"{name}.log" for name in ("etcd", "kube-apiserver", "kube-controller-manager")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    server = APIServer(dir=workdir, url=f"https://127.0.0.1:{api_port}", kubeconfig=workdir / "kubeconfig",
                       ca=pki / "ca.crt", processes=procs, _ca=ca)
    _write_kubeconfig(server.kubeconfig, server.url, server.ca, current="admin")
    for user, groups in USERS.items():
        server.add_user(user, groups)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        with logs["etcd"].open("wb") as log:
            procs["etcd"] = spawn(
                [str(KUBE_BIN / "etcd"), "--name=meshlab-tests", f"--data-dir={workdir / 'etcd'}",
                 f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                 f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                 f"--initial-cluster=meshlab-tests={peer_url}", "--log-level=warn",
                 "--unsafe-no-fsync"],   # a throwaway store: no fsync, as Kubernetes' own integration tests
                signal="KILL", stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def etcd_healthy() -> bool:
            with urllib.request.urlopen(etcd_url + "/health", timeout=2) as r:
                return json.load(r).get("health") == "true"
        _wait("etcd /health", etcd_healthy, procs, logs, deadline)
        server.timings["etcd healthy"] = time.monotonic() - t0

        audit_policy = workdir / "audit-policy.yaml"   # who asked what, and the answer's code
        audit_policy.write_text(yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                                "omitStages": ["RequestReceived"], "rules": [{"level": "Metadata"}]}))
        with logs["kube-apiserver"].open("wb") as log:
            procs["kube-apiserver"] = spawn(
                [str(KUBE_BIN / "kube-apiserver"), f"--etcd-servers={etcd_url}",
                 "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
                 f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                 f"--client-ca-file={pki / 'ca.crt'}", f"--cert-dir={pki}",
                 "--authorization-mode=RBAC",
                 "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                 f"--service-account-key-file={pki / 'sa.pub'}",
                 f"--service-account-signing-key-file={pki / 'sa.key'}",
                 f"--service-cluster-ip-range={SERVICE_CIDR}",
                 f"--audit-policy-file={audit_policy}", f"--audit-log-path={server.audit_log}",
                 "--audit-log-format=json", "--audit-log-mode=blocking",
                 "--profiling=false"],
                signal="KILL", stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait("kube-apiserver /readyz", lambda: server.get("/readyz", timeout=2)[0] == 200,
              procs, {n: logs[n] for n in procs}, deadline)
        server.timings["kube-apiserver ready"] = time.monotonic() - t0

        # kube-controller-manager as kubeadm runs it: its own user (RBAC's bootstrap role
        # system:kube-controller-manager), one ServiceAccount token per controller, no serving port.
        cm_cert, cm_key = ca.issue("system:kube-controller-manager")
        (pki / "controller-manager.crt").write_bytes(cm_cert)
        (pki / "controller-manager.key").write_bytes(cm_key)
        (pki / "controller-manager.key").chmod(0o600)
        cm_kubeconfig = workdir / "controller-manager.kubeconfig"
        _write_kubeconfig(cm_kubeconfig, server.url, server.ca, "kube-controller-manager",
                          user=(pki / "controller-manager.crt", pki / "controller-manager.key"))
        with logs["kube-controller-manager"].open("wb") as log:
            procs["kube-controller-manager"] = spawn(
                [str(KUBE_BIN / "kube-controller-manager"), f"--kubeconfig={cm_kubeconfig}",
                 f"--controllers={','.join(CONTROLLERS)}", "--use-service-account-credentials=true",
                 "--leader-elect=false", "--secure-port=0"],
                signal="KILL", stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return server
    except BaseException:
        for proc in reversed(list(procs.values())):
            _stop(proc)
        raise


def install_crds(server: APIServer, documents: list[dict[str, Any]], deadline: float) -> None:
    """Apply the documents (the CRDs four at a time: the API server spends ~0.1–1 s of CPU on
    each, compiling its schema and CEL rules); wait until every CRD is Established and its storage
    version is in discovery (what `kubectl wait --for condition=established` and a new client need)."""
    crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
    client = server.dynamic()
    resource = client.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda crd: client.server_side_apply(resource, body=crd, field_manager=FIELD_MANAGER,
                                                           force_conflicts=True), crds))
    server.apply([d for d in documents if d["kind"] != "CustomResourceDefinition"])

    def served() -> bool:
        status, body = server.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        established = {i["metadata"]["name"] for i in json.loads(body)["items"]
                       if any(c["type"] == "Established" and c["status"] == "True"
                              for c in (i.get("status") or {}).get("conditions") or [])} if status == 200 else set()
        if any(c["metadata"]["name"] not in established for c in crds):
            return False
        for crd in crds:
            version = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
            status, body = server.get(f"/apis/{crd['spec']['group']}/{version}")
            if status != 200 or crd["spec"]["names"]["plural"] not in {r["name"] for r in json.loads(body)["resources"]}:
                return False
        return True
    _wait("the CRDs to be served", served, server.processes,
          {n: server.dir / f"{n}.log" for n in server.processes}, deadline)


def eventually(what: str, check: Any, timeout: float = 60.0) -> Any:
    """Poll `check()` until it returns something true, and return it; fail the test naming `what`
    after `timeout` seconds (controllers act within seconds, slower on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.1)


class PodStatusWriter:
    """What a scheduler and a kubelet would write, for the pods of some namespaces, while running.

    No container runtime runs here, so no pod ever starts. This thread stands in only for the
    writes those components make through the API — the kubelet's Node (`NODE_NAME`, Ready; the
    EndpointSlice controller skips pods on a node it cannot find), the binding to it
    (`pods/binding`, as the scheduler) and the status a kubelet reports for a started pod (phase
    Running, PodScheduled/Initialized/ContainersReady/Ready True, one running container status
    per container, a pod IP from `POD_CIDR`). Everything downstream is real: the ReplicaSet and
    Deployment controllers count the pod ready and available, the EndpointSlice controller lists
    its IP. Tests that use it say so in their names. `ready=False` reports pods started but not
    ready (a failing readiness probe).
    """

    def __init__(self, server: APIServer, namespaces: list[str] | tuple[str, ...], *, ready: bool = True,
                 interval: float = 0.1) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(server.api_client("admin"))
        self.namespaces, self.ready, self.interval = list(namespaces), ready, interval
        self.written: list[str] = []          # "namespace/name" of each pod given a status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-status-writer", daemon=True)
        self._ips = ipaddress.ip_network(POD_CIDR).hosts()
        self.error: BaseException | None = None

    def __enter__(self) -> PodStatusWriter:
        self._register_node()
        self._thread.start()
        return self

    def _register_node(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}})
        except ApiException as e:
            if e.status != 409:    # 409: registered already (by another test)
                raise
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.core.patch_node_status(NODE_NAME, {"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}]}})

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for ns in self.namespaces:
                    for pod in self.core.list_namespaced_pod(ns).items:
                        self._write(pod)
            except Exception as e:   # noqa: BLE001 - a namespace being deleted, a pod gone: try again
                from kubernetes.client.exceptions import ApiException
                if not isinstance(e, ApiException):
                    self.error = e
                    return
            self._stop.wait(self.interval)

    def _write(self, pod: Any) -> None:
        md, spec, status = pod.metadata, pod.spec, pod.status
        if md.deletion_timestamp is not None:
            return
        if not spec.node_name:
            body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": md.name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME}}
            self.core.create_namespaced_binding(md.namespace, body, _preload_content=False)
        if status.phase == "Running":
            return
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = "True" if self.ready else "False"
        ip = str(next(self._ips))
        self.core.patch_namespaced_pod_status(md.name, md.namespace, {"status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}], "startTime": now,
            "conditions": [{"type": t, "status": ready if t in ("ContainersReady", "Ready") else "True",
                            "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c.name, "image": c.image, "imageID": "", "ready": self.ready,
                                   "started": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": now}}} for c in spec.containers]}})
        self.written.append(f"{md.namespace}/{md.name}")


@contextlib.contextmanager
def start(workdir: Path, *, crds: bool = True) -> Iterator[APIServer]:
    """etcd + kube-apiserver (+ the CRDs) in `workdir`; stopped on exit, whatever happens.
    A port taken between choosing and binding it is retried with new ports."""
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as reader:
        documents = reader.submit(crd_documents) if crds else None   # read while the server starts
        for attempt in range(3):
            try:
                server = _launch(workdir / f"run{attempt}", t0)
                break
            except StartError as e:
                if "address already in use" not in str(e) or attempt == 2:
                    raise
        try:
            deadline = time.monotonic() + START_TIMEOUT
            if documents is not None:
                install_crds(server, documents.result(), deadline)
                server.timings["CRDs served"] = time.monotonic() - t0
            _wait("kube-controller-manager (the default ServiceAccount of namespace default)",
                  lambda: server.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
                  server.processes, {n: server.dir / f"{n}.log" for n in server.processes}, deadline)
            server.timings["controllers running"] = time.monotonic() - t0
            yield server
        finally:
            for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
                if name in server.processes:
                    _stop(server.processes[name])


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServer]:
    """One real API server with Istio's and the Gateway API's CRDs for the whole test session."""
    build()
    with start(tmp_path_factory.mktemp("apiserver")) as server:
        yield server
