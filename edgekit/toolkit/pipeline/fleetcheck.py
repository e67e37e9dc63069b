"""What a simulated rollout showed the cloud: the alerts that fired per device (from the run's
cloud.jsonl) and the fleet report over the run's fleet.db. The simulate stage checks the first
and writes the second."""

from __future__ import annotations

import json
from pathlib import Path


def fired_alerts(run_dir: Path) -> dict[str, list[str]]:
    """Firing alert rules per device, from what reached the cloud (cloud.jsonl)."""
    fired: dict[str, list[str]] = {}
    path = run_dir / "cloud.jsonl"
    for line in path.read_text("utf-8").splitlines() if path.is_file() else []:
        msg = json.loads(line)
        if not msg["topic"].endswith("/alerts") or not isinstance(msg["payload"], dict):
            continue
        for alert in msg["payload"].get("body", {}).get("alerts", []):
            if alert.get("state") == "firing" and alert["rule"] not in fired.get(msg["thing"], []):
                fired.setdefault(msg["thing"], []).append(alert["rule"])
    return fired


def check_report(run_dir: Path, out: Path) -> None:
    """`fleet report -o`'s rule for the report's path: it replaces only an HTML report edgekit
    wrote, never a file in the run's folder. The stage checks it before simulating too, so a
    refused path costs no simulation."""
    from edge_agent import owned
    from edgekit.toolkit.reports.html import is_edgekit_report

    owned.check_file(out, is_edgekit_report, "an HTML report", [run_dir], "stages.simulate.report")


def fleet_report(run_dir: Path, out: Path) -> Path | None:
    """`edgekit fleet report --db <run>/fleet.db -o <html>` as a library call, with the command's
    rule for its output (``check_report``)."""
    db = run_dir / "fleet.db"
    if not db.is_file():
        return None
    check_report(run_dir, out)
    try:
        from edgekit.toolkit.fleet.lab import BundleIndex
        from edgekit.toolkit.fleet.report import write_html
        from edgekit.toolkit.fleet.rules import RulesConfig
        from edgekit.toolkit.fleet.store import SqliteStore
        from edgekit.toolkit.fleet.summary import fleet_summary
    except ImportError:  # the fleet package is optional to the simulator
        return None

    store = SqliteStore.open_existing(db)
    try:
        summary = fleet_summary(
            store, BundleIndex([], [run_dir / "devices"]), RulesConfig.load(None)
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        return write_html(summary, store, out)
    finally:
        store.close()
