"""Helpers for the export tests (imported as `export_helpers`: this folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from edge_agent.contracts.bundle import Bundle
from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.export.exporters import ExportOptions


def mixed_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numeric and text columns with missing values in both, and a label that needs both."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows).round(1),
            "income": rng.lognormal(10, 0.5, rows).round(2),
            "city": rng.choice(["lyon", "oslo", "lima", "pune"], rows).astype(object),
            "plan": rng.choice(["free", "pro", "team"], rows).astype(object),
        }
    )
    frame.loc[rng.random(rows) < 0.08, "age"] = np.nan
    frame.loc[rng.random(rows) < 0.10, "city"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "plan"] = np.nan
    score = (
        (frame["age"].fillna(40) - 40) / 12
        + (frame["city"] == "oslo") * 1.5
        - (frame["plan"] == "free") * 1.0
        + rng.normal(0, 0.5, rows)
    )
    frame["target"] = np.where(score > 0, "churn", "stay")
    return frame


def run_export(source, data, output, **kwargs) -> tuple[Bundle, dict]:
    options = kwargs.pop("options", None) or ExportOptions()
    return export_bundle(
        ExportRequest(
            source=str(source), data=Path(data), output=Path(output), options=options, **kwargs
        )
    )


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))
