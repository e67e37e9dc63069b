"""Fixtures: the small project of pipeline_helpers in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.toolkit.pipeline.pipeline_helpers import TRAIN_PY, pipeline_doc, write_pipeline


@pytest.fixture(scope="session")
def wine_frames():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    frame = load_wine(as_frame=True).frame
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    return train_test_split(frame, test_size=0.35, random_state=0, stratify=frame["target"])


@pytest.fixture
def project(tmp_path: Path, wine_frames) -> Path:
    train, test = wine_frames
    (tmp_path / "data").mkdir()
    train.to_csv(tmp_path / "data" / "train.csv", index=False)
    test.to_csv(tmp_path / "data" / "test.csv", index=False)
    test.to_csv(tmp_path / "data" / "eval.csv", index=False)
    (tmp_path / "train.py").write_text(TRAIN_PY)
    write_pipeline(tmp_path, pipeline_doc())
    return tmp_path
