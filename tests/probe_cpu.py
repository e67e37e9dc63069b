"""Both kinds of x86-64 CPU on any machine: the quantize and tune tests run once as a CPU with
AVX-512 VNNI and once as an AVX2-only one, through the probe override the code itself reads
(EDGEKIT_PROBE_CPU), so what they expect comes from the same probe the code uses."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.hardware import PROBE_CPU_ENV, probe
from edgekit.toolkit.quantize import auto

CPU_CASES = ("vnni", "avx2")


@pytest.fixture(params=CPU_CASES, autouse=True)
def probe_cpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test in the folder runs once per CPU case; subprocesses inherit the override."""
    monkeypatch.setenv(PROBE_CPU_ENV, request.param)
    return request.param


def hardware_defaults(method: str) -> dict[str, Any]:
    """The INT8 options an explicit --method takes from this (probed) CPU."""
    options, _why = auto.hardware_options(method, auto.hardware_summary(probe()))
    return options
