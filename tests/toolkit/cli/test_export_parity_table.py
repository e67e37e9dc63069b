"""The export parity table at 80 columns keeps an output's name on one line (trysk): at 80
columns `probabilities` folded into `probabilitie` / `s`, because the number headers took
their full width on one line each."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.cli.export_cmd import parity_table


def test_output_names_stay_whole_at_80_columns(tabular_bundle: Path):
    report = Bundle.open(tabular_bundle).manifest["variants"]["fp32"]["parity"]
    assert "probabilities" in report["outputs"]
    console = Console(width=80, record=True, color_system=None)
    console.print(parity_table(report))
    lines = console.export_text().splitlines()
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 for line in table)
    assert any("│ probabilities │" in line for line in table)
    assert any("│ label " in line for line in table)
