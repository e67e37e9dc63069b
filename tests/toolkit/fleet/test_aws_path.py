"""The AWS path against the service models (moto): the IoT Core topic rule that forwards the
fleet's topics to SQS, and the collector reading that queue into either store engine: stored
messages are deleted only after the commit, a redelivered copy is dropped by the key, a message
that is not the rule's is rejected (and deleted), not retried for ever."""

from __future__ import annotations

import itertools
import json
import time

import boto3
import pytest
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app
from edgekit.toolkit.fleet.aws_rule import (
    RULE_SQL,
    decode_forwarded,
    ensure_forwarding_rule,
    forwarded,
)
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.sqs_source import SqsSource
from edgekit.toolkit.greengrass.aws import Clients
from tests.toolkit.fleet.fleet_helpers import metrics

REGION = "eu-west-1"  # the aws fixture's (conftest.py)
ROLE = "arn:aws:iam::123456789012:role/edgekit-iot-to-sqs"


def test_topic_rule_forwards_the_fleet_topics_to_the_queue(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="edgekit-fleet")["QueueUrl"]
    clients = Clients(region=REGION)
    assert ensure_forwarding_rule(clients, "edgekit_fleet", url, ROLE)["action"] == "created"
    rule = boto3.client("iot", region_name=REGION).get_topic_rule(ruleName="edgekit_fleet")["rule"]
    assert rule["sql"] == RULE_SQL and "FROM 'dt/edgekit/+/+'" in rule["sql"]
    assert rule["actions"] == [{"sqs": {"roleArn": ROLE, "queueUrl": url, "useBase64": False}}]
    assert ensure_forwarding_rule(clients, "edgekit_fleet", url, ROLE)["action"] == "unchanged"
    other = url + "-2"
    assert ensure_forwarding_rule(clients, "edgekit_fleet", other, ROLE)["action"] == "replaced"
    with pytest.raises(BadInputError, match="letters, digits"):
        ensure_forwarding_rule(clients, "edgekit-fleet", url, ROLE)
    with pytest.raises(BadInputError, match="not an ARN"):
        ensure_forwarding_rule(clients, "edgekit_fleet", url, "my-role")


def test_forwarded_message_keeps_topic_and_exact_bytes():
    topic, payload = metrics("gw-1", 3)
    assert decode_forwarded(forwarded(topic, payload)) == (topic, payload)
    for bad in (
        "not json",
        json.dumps({"payload": "eA=="}),
        json.dumps({"topic": "t", "payload": "%%"}),
    ):
        with pytest.raises(ValueError):
            decode_forwarded(bad)


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_collector_reads_the_queue_into_the_store(aws, store_at):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="edgekit-fleet")["QueueUrl"]
    items = [metrics(f"dev-{t}", s) for t in range(3) for s in range(1, 11)]
    for topic, payload in items:
        sqs.send_message(QueueUrl=url, MessageBody=forwarded(topic, payload))
    sqs.send_message(QueueUrl=url, MessageBody=forwarded(*items[0]))  # IoT Core retried it
    sqs.send_message(QueueUrl=url, MessageBody="hello from somebody else")
    c = Collector.open(store_at).start()
    source = SqsSource(c, url, sqs, wait_s=0).start()
    try:
        assert _wait(lambda: c.stats.received >= 32, 60), (c.stats, source.last_error)
        assert c.flush(10)
        source.stop()
        assert c.store.scalar("SELECT COUNT(*) FROM messages") == 30
        assert c.stats.duplicates == 1 and c.stats.rejected == 1
        assert c.store.gaps() == []
        assert "not dt/edgekit" in c.store.query("SELECT error FROM rejects")[0]["error"]
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert attrs == {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
        }, "everything stored (or rejected) was deleted from the queue"
    finally:
        source.stop()
        c.close()


def test_an_idle_short_poll_does_not_spin(aws, tmp_path):
    """With no long poll (wait_s=0) an empty queue is asked again only after a pause: a spinning
    receive loop held the GIL against the writer (a 30-message batch once took over 60 s).

    Measured as the gap between one receive's end and the next one's start, not as a count of
    receives in a fixed 2 s: on a loaded machine a single receive can take a second (the
    count then fell below its floor with nothing wrong)."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="edgekit-fleet")["QueueUrl"]
    c = Collector.open(tmp_path / "fleet.db").start()
    source = SqsSource(c, url, sqs, wait_s=0, idle_s=0.5)
    calls: list[tuple[float, float]] = []
    poll = source.poll_once

    def timed_poll() -> int:
        start = time.monotonic()
        try:
            return poll()
        finally:
            calls.append((start, time.monotonic()))

    source.poll_once = timed_poll  # type: ignore[method-assign]
    source.start()
    try:
        assert _wait(lambda: len(calls) >= 4, 60), (calls, source.last_error)
    finally:
        source.stop()
        c.close()
    gaps = [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(calls)]
    assert min(gaps) >= 0.5 * 0.9, f"an empty queue was asked again after {min(gaps):.3f} s"


def test_messages_not_stored_stay_on_the_queue(aws, tmp_path):
    """A batch that fails to store is not acknowledged: its messages are not deleted."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="edgekit-fleet")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=forwarded(*metrics("dev-1", 1)))
    c = Collector.open(tmp_path / "fleet.db")

    def broken(items):
        raise RuntimeError("database is down")

    c.store.write = broken  # the store fails; the real queue keeps the message
    c.start()
    source = SqsSource(c, url, sqs, wait_s=0, visibility_s=30)
    try:
        assert source.poll_once() == 1
        assert _wait(lambda: c.stats.failed_batches == 1, 30)
        assert source.delete_acknowledged() == 0
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"  # comes back later
    finally:
        c.close()


def test_collect_cli_needs_exactly_one_source(aws, tmp_path):
    runner = CliRunner()
    neither = runner.invoke(app, ["fleet", "collect", "--store", str(tmp_path / "f.db")])
    assert neither.exit_code == 2 and "pass one source" in neither.output
    missing = runner.invoke(
        app,
        [
            "fleet",
            "collect",
            "--sqs",
            f"https://sqs.{REGION}.amazonaws.com/123456789012/nope",
            "--region",
            REGION,
            "--store",
            str(tmp_path / "f.db"),
            "--duration",
            "1",
        ],
    )
    assert missing.exit_code == 2 and "cannot read the SQS queue" in missing.output
    assert "Traceback" not in missing.output
    assert not (tmp_path / "f.db").exists()  # checked before the store is made
