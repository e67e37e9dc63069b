"""Topic rules: MQTT filter matching, the `*` glob of pubsub policies, and IoT Core topic limits."""

from __future__ import annotations

import re
from functools import lru_cache

MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7  # IoT Core counts slashes excluding a `$aws/rules/<rule>/` prefix
MAX_IOT_PAYLOAD = 128 * 1024  # nucleus default maxMessageSizeInBytes (IoT Core quota)


def has_wildcard(topic: str) -> bool:
    return "+" in topic or "#" in topic


def mqtt_match(topic_filter: str, topic: str) -> bool:
    """True when a concrete topic matches an MQTT filter (`+` one level, `#` the rest).

    A filter that starts with a wildcard never matches a topic that starts with `$`
    (`$aws/...`, `$SYS/...`): MQTT 3.1.1 section 4.7.2, MQTT 5 section 4.7.2.
    """
    if topic.startswith("$") and topic_filter[:1] in ("#", "+"):
        return False
    f_parts = topic_filter.split("/")
    t_parts = topic.split("/")
    for i, f in enumerate(f_parts):
        if f == "#":
            return True
        if i >= len(t_parts):
            return False
        if f != "+" and f != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)


def filter_covers(policy: str, requested: str) -> bool:
    """True when every topic the `requested` filter can match is also matched by `policy`.

    A concrete topic is a filter without wildcards, so this also covers publishes.
    """
    p_parts = policy.split("/")
    r_parts = requested.split("/")
    for i, p in enumerate(p_parts):
        if p == "#":
            return True
        if i >= len(r_parts):
            return False
        r = r_parts[i]
        if r == "#":
            return False
        if p != "+" and p != r:
            return False
    return len(p_parts) == len(r_parts)


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z", re.S)


def glob_match(pattern: str, value: str) -> bool:
    """The nucleus's policy glob: only `*` is special and it matches any run of characters."""
    return bool(_glob_regex(pattern).match(value))


def iot_topic_problem(topic: str, *, is_filter: bool) -> str | None:
    """Why IoT Core would refuse this topic (or filter), or None when it is fine."""
    if not topic:
        return "topic must not be empty"
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        return f"topic longer than {MAX_TOPIC_BYTES} bytes"
    counted = re.sub(r"^\$aws/rules/[^/]+/", "", topic)
    if counted.count("/") > MAX_TOPIC_SLASHES:
        return f"topic has more than {MAX_TOPIC_SLASHES} forward slashes"
    if not is_filter and has_wildcard(topic):
        return "cannot publish to a topic with wildcards"
    if is_filter:
        parts = topic.split("/")
        for i, p in enumerate(parts):
            if ("#" in p and (p != "#" or i != len(parts) - 1)) or ("+" in p and p != "+"):
                return f"invalid wildcard use in topic filter {topic!r}"
    return None
