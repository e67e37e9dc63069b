"""docs/cli.md is generated from the commands (scripts/cli_reference.py): it must be current,
so the reference cannot drift from the options the CLI really takes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _script():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "scripts/cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_cli_reference_is_current():
    text = _script().render()
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == text, "docs/cli.md is stale: run python scripts/cli_reference.py"


def test_the_reference_shows_every_command_and_the_shared_units():
    text = _script().render()
    for heading in ("`edgekit bench run`", "`edgekit fleet report`", "`edge-agent serve`"):
        assert f"## {heading}" in text or f"### {heading}" in text
    assert "| `--duration` | DURATION |" in text and "| `--load` | PER_SECOND |" in text
    assert "--replace" not in text  # hidden aliases stay out of the reference
