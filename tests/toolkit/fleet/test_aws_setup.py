"""`edgekit fleet setup-aws` against the service models (moto): the queue, the role IoT Core
assumes and the topic rule are made once, found again on a second run, and repaired where they
drifted; an existing role given by ARN is used as it is."""

from __future__ import annotations

import json

import boto3
import pytest
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app
from edgekit.toolkit.fleet.aws_rule import RULE_SQL
from edgekit.toolkit.fleet.aws_setup import (
    POLICY_NAME,
    RETENTION_S,
    AwsPathRequest,
    send_policy,
    setup_aws_path,
)
from edgekit.toolkit.greengrass.aws import AwsError, Clients

REGION = "eu-west-1"  # the aws fixture's (conftest.py)


def _actions(result: dict) -> list[str]:
    return [step["action"] for step in result["steps"]]


def test_queue_role_and_rule_are_made_then_found(aws):
    result = setup_aws_path(Clients(region=REGION), AwsPathRequest())
    assert _actions(result) == ["created", "created", "created"]
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName="edgekit-fleet")["QueueUrl"]
    assert result["queue_url"] == url and result["region"] == REGION
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["MessageRetentionPeriod"]) == RETENTION_S

    iam = boto3.client("iam")
    role = iam.get_role(RoleName="edgekit-iot-to-sqs")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "iot.amazonaws.com"}
    policy = iam.get_role_policy(RoleName="edgekit-iot-to-sqs", PolicyName=POLICY_NAME)
    doc = policy["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert doc == send_policy(attrs["QueueArn"])

    rule = boto3.client("iot", region_name=REGION).get_topic_rule(ruleName="edgekit_fleet")["rule"]
    assert rule["sql"] == RULE_SQL
    assert rule["actions"] == [
        {"sqs": {"roleArn": role["Arn"], "queueUrl": url, "useBase64": False}}
    ]

    again = setup_aws_path(Clients(region=REGION), AwsPathRequest())
    assert _actions(again) == ["found", "found", "unchanged"]


def test_a_drifted_send_policy_is_set_again(aws):
    setup_aws_path(Clients(region=REGION), AwsPathRequest())
    boto3.client("iam").put_role_policy(
        RoleName="edgekit-iot-to-sqs",
        PolicyName=POLICY_NAME,
        PolicyDocument=json.dumps(send_policy("arn:aws:sqs:eu-west-1:123456789012:other")),
    )
    assert _actions(setup_aws_path(Clients(region=REGION), AwsPathRequest()))[1] == "updated"
    assert _actions(setup_aws_path(Clients(region=REGION), AwsPathRequest()))[1] == "found"


def test_a_given_role_is_used_as_it_is(aws):
    arn = "arn:aws:iam::123456789012:role/platform-team-iot"
    result = setup_aws_path(Clients(region=REGION), AwsPathRequest(role_arn=arn))
    assert _actions(result) == ["created", "given", "created"]
    assert boto3.client("iam").list_roles()["Roles"] == []
    rule = boto3.client("iot", region_name=REGION).get_topic_rule(ruleName="edgekit_fleet")["rule"]
    assert rule["actions"][0]["sqs"]["roleArn"] == arn


class _NewRoleNotYetAssumable(Clients):
    """Real IAM is eventually consistent (moto is not): IoT Core refuses a role made a moment
    ago with InvalidRequestException until the role has propagated."""

    refusals: int = 2

    def call(self, service, operation, **params):
        if operation == "create_topic_rule" and self.refusals:
            self.refusals -= 1
            raise AwsError(
                "iot:CreateTopicRule failed: InvalidRequestException: iot.amazonaws.com is "
                "unable to assume role",
                code="InvalidRequestException",
            )
        return super().call(service, operation, **params)


def test_the_rule_waits_for_a_new_role_to_propagate(aws):
    waits: list[float] = []
    clients = _NewRoleNotYetAssumable(region=REGION)
    result = setup_aws_path(clients, AwsPathRequest(), sleep=waits.append)
    assert _actions(result)[2] == "created" and waits == [1.0, 2.0]


def test_bad_names_are_refused_before_any_call(aws):
    clients = Clients(region=REGION)
    with pytest.raises(BadInputError, match="queue name"):
        setup_aws_path(clients, AwsPathRequest(queue="fleet queue"))
    with pytest.raises(BadInputError, match="not an ARN"):
        setup_aws_path(clients, AwsPathRequest(role_arn="platform-team-iot"))
    with pytest.raises(BadInputError, match="topic rule name"):
        setup_aws_path(clients, AwsPathRequest(rule="edgekit-fleet"))
    assert clients.calls == []


def test_cli_makes_the_path_and_prints_the_collect_command(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["fleet", "setup-aws", "--region", REGION, "--queue", "q1"])
    assert result.exit_code == 0, result.output
    url = boto3.client("sqs", region_name=REGION).get_queue_url(QueueName="q1")["QueueUrl"]
    assert f"edgekit fleet collect --sqs {url} --region {REGION}" in result.output
    again = runner.invoke(
        app, ["fleet", "setup-aws", "--region", REGION, "--queue", "q1", "--json"]
    )
    assert again.exit_code == 0, again.output
    assert [s["action"] for s in json.loads(again.stdout)["steps"]] == [
        "found",
        "found",
        "unchanged",
    ]
    bad = runner.invoke(app, ["fleet", "setup-aws", "--region", REGION, "--rule", "a-b"])
    assert bad.exit_code == 2 and "letters, digits" in bad.output
    assert boto3.client("iam").list_roles()["Roles"][0]["RoleName"] == "edgekit-iot-to-sqs"
    queues = boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", [])
    assert queues == [url], "a refused request made nothing"
