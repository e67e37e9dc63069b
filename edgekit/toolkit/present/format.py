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


def shorten_middle(text: str, width: int = 24) -> str:
    """`int8-dynamic-per-channel-exclude3` -> `int8-dynamic…exclude3`: keeps both ends, where
    variant names, paths and digests differ, so two long names never shorten to the same cell
    (a cut at the end, rich's default, turns `int8-dyn-exclude2/3` into two `int8-dyn…`)."""
    text = str(text)
    if width < 3 or len(text) <= width:
        return text
    tail = (width - 1) // 2
    head = width - 1 - tail
    return f"{text[:head]}…{text[-tail:]}"


def shorten_end(text: str, width: int = 90) -> str:
    """Prose (a reason, a note) cut at its end: a cut in the middle, right for names, joins two
    halves of a sentence into one that says something else."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_shape(shape: Any) -> str:
    """One notation for tensor shapes in every table: `[batch, 13]`, named dimensions bare,
    an unnamed dynamic leading dimension as `batch` and any other as `?` (never `None` or
    quoted strings)."""
    if shape is None:
        return "-"
    dims = []
    for i, d in enumerate(shape):
        if d is None or d == -1 or d == "":
            dims.append("batch" if i == 0 else "?")
        else:
            dims.append(str(d))
    return "[" + ", ".join(dims) + "]"


def fmt_mapping(mapping: Any, empty: str = "-", sep: str = ", ") -> str:
    """`{'intra_op_num_threads': 4}` as `intra_op_num_threads=4` (tables never print raw dicts)."""
    if not mapping:
        return empty
    if not isinstance(mapping, dict):
        return str(mapping)
    return ", ".join(
        f"{k}={fmt_mapping(v) if isinstance(v, dict) else v}" for k, v in mapping.items()
    )


def name_column(table: Any, header: str, **kwargs: Any) -> None:
    """A column of names (variants, files, outputs): wraps when the table is squeezed instead of
    rich's end cut, which makes names ambiguous; cells go through `shorten_middle` first."""
    kwargs.setdefault("overflow", "fold")
    table.add_column(header, **kwargs)


def digest_column(table: Any, header: str = "sha256") -> None:
    """A column of 12-character digest prefixes that rich may not squeeze into `9772…`."""
    table.add_column(header, no_wrap=True, min_width=12)
