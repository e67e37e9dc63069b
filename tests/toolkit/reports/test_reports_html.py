"""The shared HTML report builder: one file, figures embedded, text escaped."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

from edgekit.toolkit.reports import HtmlReport, new_figure


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_report_embeds_figures_and_escapes_text(tmp_path: Path) -> None:
    fig, ax = new_figure()
    ax.plot([1, 2, 3], [3, 1, 2])
    fig2, ax2 = new_figure()
    ax2.bar(["a", "b"], [1, 2])
    report = (
        HtmlReport("Title <b>", "sub & title")
        .heading("Section")
        .paragraph("<script>alert(1)</script>")
        .table([{"name": "x", "value": 1.23456, "n": 12345, "ok": True}], caption="cap", flag="ok")
        .figure(fig, "png figure")
        .figure(fig2, "svg figure", fmt="svg")
        .bullets(["one", "two"])
    )
    path = report.write(tmp_path / "sub" / "r.html")
    html = path.read_text("utf-8")
    parser = _Collect()
    parser.feed(html)
    assert "script" not in parser.tags  # user text is escaped, never markup
    assert "<script>alert(1)</script>" in " ".join(parser.text)
    assert "Title <b>" in " ".join(parser.text)
    assert parser.tags.count("table") == 1 and "svg" in parser.tags
    (src,) = parser.srcs
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'class="flag"' in html and "12,345" in html
    assert not list(tmp_path.joinpath("sub").glob(".*tmp"))  # written atomically
