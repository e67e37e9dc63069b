"""Local publish/subscribe between components on one device (IPC PublishToTopic/SubscribeToTopic)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit.toolkit.simulator.topics import has_wildcard, mqtt_match

ALL = "RECEIVE_ALL_MESSAGES"
FROM_OTHERS = "RECEIVE_MESSAGES_FROM_OTHERS"


@dataclass(frozen=True)
class _Sub:
    component: str
    topic_filter: str
    mode: str
    deliver: Callable[[str, dict[str, Any]], None]


class LocalBus:
    def __init__(self) -> None:
        self._subs: list[_Sub] = []

    def subscribe(
        self,
        component: str,
        topic_filter: str,
        deliver: Callable[[str, dict[str, Any]], None],
        mode: str | None = None,
    ) -> Callable[[], None]:
        """`deliver(topic, message)` gets the publishMessage shape (jsonMessage or binaryMessage)."""
        mode = mode or (FROM_OTHERS if has_wildcard(topic_filter) else ALL)
        sub = _Sub(component, topic_filter, mode, deliver)
        self._subs.append(sub)
        return lambda: self._subs.remove(sub) if sub in self._subs else None

    def publish(self, component: str, topic: str, message: dict[str, Any]) -> int:
        n = 0
        for sub in list(self._subs):
            if sub.mode == FROM_OTHERS and sub.component == component:
                continue
            if mqtt_match(sub.topic_filter, topic):
                sub.deliver(topic, message)
                n += 1
        return n
