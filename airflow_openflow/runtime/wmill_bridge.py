"""How a TypeScript step's ``wmill`` client reaches the step's session: a tiny HTTP endpoint on
127.0.0.1 served by the task process that runs the script, for the script's lifetime only.

The child gets the endpoint's URL and a random bearer token in its environment
(``OPENFLOW_WMILL_URL``, ``OPENFLOW_WMILL_TOKEN``); its client (``scripts/ts/wmill.ts``) POSTs
``{"call": <python name>, "args": {...}}`` and gets ``{"result": ...}`` or ``{"error": {name,
message}}``. Each call is answered by the Python SDK function of the same name
(``runtime/wmill_sdk.py``), in the thread that runs the step (``serve`` is called by the runner
while it waits for the child), so a TS step's calls see exactly the session, backend and Airflow
state a python3 step's calls see. The script never talks to Airflow's database.

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Final

from airflow_openflow.runtime import wmill_sdk
from airflow_openflow.runtime.errors import StepError, exception_text
from airflow_openflow.runtime.wmill_session import WmillNotSupported, WmillSession, current_session

__all__ = ["BRIDGE_CALLS", "WmillBridge", "bridge_for_step"]

#: The Python SDK functions a TS client may call through the bridge (wmill_sdk.py names).
BRIDGE_CALLS: Final = frozenset(
    {
        "get_root_job_id",
        "get_job_id",
        "get_variable",
        "set_variable",
        "get_resource",
        "set_resource",
        "get_state",
        "set_state",
        "get_state_path",
        "get_flow_user_state",
        "set_flow_user_state",
        "get_resume_urls",
    }
)

#: The largest request body accepted (a state or resource value); Windmill's API has limits too.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


class _Server(HTTPServer):
    token: str
    answer: Callable[[str, dict[str, Any]], dict[str, Any]]

    def handle_error(self, request: Any, client_address: Any) -> None:  # no traceback on stderr
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: the serving loop stays simple

    def log_message(self, format: str, *args: Any) -> None:  # the task log stays the script's
        pass

    def do_POST(self) -> None:
        given = (self.headers.get("Authorization") or "").encode()
        if not hmac.compare_digest(given, f"Bearer {self.server.token}".encode()) or self.path != "/call":
            self._reply(403, {"error": {"name": "Forbidden", "message": "not this step's wmill bridge"}})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY_BYTES:
                raise ValueError(f"a request of {length} bytes is over the limit of {MAX_BODY_BYTES}")
            request = json.loads(self.rfile.read(length))
            call, args = request["call"], request.get("args") or {}
            if not isinstance(call, str) or not isinstance(args, dict):
                raise ValueError("expected {call: string, args: object}")
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error": {"name": "BadRequest", "message": str(exc)}})
            return
        self._reply(200, self.server.answer(call, args))

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        try:
            data = json.dumps(body, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            data = json.dumps(
                {"error": {"name": "TypeError", "message": f"the value is not JSON: {exc}"}}
            ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def answer_call(call: str, args: dict[str, Any]) -> dict[str, Any]:
    """``{"result": ...}`` of the SDK function ``call`` with keyword ``args``, or ``{"error": ...}``:
    the exception's class name and message, as the script should see them thrown."""
    if call not in BRIDGE_CALLS:
        return {
            "error": {
                "name": WmillNotSupported.__name__,
                "message": f"not supported on Airflow: wmill.{call}",
            }
        }
    try:
        return {"result": getattr(wmill_sdk, call)(**args)}
    except StepError as exc:
        error = exc.error.get("error", {})
        return {"error": {"name": error.get("name", "Error"), "message": error.get("message", str(exc))}}
    except Exception as exc:
        return {"error": {"name": type(exc).__name__, "message": exception_text(exc)}}


class WmillBridge:
    """The endpoint of one step's run. ``environment`` goes to the child; call :meth:`serve` while
    it runs; close with :meth:`close` (or use :func:`bridge_for_step`)."""

    def __init__(self, session: WmillSession | None) -> None:
        self.session = session
        self._server = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=True)
        self._server.token = secrets.token_urlsafe(32)
        self._server.answer = answer_call
        self._server.socket.setblocking(False)

    @property
    def environment(self) -> dict[str, str]:
        host, port = self._server.server_address[:2]
        return {
            "OPENFLOW_WMILL_URL": f"http://{host!s}:{port}/call",
            "OPENFLOW_WMILL_TOKEN": self._server.token,
            **(self.session.environment if self.session is not None else {}),
        }

    def serve(self, proc: subprocess.Popen[bytes], timeout_s: float | None) -> int | None:
        """Answer the child's calls until it exits (its exit code) or ``timeout_s`` passes (None).

        Calls are answered in this thread, one at a time, as the script makes them."""
        deadline = time.monotonic() + timeout_s if timeout_s else None
        ended = threading.Event()
        wake_read, wake_write = socket.socketpair()

        def wait_for_exit() -> None:
            with contextlib.suppress(Exception):
                proc.wait()
            ended.set()
            with contextlib.suppress(OSError):
                wake_write.send(b"x")

        waiter = threading.Thread(target=wait_for_exit, daemon=True)
        waiter.start()
        with selectors.DefaultSelector() as selector, wake_read, wake_write:
            selector.register(self._server.socket, selectors.EVENT_READ, "request")
            selector.register(wake_read, selectors.EVENT_READ, "ended")
            while not ended.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                for key, _ in selector.select(remaining):
                    if key.data == "request":
                        self._handle_one()
        return proc.returncode

    def _handle_one(self) -> None:
        try:
            connection, address = self._server.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        connection.setblocking(True)
        connection.settimeout(60)  # a client that stops mid-request must not hang the step
        try:
            self._server.finish_request(connection, address)
        except Exception:
            pass  # a broken request: the client sees a closed connection
        finally:
            self._server.shutdown_request(connection)

    def close(self) -> None:
        self._server.server_close()


def _current_session() -> WmillSession | None:
    try:
        return current_session("bridge")
    except WmillNotSupported:
        return None


@contextlib.contextmanager
def bridge_for_step() -> Iterator[WmillBridge]:
    """The bridge of the step running in this thread (its ``wmill`` session, when it has one)."""
    bridge = WmillBridge(_current_session())
    try:
        yield bridge
    finally:
        bridge.close()
