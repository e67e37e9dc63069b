"""Component update notifications, as UpdateSystemPolicyService and LifecycleIPCEventStreamAgent
run them for a deployment whose update policy is NOTIFY_COMPONENTS (the default).

Before the update, every component subscribed with SubscribeToComponentUpdates gets a
PreComponentUpdateEvent {deploymentId, isGgcRestarting}. The nucleus then waits up to the
policy's timeout (60 s by default) for the answers; the largest `recheckAfterMs` among the
DeferComponentUpdate answers for this deployment is slept out and the event sent again. When
nobody defers (or the time to answer runs out), the update runs and a PostComponentUpdateEvent
{deploymentId} follows. A deferral without a pending event is a ServiceError ("Time limit to
respond to PreComponentUpdateEvent exceeded"); one from a component that never subscribed is
an InvalidArgumentsError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NOTIFY_COMPONENTS, SKIP_NOTIFY_COMPONENTS = "NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"
DEFAULT_TIMEOUT_S = 60.0
POLL_S = 1.0  # UpdateSystemPolicyService.getTimeToReCheck looks at the answers every second


class NotSubscribed(Exception):
    """DeferComponentUpdate from a component that is not subscribed."""


class NoPendingUpdate(Exception):
    """DeferComponentUpdate with no PreComponentUpdateEvent waiting for an answer."""


@dataclass
class Deferral:
    component: str
    deployment_id: str
    message: str
    recheck_after_ms: int


@dataclass
class ComponentUpdates:
    listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = field(default_factory=dict)
    pending: dict[tuple[str, str], asyncio.Future] = field(default_factory=dict)
    deferrals: list[Deferral] = field(default_factory=list)  # every one, for the summary
    poll_s: float = POLL_S

    def subscribe(self, component: str, emit: Callable[[dict[str, Any]], None]) -> Callable:
        self.listeners.setdefault(component, []).append(emit)

        def unsubscribe() -> None:
            emits = self.listeners.get(component, [])
            if emit in emits:
                emits.remove(emit)
            if not emits:
                self.listeners.pop(component, None)

        return unsubscribe

    def defer(self, component: str, deployment_id: str, message: str, recheck_ms: int) -> None:
        if component not in self.listeners:
            raise NotSubscribed("Component is not subscribed to component update events")
        fut = self.pending.pop((component, deployment_id), None)
        if fut is None or fut.done():
            raise NoPendingUpdate("Time limit to respond to PreComponentUpdateEvent exceeded")
        deferral = Deferral(component, deployment_id, message, max(0, int(recheck_ms)))
        self.deferrals.append(deferral)
        fut.set_result(deferral)

    async def ask(self, deployment_id: str, timeout_s: float) -> int:
        """Send one PreComponentUpdateEvent round; the longest deferral asked for, in ms."""
        loop = asyncio.get_running_loop()
        for fut in self.pending.values():  # discardDeferComponentUpdateFutures
            fut.cancel()
        self.pending.clear()
        event = {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": False}}
        futures = []
        for component, emits in list(self.listeners.items()):
            for emit in list(emits):
                fut = loop.create_future()
                self.pending[(component, deployment_id)] = fut  # the latest one per component
                futures.append(fut)
                emit(event)
        longest = 0
        deadline = time.monotonic() + timeout_s
        waiting = [f for f in futures]
        while waiting and time.monotonic() < deadline:
            for fut in [f for f in waiting if f.done()]:
                waiting.remove(fut)
                if not fut.cancelled():
                    longest = max(longest, fut.result().recheck_after_ms)
            if waiting:
                await asyncio.wait(waiting, timeout=min(self.poll_s, deadline - time.monotonic()))
        for fut in self.pending.values():
            fut.cancel()
        self.pending.clear()
        return longest

    async def before_update(self, deployment_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        """Ask until nobody defers; returns how many rounds were deferred."""
        rounds = 0
        while (wait_ms := await self.ask(deployment_id, timeout_s)) > 0:
            rounds += 1
            await asyncio.sleep(wait_ms / 1000)
        return rounds

    def after_update(self, deployment_id: str) -> None:
        event = {"postUpdateEvent": {"deploymentId": deployment_id}}
        for emits in list(self.listeners.values()):
            for emit in list(emits):
                emit(event)
