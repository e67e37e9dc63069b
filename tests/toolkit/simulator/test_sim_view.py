"""The live fleet table at 80 columns (trysk): with box rules and padding, eleven columns cut
every header and cell (`dev…`, `sim…`, `RUN…`) when `edgekit simulate` ran at 80 columns."""

from __future__ import annotations

from rich.console import Console

from edgekit.toolkit.simulator.view import fleet_table

HEADERS = ("device", "profile", "version", "state", "req/s", "p99 ms", "errors", "alerts")


def _snapshot() -> dict:
    device = {
        "profile": "host",
        "version": "1.0.0",
        "state": "RUNNING",
        "restarts": 0,
        "throughput": 125.0,
        "p99_ms": 15.4,
        "requests": 5000,
        "errors": 0,
        "alerts": 1,
        "mqtt": {"spooled": 0},
    }
    return {"t": 10, "devices": {f"sim-{i:03d}": dict(device) for i in (1, 2)}}


def test_fleet_table_fits_80_columns_uncut():
    console = Console(width=80, record=True, color_system=None)
    console.print(fleet_table(_snapshot()))
    text = console.export_text()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in text
    header = next(line for line in lines if "device" in line)
    assert all(h in header for h in HEADERS)
    assert sum("sim-001" in line and "RUNNING" in line and "5000" in line for line in lines) == 1
