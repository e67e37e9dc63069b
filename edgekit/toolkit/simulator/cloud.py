"""The "cloud" side of PublishToIoTCore/SubscribeToIoTCore.

`Cloud` is the interface a device's MQTT proxy talks to. `InProcessCloud` (the default) hands
every device message to listeners in the same process (the fleet collector plugs in with
`add_listener`) and lets the driver inject cloud-to-device messages; `MqttCloud`
(edgekit.toolkit.simulator.mqtt_bridge) bridges each device to a real MQTT 5 broker.

`MqttProxy` is the nucleus's side: while the cloud is unreachable it spools QoS 1 messages
(2.5 MB, oldest dropped, as the nucleus's in-memory spooler) and drops QoS 0 ones
(keepQos0WhenOffline false), then flushes in order when the connection comes back. Publishes
are throttled as the nucleus's connection is: 100 per second and 512 KiB/s (ratelimit.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edgekit.toolkit.simulator.ratelimit import PublishThrottle
from edgekit.toolkit.simulator.topics import mqtt_match

SPOOL_MAX_BYTES = 2_621_440
log = logging.getLogger("edgekit.simulator")

Listener = Callable[[str, str, bytes], None]  # (thing, topic, payload)
Deliver = Callable[[str, bytes], None]  # (topic, payload)


class DeviceLink(Protocol):
    """One device's connection to the cloud."""

    online: bool

    async def publish(self, topic: str, payload: bytes, qos: int) -> None: ...

    def subscribe(self, topic_filter: str, deliver: Deliver) -> Callable[[], None]: ...

    def on_online(self, fn: Callable[[bool], None]) -> None: ...

    async def close(self) -> None: ...


class Cloud(Protocol):
    def link(self, thing: str) -> DeviceLink: ...

    async def close(self) -> None: ...


@dataclass
class _InProcessLink:
    cloud: InProcessCloud
    thing: str
    online: bool = True
    _subs: list[tuple[str, Deliver]] = field(default_factory=list)
    _watchers: list[Callable[[bool], None]] = field(default_factory=list)

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        if not self.online:
            raise ConnectionError("the cloud connection is down")
        self.cloud.received += 1
        self.cloud.outbox.append((self.thing, topic, payload))
        for listener in list(self.cloud.listeners):
            try:
                listener(self.thing, topic, payload)
            except Exception:  # the cloud took the message; one bad consumer does not undo it
                self.cloud.listener_errors += 1
                log.exception("cloud listener %r failed on %s", listener, topic)

    def subscribe(self, topic_filter: str, deliver: Deliver) -> Callable[[], None]:
        entry = (topic_filter, deliver)
        self._subs.append(entry)
        return lambda: self._subs.remove(entry) if entry in self._subs else None

    def deliver(self, topic: str, payload: bytes) -> int:
        if not self.online:
            return 0
        n = 0
        for flt, fn in list(self._subs):
            if mqtt_match(flt, topic):
                fn(topic, payload)
                n += 1
        return n

    def set_online(self, online: bool) -> None:
        if online != self.online:
            self.online = online
            for fn in list(self._watchers):
                fn(online)

    def on_online(self, fn: Callable[[bool], None]) -> None:
        self._watchers.append(fn)

    async def close(self) -> None:
        self.cloud.links.pop(self.thing, None)


class InProcessCloud:
    """A cloud inside this process: no broker, listeners get (thing, topic, payload)."""

    def __init__(self, outbox_size: int = 10_000) -> None:
        self.listeners: list[Listener] = []
        self.links: dict[str, _InProcessLink] = {}
        self.outbox: collections.deque[tuple[str, str, bytes]] = collections.deque(
            maxlen=outbox_size
        )
        self.received = 0
        self.listener_errors = 0

    def add_listener(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def link(self, thing: str) -> _InProcessLink:
        link = _InProcessLink(self, thing)
        self.links[thing] = link
        return link

    def inject(self, topic: str, payload: bytes) -> int:
        """A cloud-to-device message (IoT Core publish): delivered to every matching device."""
        return sum(link.deliver(topic, payload) for link in list(self.links.values()))

    def set_online(self, thing: str | None, online: bool) -> None:
        for name, link in self.links.items():
            if thing is None or name == thing:
                link.set_online(online)

    async def close(self) -> None:
        self.links.clear()


class MqttProxy:
    """The nucleus's MQTT proxy for one device: spooling while offline, then flushing."""

    def __init__(
        self,
        link: DeviceLink,
        spool_max_bytes: int = SPOOL_MAX_BYTES,
        throttle: PublishThrottle | None = None,
    ) -> None:
        self.link = link
        self.throttle = throttle or PublishThrottle()
        self.spool: collections.deque[tuple[str, bytes]] = collections.deque()
        self.spool_bytes = 0
        self.spool_max_bytes = spool_max_bytes
        self.dropped_qos0 = 0
        self.dropped_spool = 0
        self.published = 0
        self.spooled_total = 0
        self._flushing: asyncio.Task | None = None
        link.on_online(self._online_changed)

    async def publish(self, component: str, topic: str, payload: bytes, qos: int) -> None:
        if self.link.online and not self.spool:
            try:
                await self._throttled_publish(topic, payload, qos)
                self.published += 1
                return
            except ConnectionError:
                pass
        if qos == 0:
            self.dropped_qos0 += 1
            return
        self.spool.append((topic, payload))
        self.spooled_total += 1
        self.spool_bytes += len(payload)
        while self.spool_bytes > self.spool_max_bytes and self.spool:
            _, old = self.spool.popleft()
            self.spool_bytes -= len(old)
            self.dropped_spool += 1
        if self.link.online:
            self._start_flush()

    def subscribe(self, component: str, topic_filter: str, deliver: Deliver) -> Callable[[], None]:
        return self.link.subscribe(topic_filter, deliver)

    async def _throttled_publish(self, topic: str, payload: bytes, qos: int) -> None:
        """The nucleus's spooler sleeps out the throttle before it publishes."""
        wait = self.throttle.reserve(len(payload))
        if wait > 0:
            await asyncio.sleep(wait)
        await self.link.publish(topic, payload, qos)

    def _online_changed(self, online: bool) -> None:
        if online:
            self._start_flush()

    def _start_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            with contextlib.suppress(RuntimeError):
                self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.spool and self.link.online:
            topic, payload = self.spool[0]
            try:
                await self._throttled_publish(topic, payload, 1)
            except ConnectionError:
                return
            self.spool.popleft()
            self.spool_bytes -= len(payload)
            self.published += 1

    def stats(self) -> dict[str, float]:
        return {
            "published": self.published,
            "spooled": len(self.spool),
            "spooled_total": self.spooled_total,
            "dropped_qos0": self.dropped_qos0,
            "dropped_spool": self.dropped_spool,
            "throttled_s": round(self.throttle.throttled_s, 3),
        }
