"""Self-contained HTML reports: one file, figures embedded, tables, no external assets.

Shared by every command that writes a report (bench, fleet, ...)."""

from edgekit.toolkit.reports.html import (
    HtmlReport,
    figure_data_uri,
    figure_svg,
    new_figure,
    plain_log_ticks,
)

__all__ = ["HtmlReport", "figure_data_uri", "figure_svg", "new_figure", "plain_log_ticks"]
