"""The one JSON Pointer helper (RFC 6901) behind recipe variables, RESET and the emulator."""

from __future__ import annotations

import pytest

from edgekit.toolkit.greengrass import jsonpointer

DOC = {"a/b": {"m~n": 1}, "list": [10, 20], "": {"x": 2}, "~1": 3, "0": "key"}


@pytest.mark.parametrize(
    ("pointer", "found", "value"),
    [
        ("", True, DOC),
        ("/a~1b/m~0n", True, 1),
        ("/list/1", True, 20),
        ("/list/01", False, None),  # no leading zeros in an index
        ("/list/2", False, None),
        ("/list/-", False, None),
        ("//x", True, 2),  # the empty key
        ("/~01", True, 3),  # ~01 is "~1", not "/": ~1 is decoded before ~0
        ("/0", True, "key"),
        ("a", False, None),  # must start with /
        ("/missing/deeper", False, None),
    ],
)
def test_lookup(pointer, found, value):
    assert jsonpointer.lookup(DOC, pointer) == (found, value)


def test_join_escapes_and_round_trips():
    tokens = ["a/b", "m~n", "0"]
    assert jsonpointer.join(tokens) == "/a~1b/m~0n/0"
    assert jsonpointer.split(jsonpointer.join(tokens)) == tokens
    with pytest.raises(ValueError, match="starts with '/'"):
        jsonpointer.split("x/y")
    with pytest.raises(KeyError, match="/list/9"):
        jsonpointer.resolve(DOC, ["list", "9"])


def test_the_emulator_and_the_validator_share_it():
    from edgekit.toolkit.greengrass import validate
    from edgekit.toolkit.simulator import config, interpolate

    assert config.resolve is jsonpointer.resolve
    assert interpolate.jsonpointer is jsonpointer and validate.jsonpointer is jsonpointer
    assert not hasattr(validate, "json_pointer") and not hasattr(config, "pointer_parts")
