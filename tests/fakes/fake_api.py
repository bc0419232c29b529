"""A fake Casola API: a real HTTP server that records every heartbeat and its Authorization header."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeApi(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.heartbeats: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.status = 200
        self.uploads: dict[str, bytes] = {}
        self.documents: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Host header
        self.posts: dict[str, list[dict[str, Any]]] = {}  # the JSON bodies POSTed to each other path
        self.failing: set[str] = set()  # paths that answer 503, as in an outage
        self.refused: dict[str, int] = {}  # how many POSTs each failing path refused
        self.slow_running = 0.0  # seconds a `running` heartbeat takes to be taken in (recorded) and answered
        self.slow_paths: dict[str, float] = {}  # the same for every POST to these paths
        self.holding = threading.Event()  # set when a slow POST starts to be taken in
        self.held = threading.Event()  # set when it is recorded

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "FakeApi":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def statuses(self) -> list[str]:
        return [beat["status"] for beat in self.heartbeats]

    def wait_for_status(self, status: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for beat in list(self.heartbeats):
                if beat["status"] == status:
                    return beat
            time.sleep(0.01)
        raise TimeoutError(f"no {status!r} heartbeat; got {self.statuses()}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeApi

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:
            self.server.requests.append((self.command, self.path, self.headers.get("Host")))
        return parsed

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path in self.server.failing:
            self.server.refused[self.path] = self.server.refused.get(self.path, 0) + 1
            self._send(503, b"{}")
            return
        document = json.loads(body)
        heartbeat = self.path == "/api/heartbeats"
        slow = self.server.slow_running if heartbeat and document["status"] == "running" else 0.0
        slow = slow or self.server.slow_paths.get(self.path, 0.0)
        if slow:
            self.server.holding.set()
            time.sleep(slow)  # an API that takes its time: this POST is recorded late
        if heartbeat:
            self.server.authorizations.append(self.headers.get("Authorization"))
            self.server.heartbeats.append(document)
        else:
            self.server.posts.setdefault(self.path, []).append(document)
        if slow:
            self.server.held.set()
        self._send(self.server.status, b"{}")

    def do_PUT(self) -> None:
        self.server.uploads[self.path] = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(200, b"")

    def do_GET(self) -> None:
        status, body, headers = self.server.documents.get(self.path, (404, b"not found", {}))
        self._send(status, body, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
