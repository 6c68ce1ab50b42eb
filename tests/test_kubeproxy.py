"""kube-proxy emulation: per-connection random choice, affinity, refusal, live updates."""

from __future__ import annotations

import http.client
import socket
from collections import Counter

import pytest

from meshlab.backends.local.addresses import AddressLease
from meshlab.errors import KubeProxyError
from meshlab.backends.local.kubeproxy import KubeProxy, ServicePortRule
from meshlab.backends.local.pods import PodRunner, PodSpec


@pytest.fixture
def world():
    lease = AddressLease()
    runner = PodRunner()
    kp = KubeProxy(seed=3)
    try:
        specs = [PodSpec(f"web-{i}", "default", lease.pod_ip(), [8080], "v1") for i in range(3)]
        runner.start(specs)
        kp.start()
        yield lease, specs, runner, kp, lease.cluster_ip()
    finally:
        kp.close()
        runner.close()
        lease.release()


def _pod(conn: http.client.HTTPConnection) -> str:
    conn.request("GET", "/")
    r = conn.getresponse()
    r.read()
    return r.getheader("x-meshlab-pod")


def test_keepalive_sticks_new_connections_spread(world):
    _, specs, _, kp, vip = world
    kp.update([ServicePortRule("default/web:80", vip, 80, [(s.ip, 8080) for s in specs])])
    c = http.client.HTTPConnection(vip, 80, timeout=10)
    assert len({_pod(c) for _ in range(30)}) == 1          # one connection → one pod
    spread = Counter()
    for _ in range(60):
        c = http.client.HTTPConnection(vip, 80, timeout=10)
        spread[_pod(c)] += 1
        c.close()
    assert set(spread) == {s.name for s in specs}
    assert min(spread.values()) >= 8                        # uniform 1/3 of 60: P(<8) < 1e-3


def test_no_ready_endpoint_refuses_at_once_and_updates_are_live(world):
    _, specs, _, kp, vip = world
    kp.update([ServicePortRule("default/web:80", vip, 80, [])])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((vip, 80), timeout=5)
    kp.update([ServicePortRule("default/web:80", vip, 80, [(specs[2].ip, 8080)])])
    assert {_pod(http.client.HTTPConnection(vip, 80, timeout=10)) for _ in range(10)} == {"web-2"}
    kp.update([])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((vip, 80), timeout=5)


def test_existing_connection_survives_endpoint_removal(world):
    _, specs, _, kp, vip = world
    kp.update([ServicePortRule("default/web:80", vip, 80, [(specs[0].ip, 8080)])])
    c = http.client.HTTPConnection(vip, 80, timeout=10)
    assert _pod(c) == "web-0"
    kp.update([ServicePortRule("default/web:80", vip, 80, [(specs[1].ip, 8080)])])
    assert _pod(c) == "web-0"                                # conntrack keeps the old pod
    assert _pod(http.client.HTTPConnection(vip, 80, timeout=10)) == "web-1"


def test_session_affinity_client_ip(world):
    lease, specs, _, kp, vip = world
    kp.update([ServicePortRule("default/web:80", vip, 80, [(s.ip, 8080) for s in specs], affinity=True)])
    seen = set()
    for _ in range(20):
        c = http.client.HTTPConnection(vip, 80, timeout=10, source_address=(lease.sidecar_ip, 0))
        seen.add(_pod(c))
        c.close()
    assert len(seen) == 1


def test_dead_pod_resets_the_connection(world):
    _, specs, runner, kp, vip = world
    kp.update([ServicePortRule("default/web:80", vip, 80, [(specs[0].ip, 8080)])])
    runner.kill("web-0")
    c = http.client.HTTPConnection(vip, 80, timeout=10)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        _pod(c)


def test_address_in_use_is_reported(world):
    lease, specs, _, kp, _ = world
    ip = lease.cluster_ip()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((ip, 80))
    blocker.listen()
    try:
        with pytest.raises(KubeProxyError, match="default/web:80"):
            kp.update([ServicePortRule("default/web:80", ip, 80, [(specs[0].ip, 8080)])])
    finally:
        blocker.close()
