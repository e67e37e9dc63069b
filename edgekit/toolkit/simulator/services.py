"""The services one simulated device offers its components over IPC, wired together."""

from __future__ import annotations

from collections.abc import Callable

from edgekit.toolkit.simulator.access import Authorizer
from edgekit.toolkit.simulator.cloud import DeviceLink, InProcessCloud, MqttProxy
from edgekit.toolkit.simulator.config import ConfigStore
from edgekit.toolkit.simulator.pubsub import LocalBus
from edgekit.toolkit.simulator.updates import ComponentUpdates


class CoreServices:
    """Implements the `Core` protocol of the IPC handlers for one device."""

    def __init__(self, thing_name: str, link: DeviceLink | None = None) -> None:
        self.thing_name = thing_name
        self.config = ConfigStore()
        self.bus = LocalBus()
        self.authorizer = Authorizer(
            thing_name, lambda c: self.config.peek(c, ["accessControl"], {})
        )
        self.link = link if link is not None else InProcessCloud().link(thing_name)
        self.mqtt = MqttProxy(self.link)
        self.reported: list[tuple[str, str]] = []
        self.component_metrics: list[tuple[str, str, str, float]] = []  # PutComponentMetric
        self.updates = ComponentUpdates()  # SubscribeToComponentUpdates / DeferComponentUpdate
        self._state_listeners: list[Callable[[str, str], None]] = []

    def known_component(self, name: str) -> bool:
        return self.config.has(name)

    def on_state_report(self, fn: Callable[[str, str], None]) -> None:
        self._state_listeners.append(fn)

    def report_state(self, component: str, state: str) -> None:
        self.reported.append((component, state))
        for fn in list(self._state_listeners):
            fn(component, state)
