"""A loopback HTTP proxy in front of a DICOMweb server that counts requests (issue 27 tests and benchmark).

:class:`CountingProxy` forwards every request to the upstream server and
records ``(method, path)``, the number of requests in flight and its maximum.
With ``gate=k`` the first ``k`` requests are held until ``k`` are in flight at
once (only requests whose path contains ``gate_match`` count and wait; or
``gate_timeout`` seconds pass: then ``gate_timed_out`` is True), which
proves, without timing assumptions, that a client really has ``k`` requests
open together. ``delay_s`` adds a latency to every request (benchmarks).
``log_path`` also appends one line per request to a file
(visible to other processes).
"""
from __future__ import annotations

import http.server
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any

import requests

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host",
        "proxy-connection", "te", "trailer", "upgrade"}


class CountingProxy:
    def __init__(self, upstream: str, gate: int = 0, gate_timeout: float = 30.0, log_path: "str | None" = None,
                 gate_match: str = "", delay_s: float = 0.0):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_base = f"{parsed.scheme}://{parsed.netloc}"
        self.root_path = parsed.path.rstrip("/")
        self.gate, self.gate_timeout, self.log_path, self.gate_match = gate, gate_timeout, log_path, gate_match
        self.delay_s = delay_s
        self.requests: list[tuple[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        self.gate_timed_out = False
        self._arrived = 0
        self._open = threading.Event()
        self._lock = threading.Lock()
        self._server: "http.server.ThreadingHTTPServer | None" = None
        self._local = threading.local()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.root_path}"

    def count(self, fragment: str, method: str = "GET") -> int:
        """Requests of ``method`` whose path contains ``fragment``."""
        return sum(1 for m, path in self.requests if m == method and fragment in path)

    def paths(self) -> Counter:
        return Counter(path for _, path in self.requests)

    def reset(self, gate: "int | None" = None, gate_match: str = "") -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0
            self.gate_timed_out = False
            self._arrived = 0
            self._open.clear()
            self.gate_match = gate_match
            if gate is not None:
                self.gate = gate

    def _enter(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            gated = self.gate_match in path
            self._arrived += gated
            held = gated and self._arrived <= self.gate
            if self._arrived >= self.gate:
                self._open.set()
        if self.log_path:
            with open(self.log_path, "a") as handle:
                handle.write(f"{method} {path}\n")
        if self.delay_s:
            time.sleep(self.delay_s)  # a network's latency (benchmark only)
        if held and not self._open.wait(self.gate_timeout):
            self.gate_timed_out = True
            self._open.set()

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _handler(self) -> type:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy._enter(self.command, self.path)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    answer = proxy._session().request(self.command, proxy.upstream_base + self.path,
                                                      headers=headers, data=body, timeout=120)
                finally:
                    proxy._leave()
                content = answer.content
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        return Handler

    def __enter__(self) -> "CountingProxy":
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
