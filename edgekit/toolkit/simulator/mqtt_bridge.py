"""The cloud as a real MQTT 5 broker: each simulated core device gets its own awscrt MQTT 5
connection (client id = thing name), as a real core has its own connection to IoT Core.

`mqtt://host:port` is plain TCP (mosquitto on 127.0.0.1); `mqtts://host:port?cert=..&key=..&ca=..`
is mutual TLS (AWS IoT Core or a TLS broker). CRT callbacks arrive on CRT threads and are
handed to the asyncio loop. `pause()`/`resume()` take a device offline and back (the broker
outage fault), so the nucleus spooler in MqttProxy is exercised for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from edge_agent.errors import BadInputError
from edgekit.toolkit.simulator.cloud import Deliver
from edgekit.toolkit.simulator.topics import mqtt_match


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    cert: str | None = None
    key: str | None = None
    ca: str | None = None

    @staticmethod
    def parse(url: str) -> BrokerUrl:
        u = urlparse(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise BadInputError(
                f"broker URL {url!r} is not mqtt://host:port or mqtts://host:port?cert=&key=&ca=",
                hint="for the local mosquitto: `broker` mqtt://127.0.0.1:1883",
            )
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        tls = u.scheme == "mqtts"
        if tls and not (q.get("cert") and q.get("key")):
            raise BadInputError("mqtts:// needs ?cert=FILE&key=FILE (and ca=FILE for a private CA)")
        return BrokerUrl(
            u.hostname,
            u.port or (8883 if tls else 1883),
            tls,
            q.get("cert"),
            q.get("key"),
            q.get("ca"),
        )


class MqttLink:
    def __init__(self, cloud: MqttCloud, thing: str) -> None:
        from awscrt import io, mqtt5

        self._mqtt5 = mqtt5
        self.cloud = cloud
        self.thing = thing
        self.online = False
        self._loop = asyncio.get_running_loop()
        self._subs: list[tuple[str, Deliver]] = []
        self._watchers: list[Callable[[bool], None]] = []
        self._paused = False
        b = cloud.broker
        tls_ctx = None
        if b.tls:
            opts = io.TlsContextOptions.create_client_with_mtls_from_path(b.cert, b.key)
            if b.ca:
                opts.override_default_trust_store_from_path(None, b.ca)
            tls_ctx = io.ClientTlsContext(opts)
        self.client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=b.host,
                port=b.port,
                tls_ctx=tls_ctx,
                connect_options=mqtt5.ConnectPacket(client_id=thing, keep_alive_interval_sec=30),
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                min_reconnect_delay_ms=200,
                max_reconnect_delay_ms=2000,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=lambda _d: self._threadsafe(
                    self._connected, True
                ),
                on_lifecycle_event_disconnection_fn=lambda _d: self._threadsafe(
                    self._connected, False
                ),
                on_lifecycle_event_stopped_fn=lambda _d: self._threadsafe(self._connected, False),
            )
        )
        self.client.start()

    def _threadsafe(self, fn: Callable, *args: object) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def _connected(self, up: bool) -> None:
        if up:
            for flt, _ in self._subs:
                self._subscribe_remote(flt)
        if up != self.online:
            self.online = up
            for fn in list(self._watchers):
                fn(up)

    def _subscribe_remote(self, flt: str) -> None:
        m = self._mqtt5
        self.client.subscribe(m.SubscribePacket([m.Subscription(flt, m.QoS.AT_LEAST_ONCE)]))

    def _on_publish(self, data: object) -> None:
        packet = data.publish_packet  # type: ignore[attr-defined]
        self._threadsafe(self._deliver, packet.topic, bytes(packet.payload or b""))

    def _deliver(self, topic: str, payload: bytes) -> None:
        for flt, fn in list(self._subs):
            if mqtt_match(flt, topic):
                fn(topic, payload)

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        if not self.online:
            raise ConnectionError("not connected to the broker")
        m = self._mqtt5
        fut = self.client.publish(
            m.PublishPacket(
                topic=topic, payload=payload, qos=m.QoS.AT_LEAST_ONCE if qos else m.QoS.AT_MOST_ONCE
            )
        )
        try:
            await asyncio.wait_for(asyncio.wrap_future(fut), 10)
        except Exception as exc:
            raise ConnectionError(f"publish failed: {exc}") from exc

    def subscribe(self, topic_filter: str, deliver: Deliver) -> Callable[[], None]:
        entry = (topic_filter, deliver)
        self._subs.append(entry)
        if self.online:
            self._subscribe_remote(topic_filter)
        return lambda: self._subs.remove(entry) if entry in self._subs else None

    def on_online(self, fn: Callable[[bool], None]) -> None:
        self._watchers.append(fn)

    def pause(self) -> None:
        """Drop the connection (outage); reconnect with resume()."""
        if not self._paused:
            self._paused = True
            self.client.stop()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self.client.start()

    async def close(self) -> None:
        self.client.stop()
        self.cloud.links.pop(self.thing, None)


class MqttCloud:
    def __init__(self, url: str) -> None:
        self.broker = BrokerUrl.parse(url)
        self.links: dict[str, MqttLink] = {}

    def link(self, thing: str) -> MqttLink:
        link = MqttLink(self, thing)
        self.links[thing] = link
        return link

    def set_online(self, thing: str | None, online: bool) -> None:
        for name, link in self.links.items():
            if thing is None or name == thing:
                link.resume() if online else link.pause()

    async def close(self) -> None:
        for link in list(self.links.values()):
            await link.close()
