"""uvicorn's h11 protocol with the two guards uvicorn leaves out.

1. A deadline for receiving a whole request. uvicorn's keep-alive timer restarts on every byte, so
   a client that trickles its headers or its body holds a connection for ever (slowloris). The
   deadline starts with the first byte of a request (or with the connection) and ends when the
   request is complete; when it passes, a request still being received gets 408 and the
   connection is closed.
2. 503 with ``Retry-After`` over ``limit_concurrency``: uvicorn's own answer has no Retry-After,
   so the protocol takes the limit over and answers with its own app.

Both hook into ``H11Protocol`` at documented-in-code points (``connection_made``,
``data_received``, ``handle_events``, ``shutdown``) of the pinned uvicorn version.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("edge_agent.serving.rest")

RECEIVING = (h11.IDLE, h11.SEND_BODY)
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def json_error(
    status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> ASGIApp:
    """An ASGI app that answers ``{"error": message}`` with ``status`` and closes."""
    body = json.dumps({"error": message}).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """One client connection; ``request_timeout`` and ``retry_after`` come from a partial."""

    def __init__(
        self, *args: Any, request_timeout: float, retry_after: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._limit = self.limit_concurrency
        self.limit_concurrency = None  # ours, below: uvicorn's 503 has no Retry-After
        self._app = self.app
        self._busy = json_error(
            503,
            "the agent is at its connection limit; retry shortly",
            [(b"retry-after", str(retry_after).encode())],
        )

    # -- the request deadline ----------------------------------------------------------------
    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is a stalled request too

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state in RECEIVING:
            self._arm()
        super().data_received(data)
        if self.conn.their_state not in RECEIVING:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in RECEIVING:
            return
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if answering and cycle.response_started:
            pass  # the answer went out; the client is still sending a body nobody reads
        elif self.conn.their_state is h11.SEND_BODY or (
            self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]
        ):
            self.transport.write(
                _raw_response(
                    408,
                    "Request Timeout",
                    f"the request was not received within {self.request_timeout:g} s",
                )
            )
        if answering:
            cycle.disconnected = True  # the app's receive() ends, its sends are dropped
            cycle.message_event.set()
        log.debug(
            "closed a connection from %s: no whole request within %g s",
            self.client,
            self.request_timeout,
        )
        self.transport.close()

    # -- 503 + Retry-After over the connection limit -------------------------------------------
    def handle_events(self) -> None:
        over = self._limit is not None and (
            len(self.connections) > self._limit or len(self.tasks) >= self._limit
        )
        self.app = self._busy if over else self._app
        super().handle_events()

    # -- graceful shutdown ---------------------------------------------------------------------
    def shutdown(self) -> None:
        """Requests received finish (uvicorn's rule); one still being uploaded is closed."""
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_started
            and self.conn.their_state is h11.SEND_BODY
        ):
            self._disarm()
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.close()
            return
        super().shutdown()
