"""Helpers shared by the agent tests: feeds from a bundle's samples, KServe bodies, configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import AgentConfig
from edge_agent.contracts.bundle import Bundle


def sample_feeds(bundle_dir: Path, rows: int | None = None) -> dict[str, np.ndarray]:
    feeds = Bundle.open(bundle_dir).sample_inputs()
    return {k: v[:rows] if rows else v for k, v in feeds.items()}


def kserve_body(feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    inputs = []
    for name, arr in feeds.items():
        datatype = (
            "BYTES" if arr.dtype.kind in "US" else {"f": "FP32", "i": "INT64"}[arr.dtype.kind]
        )
        data = arr.ravel().tolist()
        if arr.dtype.kind == "f":
            data = [None if v != v else v for v in data]
        inputs.append({"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data})
    return {"inputs": inputs}


def config(bundle_dir: Path, tmp_path: Path, **changes: Any) -> AgentConfig:
    base = AgentConfig(
        bundle=str(bundle_dir),
        port=-1,
        window_s=0.5,
        outbox=str(tmp_path / "outbox.sqlite"),
        thing="test-thing",
        component_version="1.2.3",
        drift_min_samples=50,
    )
    return base.updated(changes) if changes else base
