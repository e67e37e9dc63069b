"""The environment recorded with every benchmark run: enough to tell two machines (or one
machine on a busy day) apart when comparing results."""

from __future__ import annotations

import os
import platform
from typing import Any

from edge_agent.hardware import probe


def environment() -> dict[str, Any]:
    hw = probe()
    cpu = hw["cpu"]
    ort = hw["onnxruntime"]
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not available
        load = None
    import numpy

    return {
        "cpu_model": cpu["model"],
        "isa": sorted(k for k, v in cpu["features"].items() if v),
        "physical_cores": cpu["physical_cores"],
        "logical_cores": cpu["logical_cores"],
        "usable_cores": cpu["usable_cores"],
        "memory_bytes": hw["memory_bytes"],
        "os": f"{hw['os']['system']} {hw['os']['release']}",
        "platform": hw["platform"],
        "python": hw["python"],
        "numpy": numpy.__version__,
        "onnxruntime": ort["version"],
        "providers": ort["providers"],
        "gpus": hw["gpus"],
        "hostname": platform.node(),
        "load_average": load,
    }
