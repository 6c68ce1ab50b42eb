"""The pod-address allocator passes over an address where a process that is not a lab holds a port the
pod needs (the lease keeps other labs off the block, not a learner's own server on 127.A.1.1:9080).

Real sockets, bound by the test on the very address the allocator would give next; nothing of the
socket layer is replaced. Sockets are bound as servers usually are (SO_REUSEADDR), so the TIME_WAIT
connections other labs on this host leave behind do not get in the way.
"""

from __future__ import annotations

import socket
import sys
from contextlib import contextmanager

import pytest

from _manifests import deployment, docs, service
from meshlab import Lab
from meshlab.backends.local.addresses import POD_ADDRESSES, AddressLease
from meshlab.errors import AddressBlockExhausted

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the local backend is Linux only")


@contextmanager
def server(ip: str, port: int, *, listen: bool = True):
    """A foreign process's socket on ip:port: a listening server (SO_REUSEADDR, as servers bind), or
    a socket only bound, without SO_REUSEADDR (which no later bind of that address may share)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if listen:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        if listen:
            s.listen()
        yield s
    finally:
        s.close()


@pytest.fixture
def lease():
    with AddressLease() as lease:
        yield lease


# a port labs' pods do not use, so no TIME_WAIT of an earlier lab on this block is on it (a bind
# without SO_REUSEADDR would trip over one)
@pytest.mark.parametrize("port,listen", [(9080, True), (17345, False)], ids=["listening", "bound-only"])
def test_an_address_where_a_foreign_process_holds_the_pods_port_is_passed_over(lease, port, listen):
    held = f"{lease.prefix}.1.1"                       # what a fresh lease gives first
    with server(held, port, listen=listen):
        assert lease.pod_ip([port]) == f"{lease.prefix}.1.2"
        assert lease.pod_ip([9081, port]) == f"{lease.prefix}.1.3"
    # only the ports the pod needs count: another port of that address is no obstacle
    with server(f"{lease.prefix}.1.4", 9999):
        assert lease.pod_ip([port]) == f"{lease.prefix}.1.4"


def test_a_passed_over_address_is_given_again_once_it_is_free(lease):
    for _ in range(POD_ADDRESSES - 1):                 # every address but the last one is a pod's
        lease.pod_ip()
    last, freed = f"{lease.prefix}.254.254", f"{lease.prefix}.1.7"
    with server(last, 9080):
        lease.release_pod_ip(freed)
        assert lease.pod_ip([9080]) == freed           # the last fresh one was held: the freed one
        with pytest.raises(AddressBlockExhausted) as info:
            lease.pod_ip([9080])
        # none is free: the error names the block, the port, and what holds the address passed over
        assert f"127.{lease.block}.0.0/16" in str(info.value) and f"{last}:9080 (Address already in use)" in str(info.value)
    assert lease.pod_ip([9080]) == last                # once its holder is gone, it is a pod's again


def test_a_port_held_on_every_address_is_a_clear_error_at_once(lease):
    with server("0.0.0.0", 0) as wildcard:             # a learner's server on all addresses
        port = wildcard.getsockname()[1]
        with pytest.raises(AddressBlockExhausted) as info:
            lease.pod_ip([port])
        message = str(info.value)
        assert f"port {port}" in message and f"0.0.0.0:{port}" in message
        assert f"{lease.prefix}.1.1:{port} (Address already in use)" in message
    # nothing was used up: the address passed over comes back after the fresh ones
    assert lease.pod_ip([port]) == f"{lease.prefix}.1.2"


def test_a_labs_pod_starts_on_the_next_address_when_its_own_is_held():
    with Lab(seed=1) as lab:
        held = f"{lab.backend.lease.prefix}.1.1"
        with server(held, 9080):
            lab.apply(docs(deployment("reviews", "v1"), service("reviews")))
            pods = lab.pods()
            assert pods.ip.tolist() == [f"{lab.backend.lease.prefix}.1.2"] and pods.ready.all()
            df = lab.probe("http://reviews:9080/", n=3, seed=1)
            assert df["status"].tolist() == [200, 200, 200] and set(df["pod"]) == set(pods.name)


def test_a_lab_whose_pods_port_is_held_everywhere_says_so_and_applies_nothing():
    with server("0.0.0.0", 0) as wildcard, Lab(seed=1) as lab:
        port = wildcard.getsockname()[1]
        with pytest.raises(AddressBlockExhausted) as info:
            lab.apply(docs(deployment("reviews", "v1", port=port), service("reviews", port=port)))
        message = str(info.value)
        assert message.startswith("pod default/reviews-v1-") and f"0.0.0.0:{port}" in message
        assert lab.pods().empty and not [o for o in lab.objects() if o.kind != "Namespace"]
