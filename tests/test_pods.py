"""Pod processes: own loopback IPs, kill/restart, and nothing outlives the parent."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from _pids import alive, survivors
from meshlab.backends.local.addresses import AddressLease
from meshlab.errors import PodStartError
from meshlab.backends.local.pods import PodRunner, PodSpec


def _status(ip: str, port: int) -> int:
    c = http.client.HTTPConnection(ip, port, timeout=10)
    c.request("GET", "/")
    return c.getresponse().status


def test_each_pod_has_its_own_ip_kill_and_restart():
    with AddressLease() as lease:
        runner = PodRunner()
        try:
            specs = [PodSpec(f"p{i}", "default", lease.pod_ip(), [8080], "v1") for i in range(3)]
            runner.start(specs)
            assert len({s.ip for s in specs}) == 3
            for s in specs:
                assert _status(s.ip, 8080) == 200
            p = runner.get("p1")
            pid = p.pid
            runner.kill("p1")
            assert not p.alive
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((specs[1].ip, 8080), timeout=5)
            assert _status(specs[0].ip, 8080) == 200          # others unaffected
            p.set_knobs(error_rate=1.0)                        # remembered while down
            runner.restart("p1")
            assert p.alive and p.pid != pid
            assert _status(specs[1].ip, 8080) == 200           # restart = fresh knobs
        finally:
            runner.close()
        assert not p.alive


def test_start_failure_names_the_pod():
    with AddressLease() as lease:
        ip = lease.pod_ip()
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind((ip, 8080))
        blocker.listen()
        runner = PodRunner()
        try:
            with pytest.raises(PodStartError, match="default/busy"):
                runner.start([PodSpec("busy", "default", ip, [8080], "v1")])
        finally:
            blocker.close()
            runner.close()


def test_unexpected_death_is_reported():
    seen = []
    with AddressLease() as lease:
        runner = PodRunner(on_exit=seen.append)
        try:
            runner.start([PodSpec("crashy", "default", lease.pod_ip(), [8080], "v1")])
            os.kill(runner.get("crashy").pid, signal.SIGKILL)
            end = time.monotonic() + 10
            while not seen and time.monotonic() < end:
                time.sleep(0.05)
            assert [p.spec.name for p in seen] == ["crashy"]
        finally:
            runner.close()


def test_nothing_survives_sigkill_of_the_parent(tmp_path):
    script = textwrap.dedent("""
        import json, sys, threading
        from meshlab.backends.local.addresses import AddressLease
        from meshlab.backends.local.pods import PodRunner, PodSpec
        lease = AddressLease()
        r = PodRunner()
        # start from a short-lived thread: PDEATHSIG must still fire when the *process* dies
        t = threading.Thread(target=r.start, args=([PodSpec(f"p{i}", "default", lease.pod_ip(), [8080], "v1") for i in range(2)],))
        t.start(); t.join()
        print(json.dumps([p.pid for p in r.pods.values()]), flush=True)
        threading.Event().wait()
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(parent.stdout.readline())
        assert len(pids) == 2 and all(alive(p) for p in pids)
    finally:
        parent.kill()
        parent.wait()
    assert survivors(pids) == []


def test_two_leases_never_share_a_block():
    a, b = AddressLease(), AddressLease()
    try:
        assert a.block != b.block
        assert a.pod_ip() != b.pod_ip()
        # another process cannot take a held block either
        out = subprocess.run([sys.executable, "-c",
                              "from meshlab.backends.local.addresses import AddressLease as L; print(L().block)"],
                             capture_output=True, text=True, check=True).stdout
        assert int(out) not in (a.block, b.block)
        held = a.block
    finally:
        a.release()
        b.release()
    c = AddressLease(block=held)        # released blocks can be leased again
    c.release()


def test_lease_layout():
    with AddressLease() as lease:
        A = lease.block
        assert lease.sidecar_ip == f"127.{A}.0.1" and lease.gateway_ip == f"127.{A}.0.2"
        assert lease.pod_ip().startswith(f"127.{A}.1.")
        assert lease.cluster_ip().startswith(f"127.{A}.2.")
        assert lease.proxy_ip() == f"127.{A}.0.3"


def test_latency_knob_refuses_nan_and_infinity():
    """latency_ms=float('nan') (e.g. from an empty pandas cell) was accepted, and every request
    to the pod then hung until the probe's timeout."""
    with AddressLease() as lease:
        runner = PodRunner()
        try:
            spec = PodSpec("k0", "default", lease.pod_ip(), [8080], "v1")
            runner.start([spec])
            for bad in (float("nan"), float("inf")):
                with pytest.raises(ValueError, match="latency_ms"):
                    runner.get("k0").set_knobs(latency_ms=bad)
            assert _status(spec.ip, 8080) == 200           # nothing changed
        finally:
            runner.close()
