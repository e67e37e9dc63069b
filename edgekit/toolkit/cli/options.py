"""The CLI's one vocabulary: every option that more than one command takes is defined here once,
so names, help texts and units agree across commands (a test walks the CLI and checks).

- `-o/--output` always names what the command writes; `--overwrite` lets it replace what it
  wrote there before.
- `--target` is a hardware target profile (`edgekit targets`), `--variant` a bundle variant.
- Durations take units (`500ms`, `60s`, `2m`, `1h`; a bare number is seconds) and rates are per
  second (`50`, `50/s`); both go through the parsers below.
- Renamed options keep their old name as a hidden alias that still works and says so on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer

from edge_agent import units

EXIT_CODES = (
    "Exit codes: 0 success; 1 a check failed (parity, digest, accuracy gate, regression); "
    "2 bad input or usage (the message says what to change)."
)


def parse_duration(text: str | float | None, flag: str = "duration") -> float | None:
    """`500ms`, `60s`, `2m`, `1h` (a bare number is seconds) → seconds (edge_agent.units)."""
    try:
        return units.parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_rate(text: str | float | None, flag: str = "rate") -> float | None:
    """`50`, `50/s`, `50qps` → per second. A duration (`500ms`) is refused, not misread."""
    try:
        return units.parse_rate(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _duration_parser(flag: str) -> Any:
    def parse(value: Any) -> float | None:
        return parse_duration(value, flag)

    parse.kind = "duration"  # type: ignore[attr-defined]  # read by the vocabulary test
    return parse


def _rate_parser(flag: str) -> Any:
    def parse(value: Any) -> float | None:
        return parse_rate(value, flag)

    parse.kind = "rate"  # type: ignore[attr-defined]
    return parse


@dataclass(frozen=True)
class Shared:
    """What the vocabulary test checks for a parameter of this name in any command."""

    opts: tuple[str, ...]
    help_prefix: str
    kind: str = "any"  # "duration" and "rate" must use the parsers above


SHARED: dict[str, Shared] = {
    "output": Shared(("-o", "--output"), "Output: "),
    "overwrite": Shared(("--overwrite",), "Replace what this command wrote there before"),
    "as_json": Shared(("--json",), "Print machine-readable JSON on stdout."),
    "target": Shared(("-t", "--target"), "Hardware target profile"),
    "variant": Shared(("--variant",), "Bundle variant"),
    "latency_bound": Shared(("--latency-bound",), "Latency bound"),
    "duration": Shared(("--duration",), "How long", "duration"),
    "time_budget": Shared(("--time-budget",), "How long", "duration"),
    "ignore_preflight": Shared(("--ignore-preflight",), "Go on despite preflight errors"),
}

# Parameter names whose values are durations or rates: their type must be DURATION / RATE.
DURATION_PARAMS = {
    "duration",
    "time_budget",
    "drift_after",
    "wait_timeout",
    "update_timeout",
    "job_timeout",
    "window",
    "budget",
}
RATE_PARAMS = {"load", "qps"}


def output(what: str, default: Any = None, **kw: Any) -> Any:
    """`-o/--output`: `what` says what is written there."""
    return typer.Option(default, "-o", "--output", help=f"Output: {what}", **kw)


def overwrite(what: str = "") -> Any:
    tail = f" ({what})" if what else ""
    return typer.Option(
        False,
        "--overwrite",
        help=f"Replace what this command wrote there before{tail}; never anything else.",
    )


def target(default: Any = None, what: str = "") -> Any:
    return typer.Option(
        default,
        "-t",
        "--target",
        help="Hardware target profile (see `edgekit targets`)" + (f": {what}" if what else "."),
    )


def variant(what: str, default: Any = None) -> Any:
    return typer.Option(
        default if default is not None else [], "--variant", help=f"Bundle variant{what}"
    )


def variants(what: str, default: Any = None) -> Any:
    """A list of variants in one value (a,b or all): still spelled --variant."""
    return typer.Option(default, "--variant", help=f"Bundle variants{what}")


def duration(default: Any, what: str, flag: str = "--duration") -> Any:
    return typer.Option(
        default,
        flag,
        parser=_duration_parser(flag),
        help=f"How long {what} ({units.DURATION_HELP}).",
    )


def duration_of(default: Any, flag: str, help: str, **kw: Any) -> Any:
    """Any other duration option: the unit note is added so every one reads the same."""
    return typer.Option(
        default,
        flag,
        parser=_duration_parser(flag),
        help=f"{help} ({units.DURATION_HELP}).",
        **kw,
    )


def rate(default: Any, flag: str, help: str) -> Any:
    return typer.Option(
        default, flag, parser=_rate_parser(flag), help=f"{help} ({units.RATE_HELP})."
    )


def latency_bound(what: str) -> Any:
    return typer.Option(None, "--latency-bound", help=f"Latency bound, e.g. p99=10ms: {what}")


def ignore_preflight() -> Any:
    return typer.Option(
        False, "--ignore-preflight", help="Go on despite preflight errors (they are still shown)."
    )


JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


# -- renamed options: the old name stays as a hidden alias --------------------------------------


def alias(old: str, new: str, default: Any = False, **kw: Any) -> Any:
    """The old spelling of a renamed option: hidden from help, still accepted."""
    return typer.Option(default, old, hidden=True, help=f"Deprecated: use {new}.", **kw)


def merged(new_value: Any, old_value: Any, old: str, new: str, default: Any = None) -> Any:
    """The value of a renamed option, taking the hidden alias when only it was given (the new
    option still at its `default`)."""
    from edgekit.toolkit.cli.common import err

    if old_value in (None, False, [], ()):
        return new_value
    err.print(f"[yellow]note:[/] {old} is deprecated; use {new}", highlight=False)
    if isinstance(new_value, list):
        return [*new_value, *old_value]
    return old_value if new_value in (None, False, default) else new_value
