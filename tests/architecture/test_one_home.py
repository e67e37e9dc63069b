"""Rules that had two copies keep one home (issue 16, "one of each rule").

- A stop signal is taken by edge_agent.signals.StopFlag (a plain flag; a handler that takes a
  lock deadlocked the agent): no other module in the packages installs a signal handler.
- `edgekit fleet collect` as a separate process is started by tests.helpers.fleet, which the
  scale-out test and benchmarks/fleet_scale_pg.py both use.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _sources(*folders: str) -> dict[str, str]:
    return {
        f.relative_to(ROOT).as_posix(): f.read_text("utf-8")
        for folder in folders
        for f in sorted((ROOT / folder).rglob("*.py"))
    }


def test_only_edge_agent_signals_installs_signal_handlers() -> None:
    found = [
        path
        for path, text in _sources("edge_agent", "edgekit").items()
        if re.search(r"\bsignal\.signal\(", text) and path != "edge_agent/signals.py"
    ]
    assert found == []


def test_the_fleet_collector_process_is_started_in_one_place() -> None:
    # a collector process of its own (CLI tests that call the command in-process are not one)
    launch = re.compile(r'main\(\)",\s*"fleet",\s*"collect"')
    found = [
        path
        for path, text in _sources("tests", "benchmarks").items()
        if launch.search(text) and path != "tests/helpers/fleet.py"
    ]
    assert found == []
    assert launch.search((ROOT / "tests/helpers/fleet.py").read_text("utf-8"))
