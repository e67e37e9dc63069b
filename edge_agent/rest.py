"""The local REST endpoint: the Open Inference Protocol (KServe v2) subset, on stdlib http.server.

Bound to 127.0.0.1 by default; with a token set, every /v2/models call needs
``Authorization: Bearer <token>`` (health stays open for probes). Bad requests get HTTP 400 (413
when over the caps) with ``{"error": reason}``; nothing a client sends can produce a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge_agent.engine import Engine, ModelError
from edge_agent.validation import RequestError

log = logging.getLogger("edge_agent.rest")
_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer|/feedback)?$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    engine: Engine
    token: str | None
    max_request_bytes: int


class Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "edgekit-edge-agent"

    def setup(self) -> None:
        super().setup()
        # small JSON replies: without this, Nagle + delayed ACK add ~40 ms per keep-alive call
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing -------------------------------------------------------------------------------
    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        header = self.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if hmac.compare_digest(given.encode(), token.encode()):
            return True
        self.server.engine.record_error("unauthorized")
        self._error(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
        return False

    def _read_json(self) -> Any:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise RequestError("the request needs a Content-Length header")
        try:
            length = int(length_text)
        except ValueError:
            raise RequestError("Content-Length is not a number") from None
        if length < 0:
            raise RequestError("Content-Length is negative")
        if length > self.server.max_request_bytes:
            self.close_connection = True  # do not read a body we refuse
            raise RequestError(
                f"request body of {length} bytes exceeds the cap of "
                f"{self.server.max_request_bytes}",
                "too_large",
            )
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from None

    # -- routes ---------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        engine = self.server.engine
        path = self.path.split("?", 1)[0]
        if path == "/v2/health/live":
            return self._send(200, {"live": True})
        if path == "/v2/health/ready":
            return self._send(200 if engine.ready else 503, {"ready": engine.ready})
        if path == "/v2":
            return self._send(200, {"name": "edgekit-edge-agent", "version": "1", "extensions": []})
        match = _MODEL_PATH.match(path)
        if not match or match.group(3) not in (None, "/ready"):
            return self._error(404, f"no route GET {path}")
        if not self._authorized():
            return None
        if not self._model_matches(match):
            return None
        if match.group(3) == "/ready":
            return self._send(
                200 if engine.ready else 503, {"name": match.group(1), "ready": engine.ready}
            )
        return self._send(200, engine.metadata())

    def do_POST(self) -> None:  # noqa: N802
        received = time.perf_counter()
        engine = self.server.engine
        path = self.path.split("?", 1)[0]
        match = _MODEL_PATH.match(path)
        if not match or match.group(3) not in ("/infer", "/feedback"):
            self._discard_body()
            return self._error(404, f"no route POST {path}")
        if not self._authorized() or not self._model_matches(match):
            self._discard_body()
            return None
        try:
            body = self._read_json()
        except RequestError as exc:
            if match.group(3) == "/infer":
                engine.record_error(exc.kind)
            return self._error(exc.status, exc.message)
        try:
            if match.group(3) == "/feedback":
                return self._send(200, engine.feedback(body))
            if not engine.ready:
                engine.record_error("not_ready")
                return self._error(503, "the model is not ready")
            return self._send(200, engine.infer_json(body, received))
        except RequestError as exc:
            return self._error(exc.status, exc.message)
        except ModelError as exc:
            return self._error(500, str(exc))

    def _model_matches(self, match: re.Match[str]) -> bool:
        engine = self.server.engine
        name, version = match.group(1), match.group(2)
        model = engine.model
        if name != model.name:
            self._error(404, f"no model {name!r}; this agent serves {model.name!r}")
            return False
        if version is not None and version != model.variant:
            self._error(
                404, f"model {name!r} has no version {version!r}; serving {model.variant!r}"
            )
            return False
        return True

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= self.server.max_request_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


class RestServer:
    """Runs the HTTP server on its own thread; ``port`` 0 picks a free one."""

    def __init__(self, engine: Engine, host: str, port: int, token: str | None, max_bytes: int):
        self.httpd = _Server((host, port), Handler)
        self.httpd.engine = engine
        self.httpd.token = token
        self.httpd.max_request_bytes = max_bytes
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="edge-agent-rest", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
