"""Everything the AWS path needs, made once: the SQS queue, a role IoT Core may assume to send to
it, and the topic rule (``aws_rule``). Each step says whether it created, changed or found its
resource, so running it again is safe (`edgekit fleet setup-aws`)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.fleet.aws_rule import check_rule_name, ensure_forwarding_rule

# SQS keeps a message at most 14 days: collectors may be down that long and lose nothing
RETENTION_S = 14 * 24 * 3600
POLICY_NAME = "edgekit-sqs-send"
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_QUEUE_MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
# IAM is eventually consistent: a role made a moment ago may not be assumable by IoT Core yet
_ASSUME_WAIT_S = (1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class AwsPathRequest:
    queue: str = "edgekit-fleet"
    rule: str = "edgekit_fleet"
    role: str = "edgekit-iot-to-sqs"  # made when role_arn is not given
    role_arn: str | None = None  # an existing role: used as it is, never changed


def trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "iot.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def send_policy(queue_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}],
    }


def check_request(request: AwsPathRequest) -> None:
    """Every name checked before the first call: nothing is made for a request that fails."""
    check_rule_name(request.rule)
    if not _QUEUE_NAME.fullmatch(request.queue):
        raise BadInputError(
            f"queue name {request.queue!r} may hold only letters, digits, - and _ (at most 80)"
        )
    if request.role_arn is None and not _ROLE_NAME.fullmatch(request.role):
        raise BadInputError(
            f"role name {request.role!r} may hold only letters, digits and +=,.@_- (at most 64)"
        )
    if request.role_arn is not None and not request.role_arn.startswith("arn:"):
        raise BadInputError(
            f"`role_arn` {request.role_arn!r} is not an ARN",
            hint="give a role ARN, or leave it out and a role is made",
        )


def ensure_queue(clients: Any, name: str) -> dict[str, Any]:
    """The queue's URL and ARN; made (14-day retention) when it does not exist."""
    from edgekit.toolkit.greengrass.aws import AwsError

    try:
        url = clients.call("sqs", "get_queue_url", QueueName=name)["QueueUrl"]
        action = "found"
    except AwsError as exc:
        if exc.code not in _QUEUE_MISSING:
            raise
        attributes = {"MessageRetentionPeriod": str(RETENTION_S)}
        url = clients.call("sqs", "create_queue", QueueName=name, Attributes=attributes)["QueueUrl"]
        action = "created"
    arn = clients.call("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    return {"resource": "sqs queue", "name": name, "action": action, "url": url, "arn": arn}


def ensure_role(clients: Any, name: str, queue_arn: str) -> dict[str, Any]:
    """A role IoT Core may assume, allowed sqs:SendMessage on the queue: made, or its send
    policy set when the role exists (its trust policy is the user's and is left alone)."""
    from edgekit.toolkit.greengrass.aws import AwsError

    try:
        arn = clients.call("iam", "get_role", RoleName=name)["Role"]["Arn"]
        action = "found"
    except AwsError as exc:
        if exc.code != "NoSuchEntity":
            raise
        arn = clients.call(
            "iam",
            "create_role",
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust_policy()),
            Description="edgekit: IoT Core sends the fleet's telemetry to the collectors' queue",
        )["Role"]["Arn"]
        action = "created"
    wanted = send_policy(queue_arn)
    if action == "found":
        try:
            doc = clients.call("iam", "get_role_policy", RoleName=name, PolicyName=POLICY_NAME)
            current = doc["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(current)
        except AwsError as exc:
            if exc.code != "NoSuchEntity":
                raise
            current = None
        if current != wanted:
            action = "updated"
    if action != "found":
        clients.call(
            "iam",
            "put_role_policy",
            RoleName=name,
            PolicyName=POLICY_NAME,
            PolicyDocument=json.dumps(wanted),
        )
    return {"resource": "iam role", "name": name, "action": action, "arn": arn}


def _rule_with_retry(
    clients: Any, name: str, url: str, role_arn: str, sleep: Callable[[float], None]
) -> dict[str, Any]:
    from edgekit.toolkit.greengrass.aws import AwsError

    for wait in (*_ASSUME_WAIT_S, None):
        try:
            return ensure_forwarding_rule(clients, name, url, role_arn)
        except AwsError as exc:
            # "iot.amazonaws.com is unable to assume role": a new role not yet everywhere
            if wait is None or exc.code != "InvalidRequestException" or "role" not in str(exc):
                raise
            sleep(wait)
    raise AssertionError("unreachable")


def setup_aws_path(
    clients: Any, request: AwsPathRequest, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Queue, role and rule, in that order; returns each step and the queue URL to collect from."""
    check_request(request)
    queue = ensure_queue(clients, request.queue)
    if request.role_arn is None:
        role = ensure_role(clients, request.role, queue["arn"])
    else:
        role = {"resource": "iam role", "name": request.role_arn, "action": "given"}
        role["arn"] = request.role_arn
    rule = _rule_with_retry(clients, request.rule, queue["url"], role["arn"], sleep)
    rule_step = {"resource": "iot topic rule", "name": rule["rule"], "action": rule["action"]}
    return {
        "queue_url": queue["url"],
        "region": clients.resolved_region(),
        "sql": rule["sql"],
        "steps": [queue, role, {**rule_step, "sql": rule["sql"]}],
    }
