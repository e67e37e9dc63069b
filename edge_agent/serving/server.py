"""The agent's REST endpoint: the KServe v2 app on uvicorn (h11, asyncio), on its own thread.

The listening socket is bound here, before the server thread starts, so a port in use is a
clear error at start-up and ``port`` 0 has its number at once. uvicorn brings the HTTP parsing,
keep-alive and graceful shutdown; ``protocol.GuardedH11Protocol`` adds the request deadline and
the 503 + Retry-After over the connection limit; ``app`` the routes and the body caps.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import uvicorn

from edge_agent.errors import BadInputError
from edge_agent.serving.app import ByteBudget, Context, build_app
from edge_agent.serving.engine import Engine
from edge_agent.serving.options import RestOptions
from edge_agent.serving.protocol import GuardedH11Protocol

log = logging.getLogger("edge_agent.serving.rest")


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket, or a one-line error that names the port and ``--port``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BadInputError(
            f"cannot listen on {host!r}: {exc.strerror}; pass an address of this machine "
            "with --host (127.0.0.1 by default)"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BadInputError(
                f"port {port} on {host} is already in use; pick another with --port N "
                "(0 = any free port)"
            ) from None
        if exc.errno == errno.EACCES:
            raise BadInputError(
                f"no permission to listen on port {port}; pick one above 1023 with --port N"
            ) from None
        raise BadInputError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


class RestServer:
    """Runs the KServe v2 HTTP server on its own thread; ``port`` 0 picks a free one."""

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        token: str | None,
        max_bytes: int,
        options: RestOptions | None = None,
    ) -> None:
        opts = options or RestOptions()
        if opts.max_request_bytes != max_bytes:
            from dataclasses import replace

            opts = replace(opts, max_request_bytes=max_bytes)
        self.options = opts
        self.socket = bind(host, port, opts.backlog)
        self.pool = ThreadPoolExecutor(opts.worker_count(), thread_name_prefix="edge-agent-rest")
        budget = ByteBudget(max(opts.max_inflight_bytes, opts.max_request_bytes))
        app = build_app(Context(engine, token, opts, self.pool, budget))
        config = uvicorn.Config(
            app,
            http=partial(  # type: ignore[arg-type]  # uvicorn takes any protocol factory
                GuardedH11Protocol,
                request_timeout=opts.request_timeout_s,
                retry_after=opts.retry_after_s,
            ),  # fmt: skip
            loop="asyncio",
            ws="none",
            lifespan="off",
            interface="asgi3",
            backlog=opts.backlog,
            limit_concurrency=opts.max_connections,
            timeout_keep_alive=opts.keepalive_s,  # type: ignore[arg-type]
            timeout_graceful_shutdown=opts.shutdown_timeout_s,  # type: ignore[arg-type]
            access_log=opts.access_log,
            log_config=None,  # the agent's logging, not uvicorn's dictConfig
            # uvicorn warns once per malformed request: a hostile client could fill the log
            log_level="info" if opts.access_log else "error",
            proxy_headers=False,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="edge-agent-rest", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        except BaseException:  # SystemExit from uvicorn's start-up failure included
            log.exception("the REST server stopped")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise BadInputError(f"the REST server did not start on {self.url}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to the shutdown timeout), close."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(self.options.shutdown_timeout_s + 5)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.socket.close()
