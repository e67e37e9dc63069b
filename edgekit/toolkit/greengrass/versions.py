"""Component versions and dependency ranges by the rules the nucleus applies.

The nucleus parses versions and resolves `VersionRequirement` with
`com.amazon.aws.iot.greengrass.semver` (aws-greengrass-component-common), a line-by-line
translation of npm's node-semver in strict mode. `node-semver`, the maintained Python port of
the same library, gives the same grammar and range semantics (`>= 1.0.0`, `1.x`,
`1.0.0 - 2.0.0`, `^0.0.3`, `||`, prerelease ordering), so nothing here re-implements them.
What the Java translation adds on top: every numeric part goes through `Integer.parseInt`, so
a part above 2,147,483,647 is refused; the recipe schema caps a version at 64 characters.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import nodesemver

JAVA_INT_MAX = 2**31 - 1  # SemVer.java: Integer.parseInt on major, minor, patch, numeric prerelease
VERSION_MAX = 64  # recipe_schema.json: ComponentVersion maxLength


class VersionError(ValueError):
    """Not a version or range the nucleus can parse; the message says why."""


def parse(version: str) -> nodesemver.SemVer:
    """The version as the nucleus reads it (strict node-semver, parts within a Java int)."""
    if not isinstance(version, str):
        raise VersionError(f"version {version!r} is not a string")
    try:
        parsed = nodesemver.make_semver(version, loose=False)
    except (ValueError, TypeError) as exc:
        raise VersionError(f"{version!r} is not a semantic version MAJOR.MINOR.PATCH") from exc
    parts = [parsed.major, parsed.minor, parsed.patch]
    parts += [p for p in parsed.prerelease if isinstance(p, int)]
    if any(p > JAVA_INT_MAX for p in parts):
        raise VersionError(
            f"{version!r}: a numeric part is above {JAVA_INT_MAX:,}, which the nucleus cannot "
            "parse (Integer.parseInt in its SemVer)"
        )
    return parsed


def problem(version: object) -> str | None:
    """Why the nucleus would refuse `version` as a ComponentVersion, or None."""
    try:
        parse(version)  # type: ignore[arg-type]
    except VersionError as exc:
        return str(exc)
    if len(str(version)) > VERSION_MAX:
        return f"{version!r} is longer than {VERSION_MAX} characters"
    return None


def is_valid(version: object) -> bool:
    return problem(version) is None


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 by SemVer precedence (build metadata ignored, rc.2 < rc.10 < release)."""
    return nodesemver.compare(parse(a).version, parse(b).version, loose=False)


sort_key = functools.cmp_to_key(compare)


def parse_range(requirement: str) -> nodesemver.Range:
    if not isinstance(requirement, str):
        raise VersionError(f"version requirement {requirement!r} is not a string")
    try:
        rng = nodesemver.make_range(requirement, loose=False)
    except (ValueError, TypeError) as exc:
        raise VersionError(f"{requirement!r} is not an npm-style version range: {exc}") from exc
    for comparators in rng.set:
        for c in comparators:
            if isinstance(c.semver, nodesemver.SemVer):
                parse(c.semver.version)
    return rng


def range_problem(requirement: object) -> str | None:
    try:
        parse_range(requirement)  # type: ignore[arg-type]
    except VersionError as exc:
        return str(exc)
    return None


def satisfies(version: str, requirement: str | None) -> bool:
    """npm's `semver.satisfies(version, range)`; no requirement admits every version."""
    if requirement is None or not requirement.strip():
        return True
    parse_range(requirement)
    return nodesemver.satisfies(parse(version).version, requirement, loose=False)


def latest(versions: Iterable[str], requirement: str | None = None) -> str | None:
    """The highest of `versions` that satisfies `requirement` (what the nucleus resolves)."""
    admitted = [v for v in versions if is_valid(v) and satisfies(v, requirement)]
    return max(admitted, key=sort_key) if admitted else None


def lower_bound(requirement: str) -> str | None:
    """The lowest version the range admits (npm's `minVersion`); None when it admits none."""
    rng = parse_range(requirement)
    for floor in ("0.0.0", "0.0.0-0"):
        if rng.test(nodesemver.make_semver(floor, loose=False)):
            return floor
    best: str | None = None
    for comparators in rng.set:
        set_min: str | None = None
        for c in comparators:
            if not isinstance(c.semver, nodesemver.SemVer):
                continue
            candidate = c.semver.version
            if c.operator == ">":
                v = c.semver
                candidate = (
                    f"{v.major}.{v.minor}.{v.patch + 1}" if not v.prerelease else f"{v.version}.0"
                )
            elif c.operator not in ("", ">=", "="):
                continue
            if set_min is None or compare(candidate, set_min) > 0:
                set_min = candidate
        if set_min is not None and (best is None or compare(best, set_min) > 0):
            best = set_min
    if best is not None and rng.test(nodesemver.make_semver(best, loose=False)):
        return best
    return None


def next_patch(version: str | None) -> str:
    """The patch release after `version` (1.0.0 when there is none): 1.2.3-rc.1 -> 1.2.4."""
    if not version:
        return "1.0.0"
    v = parse(version)
    return f"{v.major}.{v.minor}.{v.patch + 1}"
