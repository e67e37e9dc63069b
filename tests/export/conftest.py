"""Small real data sets (scikit-learn's bundled ones) written as the files users give."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export-data")


def _frame(loader) -> pd.DataFrame:
    frame = loader(as_frame=True).frame
    frame.columns = [c.replace(" ", "_").replace("/", "_") for c in frame.columns]
    return frame


@pytest.fixture(scope="session")
def wine_frame() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    return _frame(load_wine)


@pytest.fixture(scope="session")
def cancer_frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return _frame(load_breast_cancer)


@pytest.fixture(scope="session")
def diabetes_frame() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return _frame(load_diabetes)


@pytest.fixture(scope="session")
def csv_of(data_dir: Path, wine_frame, cancer_frame, diabetes_frame):
    """`csv_of("wine")` -> path of that data set as CSV, label in column `target`."""
    frames = {"wine": wine_frame, "cancer": cancer_frame, "diabetes": diabetes_frame}
    paths = {}
    for name, frame in frames.items():
        paths[name] = data_dir / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths.__getitem__
