"""IPC authorization as the nucleus does it, from each component's `accessControl` configuration.

accessControl -> <service id> -> <policy id> -> {operations: [...], resources: [...]}.
mqttproxy resources follow MQTT wildcards; pubsub resources use the `*` glob (and MQTT wildcards
for subscriptions); `*` alone allows everything. `{iot:thingName}` in a resource is interpolated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgekit.toolkit.simulator.topics import filter_covers, glob_match

MQTTPROXY = "aws.greengrass.ipc.mqttproxy"
PUBSUB = "aws.greengrass.ipc.pubsub"

# operation -> (service, message prefix) for the operations that need a policy
GUARDED: dict[str, tuple[str, str]] = {
    "PublishToIoTCore": (MQTTPROXY, "Authorization failed with error "),
    "SubscribeToIoTCore": (MQTTPROXY, "Authorization failed with error "),
    "PublishToTopic": (PUBSUB, ""),
    "SubscribeToTopic": (PUBSUB, ""),
    "PutComponentMetric": ("aws.greengrass.ipc.componentmetric", ""),
}


class Unauthorized(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _interpolate(resource: str, thing_name: str) -> str:
    # ${*} ${?} ${$} are the documented escapes for literal characters.
    return (
        resource.replace("{iot:thingName}", thing_name)
        .replace("${*}", "\x00STAR\x00")
        .replace("${?}", "?")
        .replace("${$}", "$")
    )


def _resource_matches(service: str, resource: str, requested: str) -> bool:
    if resource == "*" or resource == requested:
        return True
    literal_star = "\x00STAR\x00" in resource
    if literal_star:
        return resource.replace("\x00STAR\x00", "*") == requested
    if service == MQTTPROXY:
        return filter_covers(resource, requested)
    if "*" in resource and glob_match(resource, requested):
        return True
    return ("+" in resource or "#" in resource) and filter_covers(resource, requested)


class Authorizer:
    """Answers "may component C do operation O on resource R" from live configuration."""

    def __init__(self, thing_name: str, access_control_of: Callable[[str], Any]) -> None:
        self.thing_name = thing_name
        self._acl = access_control_of

    def allowed(self, component: str, operation: str, resource: str) -> bool:
        service, _ = GUARDED[operation]
        acl = self._acl(component)
        if not isinstance(acl, dict):
            return False
        policies = acl.get(service)
        if not isinstance(policies, dict):
            return False
        full_op = f"aws.greengrass#{operation}"
        for policy in policies.values():
            if not isinstance(policy, dict):
                continue
            ops = policy.get("operations") or []
            if full_op not in ops and "*" not in ops:
                continue
            for res in policy.get("resources") or []:
                if _resource_matches(service, _interpolate(str(res), self.thing_name), resource):
                    return True
        return False

    def check(self, component: str, operation: str, resource: str) -> None:
        if operation not in GUARDED:
            return
        if self.allowed(component, operation, resource):
            return
        service, prefix = GUARDED[operation]
        raise Unauthorized(
            f"{prefix}Principal {component} is not authorized to perform "
            f"{service}:aws.greengrass#{operation} on resource {resource}"
        )
