"""Business figures: cost per million predictions and per user-month from a throughput and an
hourly price; the shipped price table and a user's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edgekit.toolkit.bench.cost import (
    HOURS_PER_MONTH,
    Price,
    choose_price,
    cost_figures,
    load_prices,
)
from edgekit.toolkit.cli import app


def test_cost_per_million_and_per_user_month() -> None:
    # 1,000 predictions/s for an hour is 3.6 M predictions: at 3.60/h a million costs 1.00
    c = cost_figures(1000.0, Price("box", 3.6), predictions_per_user=50_000)
    assert c["cost_per_million"] == pytest.approx(1.0)
    assert c["cost_per_user_month"] == pytest.approx(0.05)
    assert c["users_per_machine"] == pytest.approx(1000 * 3600 * HOURS_PER_MONTH / 50_000)
    assert "cost_per_user_month" not in cost_figures(1000.0, Price("box", 3.6))
    assert cost_figures(0.0, Price("box", 1.0))["cost_per_million"] == float("inf")


def test_shipped_price_table_has_instances_and_devices() -> None:
    table = load_prices()
    kinds = {p.kind for p in table.values()}
    assert {"instance", "device"} <= kinds
    assert all(p.per_hour > 0 and p.note for p in table.values())
    assert choose_price(None, "c7g.large") == table["c7g.large"]
    assert choose_price(0.5, None).per_hour == 0.5
    assert choose_price(None, None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prices: []", "no `prices:` mapping"),
        ("other: 1", "no `prices:` mapping"),
        ("prices: {a: {per_hour: cheap}}", "numeric per_hour"),
        ("prices: {a: {kind: device}}", "numeric per_hour"),
        ("prices: {a: {per_hour: -1}}", "must be a number >= 0"),
        ("prices: {a: {per_hour: .nan}}", "must be a number >= 0"),
        ("prices: [unclosed", "cannot read"),
    ],
)
def test_bad_price_tables_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message):
        load_prices(path)


def test_own_price_table_on_the_command_line(regression_bundle, tmp_path: Path) -> None:
    table = tmp_path / "mine.yaml"
    table.write_text("prices:\n  edge-box:\n    kind: device\n    per_hour: 0.02\n")
    res = CliRunner().invoke(
        app,
        ["bench", str(regression_bundle), "--iterations", "40", "--no-native", "--no-save",
         "--prices", str(table), "--instance", "edge-box", "--predictions-per-user", "1000",
         "--json", "-o", str(tmp_path / "r")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    (record,) = json.loads(res.stdout)["records"]
    cost = record["cost"]
    assert cost["price"] == "edge-box" and cost["per_hour"] == 0.02
    samples_per_s = record["throughput"]["samples_per_s"]
    assert cost["cost_per_million"] == pytest.approx(0.02 / (samples_per_s * 3600) * 1e6)
    assert cost["cost_per_user_month"] == pytest.approx(cost["cost_per_million"] * 1000 / 1e6)
    csv = (tmp_path / "r" / "results.csv").read_text()
    assert "cost_per_user_month" in csv.splitlines()[0]
