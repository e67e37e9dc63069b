"""benchmarks/agent_perf.py's CPU-per-request figure runs on a real bundle and adds up: the
request thread does at least the bare run's work, the monitor's share is counted, and the
ratio is the bare CPU over their sum."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import agent_perf  # noqa: E402


@pytest.fixture(scope="module")
def mlp(tmp_path_factory) -> Path:
    return agent_perf.make_bundle(tmp_path_factory.mktemp("perf"))


def test_cpu_cost_adds_up(mlp):
    got = agent_perf.cpu_cost(mlp, 300, 2)
    assert got["bare_cpu_us"] > 0 and got["monitor_cpu_us"] > 0, "the monitor's work is counted"
    total = got["request_thread_cpu_us"] + got["monitor_cpu_us"]
    assert got["cpu_ratio"] == pytest.approx(got["bare_cpu_us"] / total)
    assert got["added_cpu_us"] == pytest.approx(total - got["bare_cpu_us"])
    low, high = got["cpu_ratio_spread"]
    assert 0 < low <= high


def test_wall_split_measures_both_agents(mlp):
    got = agent_perf.wall_split(mlp, 0.05, 2)
    for key in ("ratio", "request_path_ratio"):
        assert 0 < got[key] < 10
        low, high = got[f"{key}_spread"]
        assert low <= got[key] <= high
