"""The IPC server: one asyncio Unix-socket server per simulated device.

Connection rules from IPC_PROTOCOL.md: CONNECT with the component's SVCUID gets a CONNECT_ACK
with the accepted flag; a bad token gets a CONNECT_ACK without it and the socket is closed only
after a delay (so the client reports AccessDeniedError, not a closed socket); pings are answered
but never sent; a bad frame or a message before CONNECT drops the connection; a streaming
operation's response is written before any of its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.toolkit.simulator.eventstream import Decoder, Frame, FrameError, encode
from edgekit.toolkit.simulator.ipc import rpc
from edgekit.toolkit.simulator.ipc.operations import OPERATIONS, Core, unsupported
from edgekit.toolkit.simulator.ipc.rpc import IpcError, MessageType, ServiceError

log = logging.getLogger(__name__)

REJECT_CLOSE_DELAY_S = 1.0
MAX_WRITE_BUFFER = 16 * 1024 * 1024  # events to a subscriber that stopped reading are dropped


class StreamCall:
    """One operation on one stream id: who called, and how events go back."""

    def __init__(self, conn: Connection, stream_id: int, operation: str, event_type: str | None):
        self.conn = conn
        self.stream_id = stream_id
        self.operation = operation
        self.component = conn.component or ""
        self.event_type = event_type
        self.ready = False
        self.closed = False
        self._pending: list[dict] = []
        self._cleanups: list[Callable[[], None]] = []

    def emit(self, body: dict[str, Any]) -> None:
        if self.closed or self.event_type is None:
            return
        if not self.ready:
            self._pending.append(body)
            return
        self.conn.send(rpc.event(self.stream_id, self.event_type, body), droppable=True)

    def on_close(self, fn: Callable[[], None]) -> None:
        self._cleanups.append(fn)

    def opened(self) -> None:
        """The response went out: events may flow now, in the order they came."""
        self.ready = True
        pending, self._pending = self._pending, []
        for body in pending:
            self.emit(body)

    def close(self, *, notify_client: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for fn in self._cleanups:
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()
        if notify_client:
            self.conn.send(rpc.terminate(self.stream_id))


class Connection:
    def __init__(self, server: IpcServer, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.writer = writer
        self.component: str | None = None
        self.streams: dict[int, StreamCall] = {}
        self.closing = False

    def send(self, frame: Frame, *, droppable: bool = False) -> None:
        if self.closing or self.writer.is_closing():
            return
        if droppable and self.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.server.dropped_events += 1
            return
        self.writer.write(encode(frame))

    async def handle(self, frame: Frame) -> None:
        msg_type = frame.get(":message-type")
        stream_id = frame.get(":stream-id", 0)
        if msg_type == MessageType.CONNECT:
            await self._connect(frame)
        elif msg_type == MessageType.PING:
            self.send(rpc.ping_response(frame))
        elif msg_type == MessageType.PING_RESPONSE:
            pass
        elif msg_type in (MessageType.APPLICATION_MESSAGE, MessageType.APPLICATION_ERROR):
            if self.component is None:
                raise FrameError("application message before CONNECT")
            await self._application(frame, int(stream_id))
        else:
            raise FrameError(f"unexpected message type {msg_type}")

    async def _connect(self, frame: Frame) -> None:
        if self.component is not None:
            raise FrameError("second CONNECT on one connection")
        token = None
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            token = json.loads(frame.payload or b"{}").get("authToken")
        component = (
            self.server.authenticate(token) if frame.get(":version") == rpc.VERSION else None
        )
        if component is None:
            self.server.rejected += 1
            self.send(rpc.connect_ack(False))
            log.info("IPC connection rejected (unknown SVCUID)")
            self.closing = True
            await asyncio.sleep(self.server.reject_close_delay_s)
            raise ConnectionAbortedError("rejected")
        self.component = component
        self.send(rpc.connect_ack(True))

    async def _application(self, frame: Frame, stream_id: int) -> None:
        flags = int(frame.get(":message-flags", 0))
        existing = self.streams.get(stream_id)
        if existing is not None:
            if flags & rpc.TERMINATE_STREAM:
                existing.close(notify_client=False)
                self.streams.pop(stream_id, None)
            return
        if flags & rpc.TERMINATE_STREAM and not frame.get("operation"):
            return  # a TERMINATE for a stream already gone: ignore
        op_name = str(frame.get("operation") or "")
        short = op_name.split("#", 1)[-1]
        op = OPERATIONS.get(short)
        call = StreamCall(self, stream_id, short, op.event_type if op else None)
        try:
            if op is None:
                raise unsupported(short or "<none>")
            try:
                request = json.loads(frame.payload or b"{}")
            except ValueError:
                raise rpc.InvalidArgumentsError("request payload is not valid JSON") from None
            if not isinstance(request, dict):
                raise rpc.InvalidArgumentsError("request payload must be a JSON object")
            body = await op.handler(self.server.core, call, request)
        except IpcError as exc:
            call.close(notify_client=False)
            self.send(rpc.error(stream_id, exc))
            self.server.count(short, error=exc.shape)
            return
        except Exception as exc:  # a bug in a handler must not kill the device
            log.exception("IPC handler %s failed", short)
            call.close(notify_client=False)
            self.send(rpc.error(stream_id, ServiceError(f"internal error: {exc}")))
            self.server.count(short, error="ServiceError")
            return
        self.server.count(short)
        if op.streaming and not self.closing:
            self.streams[stream_id] = call
            self.send(rpc.response(stream_id, short, body, terminate=False))
            call.opened()
        else:
            self.send(rpc.response(stream_id, short, body, terminate=True))

    def close_streams(self, *, notify_client: bool) -> None:
        for call in list(self.streams.values()):
            call.close(notify_client=notify_client)
        self.streams.clear()


class IpcServer:
    """Serves one device's IPC socket; `tokens` maps SVCUID -> component name."""

    def __init__(self, socket_path: str | Path, core: Core) -> None:
        self.socket_path = Path(socket_path)
        self.core = core
        self.tokens: dict[str, str] = {}
        self.reject_close_delay_s = REJECT_CLOSE_DELAY_S
        self.connections: set[Connection] = set()
        self.calls: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.rejected = 0
        self.dropped_events = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    def authenticate(self, token: Any) -> str | None:
        if not isinstance(token, str) or not token:
            return None
        return self.tokens.get(token)

    def count(self, op: str, error: str | None = None) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if error:
            key = f"{op}:{error}"
            self.errors[key] = self.errors.get(key, 0) + 1

    async def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        # AF_UNIX paths are limited to ~107 bytes: bind through a short relative path if needed,
        # as the nucleus does with its ./nucleusRoot symlink.
        path = str(self.socket_path)
        if len(path.encode()) > 100:
            cwd = os.getcwd()
            os.chdir(self.socket_path.parent)
            try:
                self._server = await asyncio.start_unix_server(self._serve, self.socket_path.name)
            finally:
                os.chdir(cwd)
        else:
            self._server = await asyncio.start_unix_server(self._serve, path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close_streams(notify_client=False)
            conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def close_component_streams(self, component: str) -> None:
        """Close every stream a component holds (it stopped), telling its clients."""
        for conn in list(self.connections):
            if conn.component == component:
                conn.close_streams(notify_client=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, writer)
        self.connections.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        decoder = Decoder()
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for frame in decoder.feed(data):
                    await conn.handle(frame)
                if writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER // 4:
                    await writer.drain()
        except (FrameError, ConnectionError) as exc:
            if not isinstance(exc, ConnectionAbortedError):
                log.info("IPC connection dropped: %s", exc)
        finally:
            conn.closing = True
            conn.close_streams(notify_client=False)
            self.connections.discard(conn)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
