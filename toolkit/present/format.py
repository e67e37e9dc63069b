"""Cell formatting shared by every table: sizes, numbers, and the compact table style."""

from __future__ import annotations

from typing import Any


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def fmt_num(x: Any, spec: str = ".4f") -> str:
    """A number for a table cell; '-' when there is none."""
    return "-" if x is None else format(x, spec)


def compact_table(title: str | None = None, caption: str | None = None) -> Any:
    """A borderless rich Table with one space between columns, for result tables with many
    figures: they still fit an 80-column terminal instead of cutting names short."""
    from rich import box
    from rich.table import Table

    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
