"""The collector's MQTT side: awscrt's MQTT 5 client on ``$share/<group>/dt/edgekit/+/<type>``.

* Shared subscriptions: every collector started with the same ``--group`` gets a share of the
  fleet's messages (the broker hands each message to one member), so adding collectors splits
  a large fleet. Without a group each collector gets everything.
* A persistent session (fixed client id, session expiry) so the broker queues QoS 1 messages
  while a collector reconnects, including across a broker restart when the broker persists.
* Manual PUBACK: a message is acknowledged only after the collector committed it to the store.
Each collector in a group needs its own client id (the default adds the host name).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from edge_agent import telemetry
from edge_agent.errors import BadInputError
from edge_agent.telemetry.transports.mqtt import parse_url
from edgekit.toolkit.fleet.collector import Collector

log = logging.getLogger("edgekit.fleet.mqtt")


def parse_broker(url: str) -> tuple[str, str, int]:
    return parse_url(
        url, "--broker", "mqtt://127.0.0.1:1883 (mosquitto) or mqtts://<endpoint>:8883"
    )


def topic_filters(group: str | None) -> list[str]:
    """One filter per message type, shared when a group is given."""
    base = [f"{telemetry.DATA_PREFIX}/+/{t}" for t in telemetry.MESSAGE_TYPES]
    if not group:
        return base
    if any(c in group for c in "/+#$ "):
        raise BadInputError(f"`group` {group!r} must not contain '/', '+', '#', '$' or spaces")
    return [f"$share/{group}/{f}" for f in base]


class MqttSource:
    def __init__(
        self,
        collector: Collector,
        url: str,
        *,
        group: str | None = "edgekit",
        client_id: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        ca: str | None = None,
        session_expiry_s: int = 3600,
    ) -> None:
        from awscrt import io, mqtt5

        self._mqtt5 = mqtt5
        self.collector = collector
        scheme, self.host, self.port = parse_broker(url)
        self.filters = topic_filters(group)
        self.client_id = client_id or f"edgekit-fleet-{group or 'all'}-{socket.gethostname()}"
        tls_ctx = None
        if scheme == "mqtts":
            if cert and key:
                opts = io.TlsContextOptions.create_client_with_mtls_from_path(cert, key)
            else:
                opts = io.TlsContextOptions()
            if ca:
                opts.override_default_trust_store_from_path(None, ca)
            tls_ctx = io.ClientTlsContext(opts)
        elif cert or key:
            raise BadInputError("`cert`/`key` need an mqtts:// broker URL")
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.sessions_lost = 0
        self.last_error: str | None = None
        self.client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=self.host,
                port=self.port,
                tls_ctx=tls_ctx,
                connect_options=mqtt5.ConnectPacket(
                    client_id=self.client_id,
                    keep_alive_interval_sec=30,
                    session_expiry_interval_sec=session_expiry_s,
                    receive_maximum=1000,
                ),
                session_behavior=mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS,
                min_reconnect_delay_ms=100,
                max_reconnect_delay_ms=500,  # back before the devices (they back off to 2 s)
                ack_timeout_sec=10,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_connect,
                on_lifecycle_event_disconnection_fn=self._on_disconnect,
                on_lifecycle_event_connection_failure_fn=self._on_failure,
            )
        )

    # -- callbacks (CRT threads) ---------------------------------------------------------------
    def _on_connect(self, data: Any) -> None:
        self.connects += 1
        self.connected.set()
        present = bool(getattr(data.connack_packet, "session_present", False))
        log.info("connected to %s:%s (session present: %s)", self.host, self.port, present)
        if self.connects > 1 and not present:
            self.sessions_lost += 1
            log.warning(
                "the broker did not keep this collector's session (restarted without persistence,"
                " or it does not persist shared subscriptions, as mosquitto 2.0.11): messages "
                "devices sent before the subscription is renewed show up as sequence gaps"
            )
        mqtt5 = self._mqtt5
        subs = [mqtt5.Subscription(f, mqtt5.QoS.AT_LEAST_ONCE) for f in self.filters]
        # subscribe on every connection: a no-op when the session kept them, needed when not
        future = self.client.subscribe(mqtt5.SubscribePacket(subs))
        future.add_done_callback(self._on_suback)

    def _on_suback(self, future: Any) -> None:
        try:
            suback = future.result()
        except Exception as exc:
            self.last_error = f"subscribe failed: {exc!r}"
            log.error(self.last_error)
            return
        bad = [c for c in suback.reason_codes if int(c) >= 0x80]
        if bad:
            self.last_error = f"broker refused subscriptions {self.filters}: {bad}"
            log.error(self.last_error)
            return
        self.subscribed.set()

    def _on_disconnect(self, data: Any) -> None:
        self.disconnects += 1
        self.connected.clear()
        self.last_error = f"disconnected: {data.exception}"

    def _on_failure(self, data: Any) -> None:
        self.connected.clear()
        self.last_error = f"connection failed: {data.exception}"

    def _on_publish(self, data: Any) -> None:
        packet = data.publish_packet
        ack = None
        acquire = getattr(data, "acquire_publish_acknowledgement_control", None)
        if acquire is not None:  # QoS 1: PUBACK once stored
            handle = acquire()

            def ack(handle: Any = handle) -> None:
                self.client.invoke_publish_acknowledgement(handle)

        self.collector.submit(packet.topic, bytes(packet.payload or b""), ack)

    # -- use -------------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> MqttSource:
        """Connect and subscribe; raises BadInputError naming the broker when it cannot."""
        self.client.start()
        if not self.subscribed.wait(timeout):
            self.stop()
            raise BadInputError(
                f"could not connect and subscribe to {self.host}:{self.port} within {timeout:g}s"
                + (f" ({self.last_error})" if self.last_error else ""),
                hint="is the broker running and reachable? (mosquitto -p PORT)",
            )
        self.collector.set_publisher(self.publish)
        return self

    def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        """QoS 1 publish for alert actions; raises when the broker does not acknowledge."""
        mqtt5 = self._mqtt5
        future = self.client.publish(
            mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        )
        result = future.result(timeout)
        code = getattr(getattr(result, "puback", None), "reason_code", None)
        if code not in (
            mqtt5.PubackReasonCode.SUCCESS,
            mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS,
        ):
            raise RuntimeError(f"broker refused publish to {topic}: {code}")

    def stop(self) -> None:
        self.collector.set_publisher(None)
        try:
            self.client.stop(self._mqtt5.DisconnectPacket())
        except Exception:
            log.debug("stop failed", exc_info=True)
        self.connected.clear()
