"""What a person reads off the reports: log axes labelled 1, 10, 100; the fleet's throughput at
its real rate; first/last seen as dates, not epoch seconds with thousands separators."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.toolkit.cli import app
from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.ingest import Received
from edgekit.toolkit.fleet.report import fleet_rate
from edgekit.toolkit.reports import new_figure, plain_log_ticks
from tests.toolkit.fleet.fleet_helpers import encoded, metrics


def _labels(low: float, high: float) -> list[str]:
    fig, ax = new_figure()
    ax.plot([0, 1], [low, high])
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    fig.canvas.draw()
    visible = [
        t.get_text()
        for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True)
        if t.get_text() and low <= t.get_position()[1] <= high
    ]
    import matplotlib.pyplot as plt

    plt.close(fig)
    return visible


@pytest.mark.parametrize("low,high", [(6, 9), (0.8, 120), (0.01, 5000)])
def test_log_axis_ticks_are_plain_numbers(low, high):
    labels = _labels(low, high)
    assert labels, (low, high)
    for text in labels:
        assert re.fullmatch(r"[0-9.,]+", text), labels  # no 6×10⁰ mathtext, no 1e+06
    if (low, high) == (0.8, 120):
        assert {"1", "10", "100"} <= set(labels)


def test_a_steady_fleet_shows_its_real_rate():
    """Three devices at 20/s in 5 s windows ending at different offsets: the fleet is 60/s
    throughout. Summing the windows that end in the same second showed 20 or 40."""
    t0 = 1_000.0
    series = {
        thing: [(t0 + 5 * k + offset, {"requests_per_s": 20.0}) for k in range(1, 25)]
        for thing, offset in (("a", 0.0), ("b", 1.7), ("c", 3.1))
    }
    xs, ys = fleet_rate(series, t0)
    inside = [y for x, y in zip(xs, ys, strict=True) if 10 <= x <= 110]
    assert inside and all(y == pytest.approx(60.0) for y in inside), set(inside)


def test_device_table_shows_dates(tmp_path):
    db = tmp_path / "fleet.db"
    c = Collector.open(db)
    rng = np.random.default_rng(0)
    t0 = time.time() - 60
    items = [encoded("hello", "sim-001", 1, syn.hello_body(target="host"), end=t0)]
    items += [
        metrics("sim-001", s, rng, reference=syn.feature_reference(3), end=t0 + s)
        for s in range(2, 6)
    ]
    c.process([Received(t, p) for t, p in items])
    c.close()
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["fleet", "report", "--db", str(db), "-o", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    day = time.strftime("%Y-%m-%d", time.gmtime(t0))
    table = page[page.index("<h2>Devices</h2>") :].split("</table>")[0]
    assert day in table
    assert not re.search(r"\d,\d{3},\d{3},\d{3}", table)  # no 1,764,…,… epoch seconds
