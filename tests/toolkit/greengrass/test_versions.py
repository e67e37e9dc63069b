"""Versions and ranges by npm's rules (node-semver's own test fixtures: range-include,
range-exclude, comparison, invalid-versions), plus the nucleus's Java int limit."""

from __future__ import annotations

import pytest

from edgekit.toolkit.greengrass import versions

# From node-semver test/fixtures/range-include.js (strict mode, no includePrerelease)
INCLUDE = [
    ("1.0.0 - 2.0.0", "1.2.3"),
    ("^1.2.3+build", "1.2.3"),
    ("^1.2.3+build", "1.3.0"),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3"),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha"),
    ("1.0.0", "1.0.0"),
    (">=*", "0.2.4"),
    ("", "1.0.0"),
    ("*", "1.2.3"),
    (">=1.0.0", "1.0.0"),
    (">=1.0.0", "1.1.0"),
    (">1.0.0", "1.0.1"),
    ("<=2.0.0", "2.0.0"),
    ("<2.0.0", "0.2.9"),
    (">= 1.0.0", "1.0.0"),
    (">=  1.0.0", "1.0.1"),
    ("> 1.0.0", "1.1.0"),
    ("<=  2.0.0", "1.9999.9999"),
    ("0.1.20 || 1.2.4", "1.2.4"),
    (">=0.2.3 || <0.0.1", "0.0.0"),
    ("2.x.x", "2.1.3"),
    ("1.2.x", "1.2.3"),
    ("1.2.x || 2.x", "2.1.3"),
    ("x", "1.2.3"),
    ("2.*.*", "2.1.3"),
    ("2", "2.1.2"),
    ("2.3", "2.3.1"),
    ("~2.4", "2.4.5"),
    ("~>3.2.1", "3.2.2"),
    ("~1", "1.2.3"),
    ("~> 1", "1.2.3"),
    (">=1", "1.0.0"),
    ("<1.2", "1.1.1"),
    ("~v0.5.4-pre", "0.5.5"),
    ("~v0.5.4-pre", "0.5.4"),
    ("=0.7.x", "0.7.2"),
    ("<=0.7.x", "0.6.2"),
    ("^1.2.3", "1.8.1"),
    ("^0.1.2", "0.1.2"),
    ("^0.1", "0.1.2"),
    ("^1.2", "1.4.2"),
    ("^1.2.3-alpha", "1.2.3-pre"),
    ("^1.2.0-alpha", "1.2.0-pre"),
    ("^0.0.1-alpha", "0.0.1-beta"),
    ("^0.0.3", "0.0.3"),
    ("1.x", "1.0.0"),
    ("1.x", "1.99.0"),
    (">1.0.0-rc.2", "1.0.0-rc.10"),  # numeric identifiers compare as numbers
]

# From node-semver test/fixtures/range-exclude.js
EXCLUDE = [
    ("1.0.0 - 2.0.0", "2.2.3"),
    ("1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2"),
    ("^1.2.3+build", "2.0.0"),
    ("^1.2.3", "1.2.3-pre"),
    ("^1.2", "1.2.0-pre"),
    (">1.2", "1.3.0-beta"),
    ("<=1.2.3", "1.2.3-beta"),
    ("^1.2.3", "1.2.3-beta"),
    ("=0.7.x", "0.7.0-asdf"),
    (">=0.7.x", "0.7.0-asdf"),
    ("1.0.0", "1.0.1"),
    (">=1.0.0", "0.0.0"),
    (">=1.0.0", "0.1.0"),
    (">1.0.0", "1.0.0"),
    ("<=2.0.0", "3.0.0"),
    ("<2.0.0", "2.0.0"),
    ("0.1.20 || 1.2.4", "1.2.3"),
    ("2.x.x", "3.1.3"),
    ("1.2.x", "1.3.3"),
    ("1.2.x || 2.x", "3.1.3"),
    ("2.*.*", "1.1.3"),
    ("2", "1.1.2"),
    ("2.3", "2.4.1"),
    ("~2.4", "2.5.0"),
    ("~>3.2.1", "3.3.2"),
    ("~1", "2.2.3"),
    ("<1", "1.0.0"),
    ("^0.0.3", "0.0.4"),
    ("^0.0.3", "0.0.5"),
    ("^0.1.2", "0.2.0"),
    ("1.x", "2.0.0"),
    ("1.0.0 - 2.0.0", "2.0.1"),
]


@pytest.mark.parametrize(("requirement", "version"), INCLUDE)
def test_range_includes(requirement, version):
    assert versions.satisfies(version, requirement)


@pytest.mark.parametrize(("requirement", "version"), EXCLUDE)
def test_range_excludes(requirement, version):
    assert not versions.satisfies(version, requirement)


def test_precedence_follows_semver():
    ordered = [
        "0.9.0",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0-rc.2",
        "1.0.0-rc.10",
        "1.0.0",
        "1.0.1",
        "1.10.0",
    ]
    assert sorted(reversed(ordered), key=versions.sort_key) == ordered
    assert versions.compare("1.0.0+build.1", "1.0.0+build.2") == 0


@pytest.mark.parametrize(
    "bad",
    ["1.2.3.4", "1.2", "01.2.3", "1.2.3-01", "a.b.c", "", "1.0.2147483648", "1.0.0-rc.9999999999"],
)
def test_versions_the_nucleus_refuses(bad):
    assert versions.problem(bad) is not None
    with pytest.raises(versions.VersionError):
        versions.satisfies(bad, "*")


def test_too_long_version_is_refused():
    assert versions.problem("1.0.0-" + "a" * 60) is not None
    assert versions.problem("1.0.0-" + "a" * 58) is None


@pytest.mark.parametrize(
    "bad", ["1.2.3.4", ">=1.2.3.4", "nonsense", "1.0.0 - ", ">=1.0.9999999999"]
)
def test_ranges_the_nucleus_refuses(bad):
    assert versions.range_problem(bad) is not None


@pytest.mark.parametrize(
    ("requirement", "lowest"),
    [
        (">= 1.0.0", "1.0.0"),
        (">1.0.0", "1.0.1"),
        (">1.0.0-rc.1", "1.0.0-rc.1.0"),
        ("^2.6.0", "2.6.0"),
        ("2.x", "2.0.0"),
        ("1.0.0 - 2.0.0", "1.0.0"),
        ("~1.2.3 || >=1.0.0 <1.1.0", "1.0.0"),
        ("*", "0.0.0"),
        ("<2.0.0", "0.0.0"),
        (">3.0.0 <2.0.0", None),
    ],
)
def test_lower_bound_is_npms_min_version(requirement, lowest):
    assert versions.lower_bound(requirement) == lowest


def test_latest_and_next_patch():
    have = ["1.0.0", "1.2.0-rc.10", "1.2.0-rc.2", "1.1.9", "2.0.0", "junk"]
    assert versions.latest(have) == "2.0.0"
    assert versions.latest(have, "^1.0.0") == "1.1.9"
    assert versions.latest(have, ">=1.2.0-rc.0 <2.0.0") == "1.2.0-rc.10"
    assert versions.latest(have, ">5") is None
    assert versions.next_patch(None) == "1.0.0"
    assert versions.next_patch("1.2.9") == "1.2.10"
    assert versions.next_patch("1.2.3-rc.1+b") == "1.2.4"
