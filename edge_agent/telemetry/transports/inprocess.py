"""An in-memory broker for tests and the in-process benchmark: same interface, no network.

``Bus.get(name)`` returns a named bus shared inside the process; setting ``bus.online = False``
simulates an outage (publishes fail and stay in the outbox).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from edge_agent.telemetry.transports import register
from edge_agent.telemetry.transports.base import (
    MessageHandler,
    Transport,
    TransportError,
    topic_matches,
)


class Bus:
    _buses: ClassVar[dict[str, Bus]] = {}

    def __init__(self) -> None:
        self.online = True
        self.messages: list[tuple[str, bytes]] = []
        self._subs: list[tuple[str, MessageHandler]] = []
        self._lock = threading.Lock()

    @classmethod
    def get(cls, name: str = "default") -> Bus:
        return cls._buses.setdefault(name, cls())

    def publish(self, topic: str, payload: bytes) -> None:
        with self._lock:
            if not self.online:
                raise TransportError("in-process bus is offline")
            self.messages.append((topic, payload))
            subs = [h for f, h in self._subs if topic_matches(f, topic)]
        for handler in subs:
            handler(topic, payload)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        with self._lock:
            self._subs.append((topic_filter, handler))


@register("inprocess")
class InProcessTransport(Transport):
    name = "inprocess"

    def __init__(self, config: Any = None, bus: Bus | None = None) -> None:
        bus_name = (getattr(config, "extra", None) or {}).get("bus", "default")
        self.bus = bus or Bus.get(bus_name)

    def start(self) -> None:
        pass

    def connected(self) -> bool:
        return self.bus.online

    def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        self.bus.publish(topic, payload)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self.bus.subscribe(topic_filter, handler)

    def close(self) -> None:
        pass


@register("none")
class NoTransport(Transport):
    """Standalone without a broker: messages accumulate (bounded) in the outbox."""

    name = "none"

    def start(self) -> None:
        pass

    def __init__(self, config: Any = None) -> None:
        pass

    def connected(self) -> bool:
        return False

    def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        raise TransportError("no transport configured")

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        pass

    def close(self) -> None:
        pass
