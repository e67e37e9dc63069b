"""A small builder for one-file HTML reports: headings, text, tables and matplotlib figures
embedded as base64 PNG (or inline SVG), with a stylesheet inline, so the page opens anywhere
(mail attachment, CI artifact, offline) and cannot break by losing a neighbouring file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent import atomic

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1d2733;line-height:1.45;overflow-wrap:anywhere}
h1{font-size:1.6rem;border-bottom:2px solid #2b6cb0;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2rem;color:#2b4c7e}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}
th,td{border:1px solid #cbd5e0;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#edf2f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flag td{background:#fff5f5}figure{margin:1rem 0}figcaption{font-size:.85rem;color:#4a5568}
img,svg{max-width:100%;height:auto}
.scroll{overflow-x:auto;max-width:100%;margin:.8rem 0}.scroll table{margin:0}
.scroll th{position:sticky;top:0}td,th{overflow-wrap:normal}
caption{text-align:left;font-size:.85rem;color:#4a5568;padding:.2rem 0}.note{color:#4a5568;font-size:.9rem}.warn{color:#c53030}
.meta{color:#718096;font-size:.8rem}code{background:#edf2f7;padding:0 .2rem}
"""


def _fig_bytes(fig: Any, fmt: str, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def figure_data_uri(fig: Any, dpi: int = 110) -> str:
    """A matplotlib figure as a data: URI (PNG, base64); the figure is closed."""
    return "data:image/png;base64," + base64.b64encode(_fig_bytes(fig, "png", dpi)).decode("ascii")


def figure_svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG markup (no XML prolog); the figure is closed."""
    text = _fig_bytes(fig, "svg", 72).decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def _cell(value: Any) -> tuple[str, bool]:
    if value is None:
        return "–", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        if value != value:  # NaN
            return "–", False
        mag = abs(value)
        text = (
            f"{value:,.0f}"
            if mag >= 1000
            else f"{value:.3g}"
            if mag < 0.01 and mag
            else f"{value:,.3f}".rstrip("0").rstrip(".")
        )
        return text, True
    return str(value), False


GENERATOR = "edgekit"


def is_edgekit_report(path: Path) -> bool:
    """Whether an HTML file is a report edgekit wrote (so a new one may replace it)."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            head = fh.read(400)
    except (OSError, UnicodeDecodeError):
        return False
    return f'<meta name="generator" content="{GENERATOR}">' in head


class HtmlReport:
    """Collects sections in order; `html()` renders, `write(path)` writes atomically."""

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self._parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> HtmlReport:
        level = min(max(level, 2), 4)
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, css: str | None = None) -> HtmlReport:
        cls = f' class="{html.escape(css)}"' if css else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def bullets(self, items: Iterable[str]) -> HtmlReport:
        lis = "".join(f"<li>{html.escape(i)}</li>" for i in items)
        self._parts.append(f"<ul>{lis}</ul>")
        return self

    def table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        flag: str | None = None,
    ) -> HtmlReport:
        """A table of dict rows; `flag` names a truthy key that highlights its row."""
        if not rows:
            return self
        cols = list(columns or rows[0].keys())
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = []
        for row in rows:
            cells = []
            for c in cols:
                text, numeric = _cell(row.get(c))
                cls = ' class="num"' if numeric else ""
                cells.append(f"<td{cls}>{html.escape(text)}</td>")
            tr_cls = ' class="flag"' if flag and row.get(flag) else ""
            body.append(f"<tr{tr_cls}>{''.join(cells)}</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        # A wide table scrolls inside its own box, so the page never scrolls sideways.
        self._parts.append(
            f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
        return self

    def key_values(self, pairs: Mapping[str, Any], caption: str | None = None) -> HtmlReport:
        return self.table(
            [{"key": k, "value": v} for k, v in pairs.items()], ["key", "value"], caption
        )

    def figure(self, fig: Any, caption: str | None = None, fmt: str = "png") -> HtmlReport:
        """Embed a matplotlib figure (closed afterwards) as PNG data URI or inline SVG."""
        alt = html.escape(caption or "figure")
        if fmt == "svg":
            body = figure_svg(fig)
        else:
            body = f'<img alt="{alt}" src="{figure_data_uri(fig)}">'
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f"<figure>{body}{cap}</figure>")
        return self

    def raw(self, markup: str) -> HtmlReport:
        """Trusted markup made by the caller (never user data)."""
        self._parts.append(markup)
        return self

    def html(self) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sub = f'<p class="note">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="generator" content="{GENERATOR}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}{''.join(self._parts)}"
            f'<p class="meta">generated by edgekit, {stamp}</p></body></html>\n'
        )

    def write(self, path: str | Path) -> Path:
        """Write the report; a file there already must be a report edgekit wrote."""
        path = Path(path)
        atomic.write_text(path, self.html())
        return path


def plain_log_ticks(axis: Any) -> None:
    """Label a log axis 1, 10, 100 (and 2, 5 between them over a short range), never 6×10⁰."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = sorted(axis.get_view_interval())
    decades = np.log10(high / low) if low > 0 and high > 0 else 99.0
    subs: tuple[float, ...] = (1.0, 2.0, 5.0) if decades <= 2 else (1.0,)
    if decades < 0.6:
        subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1e4 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def new_figure(width: float = 7.5, height: float = 4.0) -> tuple[Any, Any]:
    """A figure and axes on the non-interactive Agg backend (safe without a display)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))
