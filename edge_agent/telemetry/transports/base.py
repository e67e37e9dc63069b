"""The interface every telemetry transport implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

MessageHandler = Callable[[str, bytes], None]


class TransportError(Exception):
    """A publish was not acknowledged (offline, timeout, refused): the message stays queued."""


class NotDeliveredError(TransportError):
    """The broker acknowledged the publish but says no subscriber received it (MQTT 5 PUBACK
    reason 0x10, NO_MATCHING_SUBSCRIBERS). The message stays queued and is retried on its own,
    slower, backoff: the broker is up, the collector is what is missing."""


class Transport(ABC):
    name = "base"

    @abstractmethod
    def start(self) -> None:
        """Begin connecting; must not block for long (the broker may be down)."""

    @abstractmethod
    def connected(self) -> bool: ...

    @abstractmethod
    def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        """Publish with QoS 1 and return only once acknowledged; raise TransportError otherwise."""

    @abstractmethod
    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Deliver messages on ``topic_filter`` (commands) to ``handler(topic, payload)``."""

    @abstractmethod
    def close(self) -> None: ...


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with ``+`` and ``#``."""
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)
