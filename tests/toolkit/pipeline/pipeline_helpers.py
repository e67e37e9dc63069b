"""A small pipeline project in a temporary folder: wine data as CSV, a training script beside the
pipeline file (the user's own `train:fit`), and a pipeline that goes train → export → quantize →
evaluate → bench → package. Everything real; each stage takes well under a second."""

from __future__ import annotations

from pathlib import Path

import yaml

TRAIN_PY = """
import pandas as pd
import skops.io as sio
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit(data, output, max_iter=300, fail=False):
    if fail:
        raise RuntimeError("training blew up")
    frame = pd.read_csv(data)
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=max_iter, random_state=0))
    model.fit(x, y)
    sio.dump(model, output)
    return {"train_accuracy": float(model.score(x, y))}
"""


def pipeline_doc(**stages_over) -> dict:
    stages = {
        "train": {"function": "train:fit", "data": "data/train.csv", "output": "model.skops"},
        "export": None,
        "quantize": {"methods": ["dynamic"]},
        "evaluate": {"max_drop": 0.05},
        "bench": {"duration_s": 0.05},
        "package": {"component": "com.example.Wine", "version": "auto"},
    }
    stages.update(stages_over)
    return {
        "version": 1,
        "name": "wine",
        "data": {
            "sample": "data/test.csv",
            "evaluation": "data/eval.csv",
            "target_column": "target",
        },
        "stages": {k: v for k, v in stages.items() if v != "drop"},
    }


def write_pipeline(folder: Path, doc: dict) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
