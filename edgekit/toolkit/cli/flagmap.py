"""Library errors name parameters, not flags: the CLI maps them to the flags the user typed.

The library (quantize, tune, bench, ...) is also a Python API, so its messages name a parameter
in backticks, `max_drop`, as its callers know it. A command turns each backticked name it
declares into its flag (`--max-drop`), read from the command's own option declarations so the
mapping cannot drift; renamed flags that a library message still names (`--replace`) become
their new names (`--overwrite`), read from the hidden aliases the command keeps.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from typer.models import OptionInfo

# Library parameter names that the CLI spells differently.
LIBRARY_NAMES = {
    "latency_budget": "latency_bound",
    "replace": "overwrite",
    "format": "fmt",
    "force": "ignore_preflight",  # package and deploy: go on despite preflight errors
    "time_budget_s": "time_budget",
    "duration_s": "duration",
}

_DEPRECATED = re.compile(r"Deprecated: use (--[a-z0-9-]+)\.")
_BACKTICKED = re.compile(r"`([a-z_][a-z0-9_]*)`")


def flags_of(func: Callable[..., Any]) -> dict[str, str]:
    """{parameter name: its long flag} and {old flag: new flag} for one command function."""
    flags: dict[str, str] = {}
    for name, param in inspect.signature(func).parameters.items():
        info = param.default
        if not isinstance(info, OptionInfo):
            continue
        decls = [d.split("/")[0] for d in (info.param_decls or ()) if d.startswith("--")]
        if not decls:
            continue
        renamed = _DEPRECATED.fullmatch(info.help or "")
        if renamed:
            flags[decls[0]] = renamed.group(1)
        else:
            flags[name] = decls[0]
    return flags


def to_flags(text: str | None, flags: dict[str, str] | None) -> str | None:
    """The message with `param` names and renamed flags spelled as this command's flags."""
    if not text or not flags:
        return text

    def param(m: re.Match[str]) -> str:
        name = m.group(1)
        flag = flags.get(name) or flags.get(LIBRARY_NAMES.get(name, ""))
        return flag or m.group(0)

    text = _BACKTICKED.sub(param, text)
    for old, new in flags.items():
        if old.startswith("--"):
            text = re.sub(rf"(?<![\w-]){re.escape(old)}(?![\w-])", new, text)
    return text
