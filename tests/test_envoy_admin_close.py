"""The admin client's keep-alive connections (one per thread) are closed when the Envoy stops:
none is left to the garbage collector (a ResourceWarning per proxy at a lab's end)."""

from __future__ import annotations

import http.server
import socketserver
import threading

from meshlab.envoy.admin import AdminClient


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"LIVE"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):       # BaseHTTPRequestHandler wants a (host, port) client address
        sock, _ = super().get_request()
        return sock, ("local", 0)


def test_close_closes_every_threads_connection(tmp_path) -> None:
    path = str(tmp_path / "admin.sock")
    with _UnixServer(path, _Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        admin = AdminClient(path)
        assert admin.get("/ready") == "LIVE"
        other = threading.Thread(target=lambda: admin.get("/ready"))
        other.start()
        other.join()
        conns = list(admin._conns)
        assert len(conns) == 2 and all(c.sock is not None for c in conns)
        admin.close()
        assert all(c.sock is None for c in conns)
        assert admin.get("/ready") == "LIVE"       # usable again: a new connection
        admin.close()
        server.shutdown()
