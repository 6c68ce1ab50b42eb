"""A real Kubernetes API server for tests: kube-apiserver and etcd, built from `kube/go.mod`.

What runs: etcd and kube-apiserver on 127.0.0.1 with free ports, in a temporary directory, with
certificates made here (a CA, the serving certificate, the service-account key pair, one client
certificate per user), RBAC as the only authorizer, the default admission plugins, and the CRDs a
cluster with Istio has: Istio's from the `istio.io/api` module and the Gateway API's standard
channel from `sigs.k8s.io/gateway-api` (both read from Go's module cache, never copied). There is
no kubelet, scheduler or controller-manager: objects are stored and validated, pods never run.

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


def build() -> None:
    """`make apiserver`: a no-op when kube/bin is up to date (`make test` builds it first)."""
    if shutil.which("go") is None:
        _skip_or_fail("Go is not installed: kube-apiserver and etcd cannot be built (kube/)")
    if shutil.which("make") is None:
        _skip_or_fail("make is not installed: `make apiserver` builds kube-apiserver and etcd")
    run = subprocess.run(["make", "-s", "-C", str(REPO), "apiserver"], capture_output=True, text=True,
                         env=_env(), timeout=3600)
    if run.returncode != 0 or not all((KUBE_BIN / b).is_file() for b in ("kube-apiserver", "etcd")):
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


def _write_kubeconfig(path: Path, url: str, ca: Path, current: str) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "meshlab-tests", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [], "contexts": [], "current-context": current}, sort_keys=False))


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

    logs = {"etcd": workdir / "etcd.log", "kube-apiserver": workdir / "kube-apiserver.log"}
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
                 "--profiling=false"],
                signal="KILL", stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait("kube-apiserver /readyz", lambda: server.get("/readyz", timeout=2)[0] == 200, procs, logs, deadline)
        server.timings["kube-apiserver ready"] = time.monotonic() - t0
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
            if documents is not None:
                install_crds(server, documents.result(), time.monotonic() + START_TIMEOUT)
                server.timings["CRDs served"] = time.monotonic() - t0
            yield server
        finally:
            _stop(server.processes["kube-apiserver"])
            _stop(server.processes["etcd"])


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServer]:
    """One real API server with Istio's and the Gateway API's CRDs for the whole test session."""
    build()
    with start(tmp_path_factory.mktemp("apiserver")) as server:
        yield server
