"""The AWS path: an AWS IoT Core topic rule forwards the fleet's telemetry to an SQS queue, so a
fleet on IoT Core needs no broker of the user's own; `edgekit fleet collect --sqs URL` reads it
(edgekit.toolkit.fleet.sqs_source).

The rule keeps what the collector checks: ``topic()`` (the thing and type the device published
on) and the payload's exact bytes (base64), so a message forwarded through SQS is parsed and
deduplicated exactly as one received over MQTT.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from edge_agent import telemetry
from edge_agent.errors import BadInputError

RULE_SQL = (
    f"SELECT topic() AS topic, encode(*, 'base64') AS payload FROM '{telemetry.DATA_PREFIX}/+/+'"
)
SQL_VERSION = "2016-03-23"
_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")


def rule_payload(queue_url: str, role_arn: str, description: str = "") -> dict[str, Any]:
    """The topicRulePayload: every dt/edgekit/<thing>/<type> message to the queue."""
    return {
        "sql": RULE_SQL,
        "awsIotSqlVersion": SQL_VERSION,
        "description": description or "edgekit fleet telemetry to the collectors' SQS queue",
        "ruleDisabled": False,
        "actions": [{"sqs": {"roleArn": role_arn, "queueUrl": queue_url, "useBase64": False}}],
    }


def check_rule_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise BadInputError(
            f"topic rule name {name!r} may hold only letters, digits and _ (at most 128)"
        )


def ensure_forwarding_rule(
    clients: Any, name: str, queue_url: str, role_arn: str
) -> dict[str, Any]:
    """Create the rule, or replace it when it exists with another definition; says which.

    ``clients`` is edgekit.toolkit.greengrass.aws.Clients (errors come back as messages naming the fix).
    """
    check_rule_name(name)
    if not role_arn.startswith("arn:"):
        raise BadInputError(
            f"`role_arn` {role_arn!r} is not an ARN",
            hint="a role IoT Core may assume, allowed sqs:SendMessage on the queue",
        )
    payload = rule_payload(queue_url, role_arn)
    from edgekit.toolkit.greengrass.aws import AwsError

    try:
        current = clients.call("iot", "get_topic_rule", ruleName=name).get("rule") or {}
    except AwsError as exc:
        if not exc.not_found and "UnauthorizedException" not in str(exc.code):
            raise
        current = None
    if current is None:
        clients.call("iot", "create_topic_rule", ruleName=name, topicRulePayload=payload)
        return {"rule": name, "action": "created", "sql": RULE_SQL}
    same = current.get("sql") == RULE_SQL and current.get("actions") == payload["actions"]
    if same:
        return {"rule": name, "action": "unchanged", "sql": RULE_SQL}
    clients.call("iot", "replace_topic_rule", ruleName=name, topicRulePayload=payload)
    return {"rule": name, "action": "replaced", "sql": RULE_SQL}


def decode_forwarded(body: str | bytes) -> tuple[str, bytes]:
    """An SQS message the rule wrote → (topic, payload bytes); ValueError when it is not one."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"SQS message is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("topic"), str):
        raise ValueError("SQS message has no topic: not written by the edgekit topic rule")
    try:
        payload = base64.b64decode(doc.get("payload") or "", validate=True)
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"SQS message payload is not base64: {exc}") from None
    return doc["topic"], payload


def forwarded(topic: str, payload: bytes) -> str:
    """What the rule puts on the queue for one message (tests and the benchmark use it)."""
    return json.dumps({"topic": topic, "payload": base64.b64encode(payload).decode("ascii")})
