"""Pure rules: accessControl matching, configuration RESET/MERGE, version ranges, waves."""

from __future__ import annotations

import pytest

from edgekit.toolkit.simulator.access import Authorizer, Unauthorized
from edgekit.toolkit.simulator.catalog import satisfies
from edgekit.toolkit.simulator.config import apply_configuration_update, changed_paths
from edgekit.toolkit.simulator.fleet import wave_sizes
from edgekit.toolkit.simulator.topics import filter_covers, iot_topic_problem, mqtt_match


def _auth(service, resources, ops=("*",)):
    acl = {service: {"p:1": {"operations": list(ops), "resources": resources}}}
    return Authorizer("dev-9", lambda c: acl if c == "C" else {})


@pytest.mark.parametrize(
    ("resources", "op", "topic", "ok"),
    [
        (["dt/{iot:thingName}/+"], "PublishToIoTCore", "dt/dev-9/metrics", True),
        (["dt/{iot:thingName}/+"], "PublishToIoTCore", "dt/dev-8/metrics", False),
        (["dt/#"], "SubscribeToIoTCore", "dt/+/x", True),
        (["dt/+/x"], "SubscribeToIoTCore", "dt/#", False),  # a broader filter than allowed
        (["*"], "PublishToIoTCore", "anything/at/all", True),
        (["dt/a*"], "PublishToIoTCore", "dt/abc", False),  # mqttproxy: * is not a glob
    ],
)
def test_mqttproxy_resources(resources, op, topic, ok):
    assert _auth("aws.greengrass.ipc.mqttproxy", resources).allowed("C", op, topic) is ok


@pytest.mark.parametrize(
    ("resources", "topic", "ok"),
    [
        (["local/*"], "local/a/b", True),
        (["*/temp"], "room1/temp", True),
        (["local/*"], "other", False),
    ],
)
def test_pubsub_glob(resources, topic, ok):
    assert _auth("aws.greengrass.ipc.pubsub", resources).allowed("C", "PublishToTopic", topic) is ok


def test_operation_must_be_listed_and_message_is_the_nucleus_one():
    a = _auth("aws.greengrass.ipc.mqttproxy", ["*"], ops=["aws.greengrass#SubscribeToIoTCore"])
    with pytest.raises(Unauthorized) as exc:
        a.check("C", "PublishToIoTCore", "t")
    assert exc.value.message == (
        "Authorization failed with error Principal C is not authorized to perform "
        "aws.greengrass.ipc.mqttproxy:aws.greengrass#PublishToIoTCore on resource t"
    )


def test_topics():
    assert (
        mqtt_match("a/+/c", "a/b/c") and not mqtt_match("a/+", "a/b/c") and mqtt_match("a/#", "a")
    )
    assert filter_covers("a/#", "a/+/c") and not filter_covers("a/+/c", "a/#")
    assert "7 forward slashes" in iot_topic_problem("a/b/c/d/e/f/g/h/i", is_filter=False)
    assert iot_topic_problem("$aws/rules/r/a/b/c/d/e/f/g/h", is_filter=False) is None


@pytest.mark.parametrize(
    ("topic_filter", "topic", "ok"),
    [
        ("#", "$aws/things/t/shadow/update", False),  # matched before (issue 22)
        ("+/things/t/shadow/update", "$aws/things/t/shadow/update", False),
        ("#", "$SYS/broker/load", False),
        ("+/#", "$SYS/broker/load", False),
        ("$aws/things/t/#", "$aws/things/t/shadow/update", True),
        ("$SYS/+/load", "$SYS/broker/load", True),
        ("#", "dt/edgekit/t/metrics", True),
        ("+/edgekit/#", "dt/edgekit/t/metrics", True),
        ("dt/#", "dt/$x", True),  # only a leading $ is special
    ],
)
def test_wildcards_never_match_dollar_topics(topic_filter, topic, ok):
    assert mqtt_match(topic_filter, topic) is ok


def test_reset_runs_before_merge_and_lists_are_replaced():
    default = {"a": 1, "l": [1, 2], "n": {"x": 1}}
    current = {"a": 5, "l": [9], "n": {"x": 7, "y": 2}, "custom": True}
    out = apply_configuration_update(
        current, default, ["/n/x", "/custom", "/a"], {"a": 3, "l": [4]}
    )
    assert out == {"a": 3, "l": [4], "n": {"x": 1, "y": 2}}
    assert apply_configuration_update(current, default, [""], None) == default
    assert sorted(changed_paths({"a": 1, "n": {"x": 1}}, {"a": 1, "n": {"x": 2, "z": 3}})) == [
        ["n", "x"],
        ["n", "z"],
    ]


def test_reset_follows_the_nucleus_resolver_step_by_step():
    """KernelConfigResolver.resolveConfigurationToApply: RESET removes, defaults fill what is
    missing, MERGE goes on top; a pointer into an array is ignored, "" stops the list."""
    default = {"l": [0], "n": {"x": 1, "d": {"k": 1}}}
    current = {"l": [1, 2], "n": {"x": 5, "d": {"k": 9, "extra": 3}}, "keep": 1}
    # an array element cannot be reset: the list stays as it is (it became a dict before)
    assert apply_configuration_update(current, default, ["/l/0"], None)["l"] == [1, 2]
    # a reset object comes back as its default, extra keys and all gone
    assert apply_configuration_update(current, default, ["/n/d"], None)["n"] == {
        "x": 5,
        "d": {"k": 1},
    }
    # "" resets everything and the pointers after it are not looked at
    out = apply_configuration_update(current, default, ["", "/l/0"], {"m": 1})
    assert out == {**default, "m": 1}
    # a new default key appears under the running values; a running key the default lacks stays
    out = apply_configuration_update(current, {**default, "new": "d"}, None, None)
    assert out["new"] == "d" and out["keep"] == 1 and out["n"]["x"] == 5


@pytest.mark.parametrize(
    ("version", "req", "ok"),
    [
        ("1.4.2", "^1.2.0", True),
        ("2.0.0", "^1.2.0", False),
        ("1.2.9", "~1.2.0", True),
        ("1.3.0", "~1.2.0", False),
        ("2.1.5", ">=2.1.0 <2.2.0", True),
        ("1.0.0", "1.0.0", True),
        ("3.0.0", "1.x || >=3.0.0", True),
        ("1.9.0", "1.x || >=3.0.0", True),
        ("2.0.0", "1.x || >=3.0.0", False),
        ("1.5.0", ">= 1.0.0", True),  # raised before: a space after the operator
        ("2.0.0", "1.0.0 - 2.0.0", True),  # never matched before
        ("2.0.1", "1.0.0 - 2.0.0", False),
        ("0.0.5", "^0.0.3", False),  # matched before
        ("1.0.0-rc.10", ">1.0.0-rc.2 <1.0.0", True),  # rc.10 sorted before rc.2
        ("1.0.0+build.7", "1.0.0", True),  # build metadata is no part of precedence
    ],
)
def test_npm_ranges(version, req, ok):
    assert satisfies(version, req) is ok


def test_wave_sizes():
    assert wave_sizes([1, "100%"], 10) == [1, 9]
    assert wave_sizes([1, "25%", "100%"], 8) == [1, 2, 5]
    assert wave_sizes([5], 3) == [3]
