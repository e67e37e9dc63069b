"""What every command shares: the consoles, JSON output, and errors mapped to exit codes.

Results go to stdout (a table, or JSON with --json); progress and errors go to stderr so
`--json` output can be piped.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from edge_agent.errors import EdgekitError
from edgekit.toolkit.present.format import compact_table, fmt_bytes, fmt_num  # noqa: F401  (re-exported for the commands)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def report_error(
    exc: EdgekitError, as_json: bool = False, flags: dict[str, str] | None = None
) -> None:
    from edgekit.toolkit.cli.flagmap import to_flags

    message, hint = to_flags(exc.message, flags), to_flags(exc.hint, flags)
    if as_json:
        payload: dict[str, Any] = {
            "ok": False,
            "error": message,
            "hint": hint,
            "exit_code": exc.exit_code,
        }
        details = exc.details
        if isinstance(details, dict):
            payload["details"] = details
        print_json(payload)
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    if hint:
        err.print(f"[yellow]hint:[/] {hint}", highlight=False)


def handle_errors(func: F) -> F:
    """Turn EdgekitError into its exit code with a readable message instead of a traceback."""

    from edgekit.toolkit.cli.flagmap import flags_of

    flags = flags_of(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdgekitError as exc:
            report_error(exc, bool(kwargs.get("as_json")), flags)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def split_csv(values: str | list[str] | None) -> list[str]:
    """Options that take comma-separated lists (and may be repeated): the non-empty items."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else values
    return [v.strip() for item in items for v in item.split(",") if v.strip()]
