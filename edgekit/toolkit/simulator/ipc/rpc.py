"""The eventstream-RPC layer: message types, flags, and the frames a server sends back.

Every RPC frame carries `:message-type`, `:message-flags` and `:stream-id` as INT32, and every
response, error and event carries `:content-type: application/json` and a `service-model-type`
(IPC_PROTOCOL.md, sections 1 and 3); anything else makes the real client drop the connection.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

from edgekit.toolkit.simulator.eventstream import Frame, Header, int32, string

VERSION = "0.1.0"
NS = "aws.greengrass#"


class MessageType(IntEnum):
    APPLICATION_MESSAGE = 0
    APPLICATION_ERROR = 1
    PING = 2
    PING_RESPONSE = 3
    CONNECT = 4
    CONNECT_ACK = 5
    PROTOCOL_ERROR = 6
    INTERNAL_ERROR = 7


CONNECTION_ACCEPTED = 1
TERMINATE_STREAM = 2


class IpcError(Exception):
    """A modelled Greengrass error: the client raises the class named by `shape`."""

    shape = "ServiceError"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def payload(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}


class UnauthorizedError(IpcError):
    shape = "UnauthorizedError"


class ResourceNotFoundError(IpcError):
    shape = "ResourceNotFoundError"


class InvalidArgumentsError(IpcError):
    shape = "InvalidArgumentsError"


class ServiceError(IpcError):
    shape = "ServiceError"


class FailedUpdateConditionCheckError(IpcError):
    shape = "FailedUpdateConditionCheckError"


class ConflictError(IpcError):
    shape = "ConflictError"


def _control(message_type: int, flags: int, stream_id: int) -> list[Header]:
    return [
        int32(":message-type", message_type),
        int32(":message-flags", flags),
        int32(":stream-id", stream_id),
    ]


def connect_ack(accepted: bool) -> Frame:
    return Frame(_control(MessageType.CONNECT_ACK, CONNECTION_ACCEPTED if accepted else 0, 0))


def ping_response(ping: Frame) -> Frame:
    echoed = [h for h in ping.headers if not h.name.startswith(":")]
    return Frame(_control(MessageType.PING_RESPONSE, 0, 0) + echoed, ping.payload)


def _json_frame(msg_type: int, flags: int, stream_id: int, model: str, body: Any) -> Frame:
    headers = _control(msg_type, flags, stream_id) + [
        string(":content-type", "application/json"),
        string("service-model-type", model),
    ]
    return Frame(headers, json.dumps(body, separators=(",", ":")).encode("utf-8"))


def response(stream_id: int, operation: str, body: dict, *, terminate: bool) -> Frame:
    flags = TERMINATE_STREAM if terminate else 0
    return _json_frame(
        MessageType.APPLICATION_MESSAGE, flags, stream_id, f"{NS}{operation}Response", body
    )


def event(stream_id: int, event_type: str, body: dict) -> Frame:
    return _json_frame(MessageType.APPLICATION_MESSAGE, 0, stream_id, f"{NS}{event_type}", body)


def error(stream_id: int, exc: IpcError) -> Frame:
    return _json_frame(
        MessageType.APPLICATION_ERROR,
        TERMINATE_STREAM,
        stream_id,
        f"{NS}{exc.shape}",
        exc.payload(),
    )


def terminate(stream_id: int) -> Frame:
    return Frame(_control(MessageType.APPLICATION_MESSAGE, TERMINATE_STREAM, stream_id))
