"""IPC operation handlers, in a registry keyed by operation name.

Each handler gets the device's services (`core`), the call (caller identity and, for streaming
operations, a way to emit events) and the decoded request, and returns the response body or
raises an IpcError. Operations not registered here get a ServiceError that says so.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edgekit.toolkit.simulator.access import Authorizer, Unauthorized
from edgekit.toolkit.simulator.config import ConfigStore, StaleUpdate
from edgekit.toolkit.simulator.ipc.rpc import (
    FailedUpdateConditionCheckError,
    InvalidArgumentsError,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)
from edgekit.toolkit.simulator.pubsub import ALL, FROM_OTHERS, LocalBus
from edgekit.toolkit.simulator.topics import MAX_IOT_PAYLOAD, has_wildcard, iot_topic_problem
from edgekit.toolkit.simulator.updates import ComponentUpdates, NoPendingUpdate, NotSubscribed


class MqttProxy(Protocol):
    async def publish(self, component: str, topic: str, payload: bytes, qos: int) -> None: ...

    def subscribe(
        self, component: str, topic_filter: str, deliver: Callable[[str, bytes], None]
    ) -> Callable[[], None]: ...


class Core(Protocol):
    """What the IPC handlers need from a simulated device."""

    thing_name: str
    authorizer: Authorizer
    bus: LocalBus
    config: ConfigStore

    @property
    def mqtt(self) -> MqttProxy: ...

    def report_state(self, component: str, state: str) -> None: ...

    def known_component(self, name: str) -> bool: ...

    component_metrics: list[tuple[str, str, str, float]]
    updates: ComponentUpdates


class Call(Protocol):
    component: str
    operation: str

    def emit(self, body: dict[str, Any]) -> None: ...

    def on_close(self, fn: Callable[[], None]) -> None: ...


Handler = Callable[[Core, Call, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Operation:
    name: str
    handler: Handler
    event_type: str | None = None  # set for streaming operations

    @property
    def streaming(self) -> bool:
        return self.event_type is not None


OPERATIONS: dict[str, Operation] = {}


def operation(name: str, event_type: str | None = None) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        OPERATIONS[name] = Operation(name, fn, event_type)
        return fn

    return register


def _authorize(core: Core, call: Call, resource: str) -> None:
    try:
        core.authorizer.check(call.component, call.operation, resource)
    except Unauthorized as exc:
        raise UnauthorizedError(exc.message) from None


def _required(request: dict, key: str) -> Any:
    value = request.get(key)
    if value in (None, ""):
        raise InvalidArgumentsError(f"{key} is required")
    return value


def _b64(value: Any, field: str) -> bytes:
    try:
        return base64.b64decode(value or "", validate=True)
    except (binascii.Error, TypeError):
        raise InvalidArgumentsError(f"{field} is not valid base64") from None


def _qos(value: Any) -> int:
    q = str(value if value is not None else "0")
    if q not in ("0", "1"):
        raise InvalidArgumentsError(f"qos must be 0 or 1, got {value!r}")
    return int(q)


# --- IoT Core (MQTT proxy) ---------------------------------------------------------------


@operation("PublishToIoTCore")
async def publish_to_iot_core(core: Core, call: Call, req: dict) -> dict:
    topic = _required(req, "topicName")
    problem = iot_topic_problem(topic, is_filter=False)
    if problem:
        raise InvalidArgumentsError(problem)
    _authorize(core, call, topic)
    payload = _b64(req.get("payload"), "payload")
    if len(payload) > MAX_IOT_PAYLOAD:
        raise InvalidArgumentsError(
            f"payload is {len(payload)} bytes; IoT Core accepts at most {MAX_IOT_PAYLOAD}"
        )
    try:
        await core.mqtt.publish(call.component, topic, payload, _qos(req.get("qos")))
    except ServiceError:
        raise
    except Exception as exc:  # a failed MQTT publish is a ServiceError on the nucleus
        raise ServiceError(f"Failed to publish message: {exc}") from None
    return {}


@operation("SubscribeToIoTCore", event_type="IoTCoreMessage")
async def subscribe_to_iot_core(core: Core, call: Call, req: dict) -> dict:
    topic = _required(req, "topicName")
    problem = iot_topic_problem(topic, is_filter=True)
    if problem:
        raise InvalidArgumentsError(problem)
    _qos(req.get("qos"))
    _authorize(core, call, topic)

    def deliver(t: str, payload: bytes) -> None:
        call.emit(
            {"message": {"topicName": t, "payload": base64.b64encode(payload).decode("ascii")}}
        )

    call.on_close(core.mqtt.subscribe(call.component, topic, deliver))
    return {}


# --- local pub/sub -----------------------------------------------------------------------


@operation("PublishToTopic")
async def publish_to_topic(core: Core, call: Call, req: dict) -> dict:
    topic = _required(req, "topic")
    if has_wildcard(topic):
        raise InvalidArgumentsError("Cannot publish to a topic with wildcards")
    message = req.get("publishMessage") or {}
    if "jsonMessage" in message:
        body = {"jsonMessage": {"message": message["jsonMessage"].get("message")}}
        kind = "jsonMessage"
    elif "binaryMessage" in message:
        raw = message["binaryMessage"].get("message")
        _b64(raw, "binaryMessage.message")
        body = {"binaryMessage": {"message": raw}}
        kind = "binaryMessage"
    else:
        raise InvalidArgumentsError("publishMessage needs jsonMessage or binaryMessage")
    _authorize(core, call, topic)
    body[kind]["context"] = {"topic": topic}
    core.bus.publish(call.component, topic, body)
    return {}


@operation("SubscribeToTopic", event_type="SubscriptionResponseMessage")
async def subscribe_to_topic(core: Core, call: Call, req: dict) -> dict:
    topic = _required(req, "topic")
    mode = req.get("receiveMode")
    if mode not in (None, ALL, FROM_OTHERS):
        raise InvalidArgumentsError(f"unknown receiveMode {mode!r}")
    _authorize(core, call, topic)

    def deliver(t: str, message: dict) -> None:
        call.emit(message)

    call.on_close(core.bus.subscribe(call.component, topic, deliver, mode))
    return {}


# --- configuration -----------------------------------------------------------------------


def _target(core: Core, call: Call, req: dict) -> str:
    name = req.get("componentName") or call.component
    if not core.known_component(name):
        raise ResourceNotFoundError(f"Component {name} not found", resourceType="Component")
    return name


@operation("GetConfiguration")
async def get_configuration(core: Core, call: Call, req: dict) -> dict:
    name = _target(core, call, req)
    key_path = list(req.get("keyPath") or [])
    try:
        value = core.config.get(name, key_path)
    except KeyError:
        raise ResourceNotFoundError("Key not found") from None
    if key_path and not isinstance(value, dict):
        value = {key_path[-1]: value}
    return {"componentName": name, "value": value}


@operation("UpdateConfiguration")
async def update_configuration(core: Core, call: Call, req: dict) -> dict:
    key_path = list(req.get("keyPath") or [])
    if "timestamp" not in req:
        raise InvalidArgumentsError("timestamp is required")
    if "valueToMerge" not in req:
        raise InvalidArgumentsError("valueToMerge is required")
    if key_path and key_path[0] == "accessControl":
        raise InvalidArgumentsError(
            "Config update is not allowed for following fields [accessControl]"
        )
    try:
        core.config.update(call.component, key_path, req["valueToMerge"], req["timestamp"])
    except StaleUpdate as exc:
        raise FailedUpdateConditionCheckError(str(exc)) from None
    except ValueError as exc:
        raise InvalidArgumentsError(str(exc)) from None
    return {}


@operation("SubscribeToConfigurationUpdate", event_type="ConfigurationUpdateEvents")
async def subscribe_to_configuration_update(core: Core, call: Call, req: dict) -> dict:
    name = _target(core, call, req)
    key_path = list(req.get("keyPath") or [])
    try:
        core.config.get(name, key_path)
    except KeyError:
        raise ResourceNotFoundError("Key not found") from None

    def deliver(component: str, changed: list[str]) -> None:
        call.emit({"configurationUpdateEvent": {"componentName": component, "keyPath": changed}})

    call.on_close(core.config.subscribe(name, key_path, deliver))
    return {}


# --- lifecycle ---------------------------------------------------------------------------


@operation("UpdateState")
async def update_state(core: Core, call: Call, req: dict) -> dict:
    state = req.get("state")
    if state not in ("RUNNING", "ERRORED"):
        raise InvalidArgumentsError(f"state must be RUNNING or ERRORED, got {state!r}")
    core.report_state(call.component, state)
    return {}


# --- component metrics ---------------------------------------------------------------------

COMPONENT_METRIC = "aws.greengrass.ipc.componentmetric"
# ComponentMetricIPCEventStreamAgent: only components named aws.* may put metrics
METRIC_CALLER = re.compile(r"^aws\.")
# TelemetryUnit, matched as the agent does: non-alphanumerics dropped, case ignored
METRIC_UNITS = {
    "seconds",
    "microseconds",
    "milliseconds",
    "bytes",
    "kilobytes",
    "megabytes",
    "gigabytes",
    "terabytes",
    "bits",
    "kilobits",
    "megabits",
    "gigabits",
    "terabits",
    "percent",
    "count",
    "bytespersecond",
    "kilobytespersecond",
    "megabytespersecond",
    "gigabytespersecond",
    "terabytespersecond",
    "bitspersecond",
    "kilobitspersecond",
    "megabitspersecond",
    "gigabitspersecond",
    "terabitspersecond",
    "countpersecond",
    "none",
}


@operation("PutComponentMetric")
async def put_component_metric(core: Core, call: Call, req: dict) -> dict:
    allowed = core.authorizer.allowed(call.component, "PutComponentMetric", "*")
    if not (allowed and METRIC_CALLER.search(call.component)):
        raise UnauthorizedError(
            f"Principal {call.component} is not authorized to perform "
            f"{COMPONENT_METRIC}:aws.greengrass#PutComponentMetric "
        )
    metrics = req.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise InvalidArgumentsError(
            "Null or Empty list of metrics found in PutComponentMetricRequest"
        )
    for m in metrics:
        name, unit, value = (m or {}).get("name"), (m or {}).get("unit"), (m or {}).get("value")
        bad = (
            not name
            or len(str(name).encode("utf-8")) > 32
            or not unit
            or not isinstance(value, (int, float))
            or value < 0
        )
        if bad or re.sub(r"[^A-Za-z0-9]", "", str(unit)).lower() not in METRIC_UNITS:
            raise InvalidArgumentsError("Invalid argument found in PutComponentMetricRequest")
    for m in metrics:
        core.component_metrics.append((call.component, m["name"], m["unit"], float(m["value"])))
    return {}


@operation("SubscribeToComponentUpdates", event_type="ComponentUpdatePolicyEvents")
async def subscribe_to_component_updates(core: Core, call: Call, req: dict) -> dict:
    if not core.known_component(call.component):
        raise ResourceNotFoundError(
            "Service with given name not found currently in Greengrass",
            resourceType="Service/Component",
        )
    call.on_close(core.updates.subscribe(call.component, call.emit))
    return {}


@operation("DeferComponentUpdate")
async def defer_component_update(core: Core, call: Call, req: dict) -> dict:
    deployment_id = req.get("deploymentId")
    if not deployment_id:
        raise InvalidArgumentsError("Cannot defer the update, the deployment ID provided was null")
    try:
        core.updates.defer(
            call.component,
            str(deployment_id),
            str(req.get("message") or ""),
            int(req.get("recheckAfterMs") or 0),
        )
    except NotSubscribed as exc:
        raise InvalidArgumentsError(str(exc)) from None
    except NoPendingUpdate as exc:
        raise ServiceError(str(exc)) from None
    return {}


def unsupported(name: str) -> ServiceError:
    return ServiceError(
        f"Operation {name} is not supported by the edgekit Greengrass simulator "
        f"(supported: {', '.join(sorted(OPERATIONS))})"
    )
