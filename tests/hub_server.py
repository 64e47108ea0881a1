"""A small Windmill Hub on loopback for the tests: ``GET /raw2/<id>/<app>/<name>`` answers the
script's JSON as the hub does; anything else is 404. It counts the requests it served."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHub:
    def __init__(self, scripts: dict[str, dict[str, Any]], raw: dict[str, bytes] | None = None) -> None:
        #: ``"hub/<id>/<app>/<name>"`` -> the hub's answer (``content``, ``language``, ...)
        self.scripts = scripts
        #: ``"hub/<id>/<app>/<name>"`` -> a body answered as it is (for broken answers)
        self.raw = raw or {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with hub._lock:
                    hub.requests.append(self.path)
                prefix = "/raw2/"
                path = "hub/" + self.path[len(prefix) :] if self.path.startswith(prefix) else ""
                found = hub.scripts.get(path)
                body = json.dumps(found).encode() if found is not None else hub.raw.get(path, b"not found")
                if path in hub.raw:
                    found = {}
                self.send_response(200 if found is not None else 404)
                self.send_header("Content-Type", "application/json" if found is not None else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script_requests(self, path: str) -> int:
        """How many times the script ``hub/...`` was asked for."""
        with self._lock:
            return self.requests.count("/raw2/" + path.removeprefix("hub/"))

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def fake_hub(scripts: dict[str, dict[str, Any]], raw: dict[str, bytes] | None = None) -> Iterator[FakeHub]:
    hub = FakeHub(scripts, raw).start()
    try:
        yield hub
    finally:
        hub.stop()


def unreachable_url() -> str:
    """A loopback URL where nothing listens (a port that was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
