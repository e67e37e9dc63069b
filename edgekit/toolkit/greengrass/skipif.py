"""Skipif, read the one way the nucleus reads it (GenericExternalService.shouldSkip):
`exists PATH` or `onpath PROGRAM`, optionally after `!`. The recipe check reports what does not
parse; the simulator decides with the same rule whether a step is skipped."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

PATTERN = re.compile(r"(!?)\s*(exists|onpath) +(.+)")


@dataclass(frozen=True)
class Skipif:
    negate: bool
    kind: str  # exists | onpath
    arg: str


def parse(text: str) -> Skipif | None:
    """The rule, or None when the nucleus would not accept it (it fails the step then)."""
    m = PATTERN.fullmatch(text.strip())
    if not m:
        return None
    return Skipif(bool(m.group(1)), m.group(2), m.group(3).strip())


def should_skip(text: str | None, env: dict[str, str], cwd: Path) -> bool:
    """Whether the step is skipped; an unreadable rule skips nothing."""
    rule = parse(text) if text else None
    if rule is None:
        return False
    if rule.kind == "onpath":
        hit = shutil.which(rule.arg, path=env.get("PATH")) is not None
    else:
        p = Path(rule.arg)
        hit = (p if p.is_absolute() else cwd / p).exists()
    return hit != rule.negate
