"""MQTT 5 over awscrt: mutual TLS to AWS IoT Core or any broker; plain TCP only to loopback.

The CRT client reconnects by itself with backoff; subscriptions are renewed on every
connection (clean sessions), and a publish waits for its PUBACK with a timeout.

A PUBACK with reason NO_MATCHING_SUBSCRIBERS (0x10) means the broker took the message and threw
it away because nobody subscribed: by default that is "not delivered yet" (the message stays in
the outbox and is retried), because a fleet collector can be missing for a while even though the
broker is up. Debian's mosquitto 2.0.11 restores persistent sessions after a restart but not
their ``$share/...`` subscriptions, so until the collectors resubscribe every device would
otherwise see its flushed backlog acknowledged and deleted unread. AWS IoT Core acknowledges a
publish with SUCCESS whether or not anyone subscribed, so there the setting changes nothing.
``mqtt_retry_no_subscribers: false`` restores plain MQTT semantics (0x10 counts as delivered).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any
from urllib.parse import urlparse

from edge_agent.errors import BadInputError
from edge_agent.telemetry.transports import register
from edge_agent.telemetry.transports.base import (
    MessageHandler,
    NotDeliveredError,
    Transport,
    TransportError,
    topic_matches,
)

log = logging.getLogger("edge_agent.mqtt")


def parse_url(
    url: str,
    option: str = "--mqtt",
    example: str = "mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883",
) -> tuple[str, str, int]:
    """``mqtt://host:port`` or ``mqtts://host:port`` → (scheme, host, port); the error names
    the caller's option so the fleet collector's --broker reads as well as the agent's --mqtt."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
        raise BadInputError(
            f"{option} {url!r} is not mqtt://HOST:PORT or mqtts://HOST:PORT",
            hint=f"for example {example}",
        )
    port = parsed.port or (8883 if parsed.scheme == "mqtts" else 1883)
    return parsed.scheme, parsed.hostname, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register("mqtt")
class MqttTransport(Transport):
    name = "mqtt"

    def __init__(self, config: Any) -> None:
        from awscrt import io, mqtt5

        self._mqtt5 = mqtt5
        scheme, host, port = parse_url(config.mqtt or "")
        tls_ctx = None
        if scheme == "mqtts":
            if not (config.cert and config.key):
                raise BadInputError(
                    "mqtts:// needs --cert and --key (the device certificate and private key)",
                    hint="mutual TLS is how AWS IoT Core and most brokers identify a device",
                )
            opts = io.TlsContextOptions.create_client_with_mtls_from_path(config.cert, config.key)
            if config.ca:
                opts.override_default_trust_store_from_path(None, config.ca)
            tls_ctx = io.ClientTlsContext(opts)
        elif not is_loopback(host):
            raise BadInputError(
                f"plain mqtt:// to {host} would send telemetry unencrypted; refusing",
                hint="use mqtts:// with `cert`/`key`/`ca` (plain TCP is allowed for loopback only)",
            )
        self.host, self.port = host, port
        self.retry_no_subscribers = bool(getattr(config, "mqtt_retry_no_subscribers", True))
        self._connected = threading.Event()
        self._subs: list[tuple[str, MessageHandler]] = []
        self._lock = threading.Lock()
        self.client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=host,
                port=port,
                tls_ctx=tls_ctx,
                connect_options=mqtt5.ConnectPacket(
                    client_id=config.thing, keep_alive_interval_sec=30
                ),
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                min_reconnect_delay_ms=200,
                max_reconnect_delay_ms=2000,
                ack_timeout_sec=int(max(1, config.publish_timeout_s)),
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_connect,
                on_lifecycle_event_disconnection_fn=self._on_disconnect,
                on_lifecycle_event_connection_failure_fn=self._on_failure,
            )
        )

    def start(self) -> None:
        self.client.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(self, _data: Any) -> None:
        log.info("connected to %s:%s", self.host, self.port)
        with self._lock:
            filters = [f for f, _ in self._subs]
        for topic_filter in filters:
            self._send_subscribe(topic_filter)
        self._connected.set()

    def _on_disconnect(self, data: Any) -> None:
        self._connected.clear()
        log.warning("disconnected from %s:%s: %s", self.host, self.port, data.exception)

    def _on_failure(self, data: Any) -> None:
        self._connected.clear()
        log.debug("connection attempt failed: %s", data.exception)

    def _send_subscribe(self, topic_filter: str) -> None:
        mqtt5 = self._mqtt5
        self.client.subscribe(
            mqtt5.SubscribePacket([mqtt5.Subscription(topic_filter, mqtt5.QoS.AT_LEAST_ONCE)])
        )

    def _on_publish(self, data: Any) -> None:
        packet = data.publish_packet
        with self._lock:
            handlers = [h for f, h in self._subs if topic_matches(f, packet.topic)]
        for handler in handlers:
            try:
                handler(packet.topic, bytes(packet.payload))
            except Exception:  # a bad command must not kill the CRT thread
                log.exception("command handler failed for %s", packet.topic)

    def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        mqtt5 = self._mqtt5
        if not self.connected():
            raise TransportError("not connected")
        try:
            future = self.client.publish(
                mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
            )
            result = future.result(timeout)
        except Exception as exc:
            raise TransportError(f"publish to {topic} failed: {exc!r}") from exc
        code = getattr(result.puback, "reason_code", None)
        if code == mqtt5.PubackReasonCode.SUCCESS:
            return
        if code == mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS:
            if self.retry_no_subscribers:
                raise NotDeliveredError(
                    f"no subscriber for {topic} (PUBACK 0x10 NO_MATCHING_SUBSCRIBERS): "
                    "kept in the outbox, retried later"
                )
            return
        raise TransportError(f"broker refused publish to {topic}: {code}")

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        with self._lock:
            self._subs.append((topic_filter, handler))
        if self.connected():
            self._send_subscribe(topic_filter)

    def close(self) -> None:
        try:
            self.client.stop(self._mqtt5.DisconnectPacket())
        finally:
            self._connected.clear()
