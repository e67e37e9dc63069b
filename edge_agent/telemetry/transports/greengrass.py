"""Greengrass IPC: telemetry through the nucleus (PublishToIoTCore), commands from SubscribeToIoTCore,
local pub/sub request/response, component configuration and UpdateState.

The IPC client's pitfalls (``shared/greengrass/IPC_PROTOCOL.md``) are handled here:
- it never reconnects by itself: on a disconnect or a closed stream the client is dropped and a
  new one is made on the next call, and every subscription is made again on it;
- synchronous calls have no timeout: every call goes through ``*_async(...).result(timeout)``;
- stream callbacks run on a one-worker executor, so they arrive in order and may call IPC;
- an accessControl denial is ``UnauthorizedError`` (text in ``.message``): reported, not retried
  in a tight loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from edge_agent.telemetry.transports import register
from edge_agent.telemetry.transports.base import MessageHandler, Transport, TransportError

log = logging.getLogger("edge_agent.greengrass")
CALL_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 1.0


def _error_text(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


class _QuietExecutor(concurrent.futures.ThreadPoolExecutor):
    """The one-worker executor for stream callbacks, quiet once shut down.

    ``GreengrassCoreIPCClientV2.close()`` shuts its executor down while the nucleus still
    closes the client's streams; awsiotsdk's stream-closed handler then submits to it and
    re-raises the RuntimeError ("cannot schedule new futures after shutdown") when it means to
    ignore it (its test is inverted), which lands on stderr at every clean stop. A callback
    for a client being closed has nothing left to do, so it is dropped here."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        try:
            return super().submit(fn, *args, **kwargs)
        except RuntimeError:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.cancel()
            return future


class _Lifecycle:
    """Marks the owning transport's client dead when the connection drops."""

    def __init__(self, owner: GreengrassTransport) -> None:
        self.owner = owner

    def on_connect(self) -> None:
        pass

    def on_disconnect(self, reason: Any) -> None:
        level = logging.DEBUG if self.owner.closing else logging.WARNING
        log.log(level, "Greengrass IPC connection closed: %s", reason)
        self.owner._mark_dead()

    def on_error(self, error: Exception) -> bool:
        log.log(
            logging.DEBUG if self.owner.closing else logging.WARNING,
            "Greengrass IPC error: %s",
            error,
        )
        return True

    def on_ping(self, headers: Any, payload: Any) -> None:
        pass


@register("greengrass")
class GreengrassTransport(Transport):
    name = "greengrass"

    def __init__(
        self, config: Any = None, *, ipc_socket: str | None = None, token: str | None = None
    ):
        self._ipc_socket = ipc_socket
        self._token = token
        self._client: Any = None
        self._lock = threading.RLock()
        self._iot_subs: list[tuple[str, MessageHandler]] = []
        self._local_subs: list[tuple[str, Callable[[str, Any], None]]] = []
        self._config_subs: list[Callable[[list[str]], None]] = []
        self.unauthorized: str | None = None
        self.closing = False  # set by close(): the streams closing now are expected

    # -- client life ---------------------------------------------------------------------------
    def _new_client(self) -> Any:
        import awsiot.greengrasscoreipc as gg
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

        raw = gg.connect(
            ipc_socket=self._ipc_socket,
            authtoken=self._token,
            lifecycle_handler=_Lifecycle(self),
            timeout=CALL_TIMEOUT_S,
        )
        executor = _QuietExecutor(max_workers=1)
        return GreengrassCoreIPCClientV2(client=raw, executor=executor)

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                if self.closing:
                    raise TransportError("the Greengrass transport is closed")
                self._client = self._new_client()
                self._resubscribe(self._client)
            return self._client

    def _mark_dead(self) -> None:
        # No lock: this runs on the CRT thread, which may be what a lock holder is waiting on.
        old, self._client = self._client, None
        if old is not None:
            threading.Thread(target=self._close_quietly, args=(old,), daemon=True).start()

    @staticmethod
    def _close_quietly(client: Any) -> None:
        with contextlib.suppress(Exception):  # already gone
            client.close(executor_wait=False)

    def _call(self, fn: Callable[[Any], concurrent.futures.Future[Any]], timeout: float) -> Any:
        """Run one async IPC call with a timeout; a dead connection is dropped for a new one."""
        from awsiot.greengrasscoreipc import model

        try:
            client = self.client()
        except Exception as exc:
            raise TransportError(f"cannot connect to the Greengrass nucleus: {exc!r}") from exc
        try:
            return fn(client).result(timeout)
        except model.UnauthorizedError as exc:
            self.unauthorized = _error_text(exc)
            raise TransportError(f"not authorized: {self.unauthorized}") from exc
        except (model.ServiceError, model.InvalidArgumentsError, model.ResourceNotFoundError):
            raise
        except concurrent.futures.TimeoutError as exc:
            self._mark_dead()
            raise TransportError(f"Greengrass IPC call timed out after {timeout}s") from exc
        except Exception as exc:  # StreamClosedError, ConnectionClosedError, AwsCrtError
            self._mark_dead()
            raise TransportError(f"Greengrass IPC call failed: {_error_text(exc)}") from exc

    # -- Transport interface ---------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.client()
        except Exception as exc:  # retried on the first publish
            log.warning("Greengrass IPC not reachable yet: %s", exc)

    def connected(self) -> bool:
        try:
            self.client()
            return True
        except Exception:
            return False

    def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        from awsiot.greengrasscoreipc import model

        try:
            self._call(
                lambda c: c.publish_to_iot_core_async(
                    topic_name=topic, qos=model.QOS.AT_LEAST_ONCE, payload=payload
                ),
                timeout,
            )
        except TransportError:
            raise
        except Exception as exc:
            raise TransportError(f"PublishToIoTCore {topic} failed: {_error_text(exc)}") from exc

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        with self._lock:
            self._iot_subs.append((topic_filter, handler))
            client = self._client
        if client is not None:
            self._subscribe_iot(client, topic_filter, handler)

    def close(self) -> None:
        """Close the connection and wait (briefly) for it, so nothing runs after the agent."""
        self.closing = True
        with self._lock:
            old, self._client = self._client, None
        if old is None:
            return
        with contextlib.suppress(Exception):
            old.close(executor_wait=False).result(CLOSE_TIMEOUT_S)

    # -- subscriptions (renewed on every new client) ---------------------------------------------
    def _resubscribe(self, client: Any) -> None:
        for topic_filter, handler in self._iot_subs:
            self._subscribe_iot(client, topic_filter, handler)
        for topic, handler in self._local_subs:
            self._subscribe_local(client, topic, handler)
        for callback in self._config_subs:
            self._subscribe_config(client, callback)

    def _stream_closed(self) -> None:
        if self.closing:
            return
        log.warning("a Greengrass IPC stream closed; reconnecting on the next call")
        self._mark_dead()

    def _subscribe_iot(self, client: Any, topic_filter: str, handler: MessageHandler) -> None:
        from awsiot.greengrasscoreipc import model

        def on_event(event: Any) -> None:
            message = event.message
            handler(message.topic_name, bytes(message.payload or b""))

        future, _op = client.subscribe_to_iot_core_async(
            topic_name=topic_filter,
            qos=model.QOS.AT_LEAST_ONCE,
            on_stream_event=on_event,
            on_stream_closed=self._stream_closed,
        )
        try:
            future.result(CALL_TIMEOUT_S)
        except Exception as exc:
            log.error("SubscribeToIoTCore %s failed: %s", topic_filter, _error_text(exc))

    # -- local pub/sub ----------------------------------------------------------------------------
    def subscribe_local(self, topic: str, handler: Callable[[str, Any], None]) -> None:
        """JSON (or binary) messages on a local pub/sub topic → ``handler(topic, message)``."""
        with self._lock:
            self._local_subs.append((topic, handler))
            client = self._client
        if client is not None:
            self._subscribe_local(client, topic, handler)

    def _subscribe_local(
        self, client: Any, topic: str, handler: Callable[[str, Any], None]
    ) -> None:
        def on_event(event: Any) -> None:
            if event.json_message is not None:
                ctx = event.json_message.context
                handler(ctx.topic if ctx else topic, event.json_message.message)
            elif event.binary_message is not None:
                ctx = event.binary_message.context
                try:
                    body = json.loads(bytes(event.binary_message.message))
                except (ValueError, UnicodeDecodeError):
                    body = None
                handler(ctx.topic if ctx else topic, body)

        future, _op = client.subscribe_to_topic_async(
            topic=topic, on_stream_event=on_event, on_stream_closed=self._stream_closed
        )
        try:
            future.result(CALL_TIMEOUT_S)
        except Exception as exc:
            log.error("SubscribeToTopic %s failed: %s", topic, _error_text(exc))

    def publish_local(self, topic: str, message: dict[str, Any]) -> None:
        from awsiot.greengrasscoreipc import model

        publish = model.PublishMessage(json_message=model.JsonMessage(message=message))
        self._call(
            lambda c: c.publish_to_topic_async(topic=topic, publish_message=publish), CALL_TIMEOUT_S
        )

    # -- configuration and lifecycle -----------------------------------------------------------
    def get_configuration(self, key_path: list[str] | None = None) -> dict[str, Any]:
        from awsiot.greengrasscoreipc import model

        try:
            response = self._call(
                lambda c: c.get_configuration_async(key_path=key_path or []), CALL_TIMEOUT_S
            )
        except model.ResourceNotFoundError:
            return {}
        value = response.value
        return value if isinstance(value, dict) else {}

    def subscribe_configuration(self, callback: Callable[[list[str]], None]) -> None:
        """``callback(key_path)`` whenever the component configuration changes."""
        with self._lock:
            self._config_subs.append(callback)
            client = self._client
        if client is not None:
            self._subscribe_config(client, callback)

    def _subscribe_config(self, client: Any, callback: Callable[[list[str]], None]) -> None:
        def on_event(event: Any) -> None:
            update = event.configuration_update_event
            callback(list(update.key_path or []) if update else [])

        future, _op = client.subscribe_to_configuration_update_async(
            key_path=[], on_stream_event=on_event, on_stream_closed=self._stream_closed
        )
        try:
            future.result(CALL_TIMEOUT_S)
        except Exception as exc:
            log.error("SubscribeToConfigurationUpdate failed: %s", _error_text(exc))

    def update_state(self, state: str) -> None:
        self._call(lambda c: c.update_state_async(state=state), CALL_TIMEOUT_S)
