"""Telemetry transports behind one interface, chosen by name from a registry.

``greengrass``: IPC PublishToIoTCore through the nucleus (chosen automatically when the nucleus's
socket and token variables are set); ``mqtt``: MQTT 5 over awscrt (mutual TLS, plain TCP only to
loopback); ``inprocess``: an in-memory bus for tests; ``none``: keep everything in the outbox.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from edge_agent.telemetry.transports.base import NotDeliveredError, Transport, TransportError

TRANSPORTS: dict[str, Callable[..., Transport]] = {}


def register(name: str) -> Callable[[Callable[..., Transport]], Callable[..., Transport]]:
    def deco(factory: Callable[..., Transport]) -> Callable[..., Transport]:
        TRANSPORTS[name] = factory
        return factory

    return deco


def under_greengrass(env: dict[str, str] | None = None) -> bool:
    seen: Mapping[str, str] = os.environ if env is None else env
    return bool(seen.get("SVCUID")) and bool(
        seen.get("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")
    )


def choose(config: Any, env: dict[str, str] | None = None) -> str:
    """The transport name for this configuration: explicit, else Greengrass, MQTT or none."""
    if config.transport:
        name: str = config.transport
        return name
    if under_greengrass(env):
        return "greengrass"
    if config.mqtt:
        return "mqtt"
    return "none"


def create(name: str, config: Any) -> Transport:
    _load_builtin()
    if name not in TRANSPORTS:
        from edge_agent.errors import BadInputError

        raise BadInputError(f"unknown transport {name!r}; one of {', '.join(sorted(TRANSPORTS))}")
    return TRANSPORTS[name](config)


def _load_builtin() -> None:
    # Imported lazily so a device without awscrt can still use the in-process transport.
    from edge_agent.telemetry.transports import greengrass, inprocess, mqtt  # noqa: F401


__all__ = [
    "TRANSPORTS",
    "NotDeliveredError",
    "Transport",
    "TransportError",
    "choose",
    "create",
    "register",
]
