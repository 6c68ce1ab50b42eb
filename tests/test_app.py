"""The demo workload: who answered, keep-alive, and the knobs a notebook turns."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from meshlab.backends.local.addresses import AddressLease
from meshlab.app import Knobs
from meshlab.backends.local.pods import PodRunner, PodSpec


@pytest.fixture
def pod():
    with AddressLease() as lease:
        runner = PodRunner()
        ip = lease.pod_ip()
        runner.start([PodSpec("web-1", "shop", ip, [8080, 9090], "v2", seed=7)])
        try:
            yield runner.get("web-1", "shop")
        finally:
            runner.close()


def _get(ip: str, port: int, path: str = "/", conn: http.client.HTTPConnection | None = None,
         headers: dict | None = None):
    c = conn or http.client.HTTPConnection(ip, port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    return r, r.read()


def _knobs(ip: str, body: dict) -> tuple[int, dict]:
    c = http.client.HTTPConnection(ip, 15999, timeout=10)
    c.request("POST", "/knobs", body=json.dumps(body))
    r = c.getresponse()
    return r.status, json.loads(r.read())


def test_answers_with_pod_identity_on_every_port(pod):
    ip = pod.spec.ip
    for port in (8080, 9090):
        r, body = _get(ip, port, "/wpcatalog?x=1", headers={"Host": "shop:8080", "x-user": "jason"})
        data = json.loads(body)
        assert r.status == 200
        assert r.getheader("x-meshlab-pod") == "web-1"
        assert r.getheader("x-meshlab-version") == "v2"
        assert data["pod"] == "web-1" and data["namespace"] == "shop" and data["version"] == "v2"
        assert data["path"] == "/wpcatalog?x=1" and data["host"] == "shop:8080" and data["port"] == port
        assert data["headers"]["x-user"] == "jason"


def test_keepalive_and_connection_close(pod):
    c = http.client.HTTPConnection(pod.spec.ip, 8080, timeout=10)
    for _ in range(5):
        r, _ = _get(pod.spec.ip, 8080, conn=c)
        assert r.status == 200 and not r.will_close
    r, _ = _get(pod.spec.ip, 8080, conn=c, headers={"Connection": "close"})
    assert r.will_close


def test_pipelined_and_chunked_requests_are_answered_in_order(pod):
    s = socket.create_connection((pod.spec.ip, 8080), timeout=10)
    s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
              b"GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
              b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    paths = [json.loads(line)["path"] for line in data.split(b"\r\n\r\n")[1:] for line in [line.split(b"\n")[0]]]
    assert data.count(b"HTTP/1.1 200") == 3
    assert paths == ["/a", "/b", "/c"]


def test_error_rate_is_seeded_and_reproducible(pod):
    ip = pod.spec.ip
    assert _knobs(ip, {"error_rate": 0.5, "error_code": 502, "seed": 42})[0] == 200
    first = [_get(ip, 8080)[0].status for _ in range(40)]
    assert _knobs(ip, {"seed": 42})[0] == 200
    second = [_get(ip, 8080)[0].status for _ in range(40)]
    assert first == second
    assert set(first) == {200, 502}
    assert 8 <= first.count(502) <= 32     # binomial(40, .5): outside this is < 1e-4


def test_error_rate_one_fails_everything_and_body_says_why(pod):
    _knobs(pod.spec.ip, {"error_rate": 1.0})
    r, body = _get(pod.spec.ip, 9090)
    assert r.status == 503 and "error_rate" in json.loads(body)["error"]


def test_readiness_endpoint_follows_the_knob(pod):
    ip = pod.spec.ip
    assert _get(ip, 15999, "/ready")[0].status == 200
    _knobs(ip, {"ready": False})
    assert _get(ip, 15999, "/ready")[0].status == 503
    assert _get(ip, 8080)[0].status == 200     # not ready != not serving (the endpoint list decides)


def test_latency_knob_delays_answers(pod):
    import time
    _knobs(pod.spec.ip, {"latency_ms": 150})
    t = time.perf_counter()
    assert _get(pod.spec.ip, 8080)[0].status == 200
    assert (time.perf_counter() - t) >= 0.14


def test_bad_knob_is_refused_and_changes_nothing(pod):
    ip = pod.spec.ip
    before = _knobs(ip, {})[1]
    status, body = _knobs(ip, {"error_rate": 0.3, "latency_ms": -1})
    assert status == 400 and "latency_ms" in body["error"]
    status, body = _knobs(ip, {"colour": "red"})
    assert status == 400 and "colour" in body["error"]
    assert _knobs(ip, {})[1] == before


def test_knobs_unit_validation():
    k = Knobs("x", seed=None)
    with pytest.raises(ValueError, match="error_rate"):
        k.update({"error_rate": 1.5})
    with pytest.raises(ValueError, match="ready"):
        k.update({"ready": "yes"})
    k.update({"error_code": 500})
    assert k.as_dict()["error_code"] == 500


def test_head_gets_headers_only_and_the_connection_stays_usable(pod):
    c = http.client.HTTPConnection(pod.spec.ip, 8080, timeout=10)
    c.request("HEAD", "/x")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"" and int(r.getheader("content-length")) > 0
    r2, body = _get(pod.spec.ip, 8080, "/y", conn=c)
    assert r2.status == 200 and json.loads(body)["path"] == "/y"


def test_a_body_larger_than_a_pod_takes_is_refused_not_buffered(pod):
    """Anyone on the host can reach a pod's port (loopback is shared): a POST announcing 1 GB and
    streaming it grew the pod to 284 MB for 150 MB sent, copying its buffer at every read (136 s
    of CPU on a shared host), and a negative content-length was taken. A body over the pod's
    limit is answered 413 and the connection closed; a negative or unreadable length is a 400."""
    def answer(head: bytes, body: bytes = b"") -> bytes:
        s = socket.create_connection((pod.spec.ip, 8080), timeout=10)
        try:
            s.sendall(head + body)
            return s.recv(4096).split(b"\r\n", 1)[0]
        finally:
            s.close()

    assert answer(b"POST / HTTP/1.1\r\nhost: web\r\ncontent-length: 1000000000\r\n\r\n", b"x" * 65536) \
        == b"HTTP/1.1 413 Payload Too Large"
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
    assert answer(b"POST / HTTP/1.1\r\nhost: web\r\ntransfer-encoding: chunked\r\n\r\n", chunk * 3) \
        == b"HTTP/1.1 413 Payload Too Large"
    assert answer(b"POST / HTTP/1.1\r\nhost: web\r\ncontent-length: -5\r\n\r\nabcdefghij") == b"HTTP/1.1 400 Bad Request"
    r, _ = _get(pod.spec.ip, 8080)                       # the pod still answers
    assert r.status == 200
    with open(f"/proc/{pod.pid}/status") as f:
        rss_mb = int(next(x for x in f if x.startswith("VmRSS")).split()[1]) // 1024
    assert rss_mb < 64


def test_the_race_free_idle_timeout_leaves_a_round_trip_of_the_network():
    from meshlab.app import race_free_idle_ms
    assert race_free_idle_ms({"KEEPALIVE_TIMEOUT_MS": "100", "NETWORK_DELAY_MS": "25"}) == (100.0, 50.0)
    assert race_free_idle_ms({"KEEPALIVE_TIMEOUT_MS": "100"}) == (100.0, 100.0)
    assert race_free_idle_ms({"KEEPALIVE_TIMEOUT_MS": "20", "NETWORK_DELAY_MS": "25"}) == (20.0, 0.0)
    assert race_free_idle_ms({"KEEPALIVE_TIMEOUT_MS": "0"}) is None and race_free_idle_ms({}) is None
    assert race_free_idle_ms({"KEEPALIVE_TIMEOUT_MS": "soon"}) is None
