"""Shared fixtures: small real bundles made once per session by the real export path.

Tests that change a bundle must copy it first (`copy_bundle`), never edit the shared one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.export.exporters import ExportOptions

FACTORIES = Path(__file__).parent / "factories.py"


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def tabular_data(bundles_root: Path) -> Path:
    """breast_cancer-like table with a text column and missing values, label in `target`."""
    from edgekit.toolkit.demo.models import breast_cancer_frame

    path = bundles_root / "tabular.csv"
    breast_cancer_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tabular_bundle(bundles_root: Path, tabular_data: Path) -> Path:
    """ColumnTransformer + MLPClassifier pipeline (binary classification), one input per column."""
    out = bundles_root / "tabular"
    export_bundle(
        ExportRequest(
            source=f"{FACTORIES}:tabular_pipeline",
            data=tabular_data,
            output=out,
            target_column="target",
        )
    )
    return out


@pytest.fixture(scope="session")
def digits_data(bundles_root: Path) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = bundles_root / "digits.npz"
    np.savez(
        path,
        input=(digits.images / 16.0).astype(np.float32)[:, None],
        target=digits.target.astype(np.int64),
    )
    return path


@pytest.fixture(scope="session")
def cnn_bundle(bundles_root: Path, digits_data: Path) -> Path:
    """A small trained CNN on digits (10-class classification from logits), 1x8x8 input."""
    out = bundles_root / "cnn"
    export_bundle(
        ExportRequest(
            source=f"{FACTORIES}:trained_digits_cnn",
            data=digits_data,
            output=out,
            target_column="target",
            options=ExportOptions(task="classification"),
        )
    )
    return out


@pytest.fixture(scope="session")
def regression_data(bundles_root: Path) -> Path:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    path = bundles_root / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def regression_bundle(bundles_root: Path, regression_data: Path) -> Path:
    """Ridge regression on diabetes, one float input "X" with 10 features."""
    out = bundles_root / "regression"
    export_bundle(
        ExportRequest(
            source=f"{FACTORIES}:diabetes_ridge",
            data=regression_data,
            output=out,
            target_column="target",
        )
    )
    return out


@pytest.fixture
def copy_bundle(tmp_path: Path):
    """Copy a session bundle into this test's folder so the test may change it."""

    def _copy(src: Path, name: str = "bundle") -> Path:
        dest = tmp_path / name
        shutil.copytree(src, dest)
        return dest

    return _copy


# The real MQTT broker (mosquitto) fixtures, shared by the agent, simulator and fleet suites.
from helpers.mosquitto import mosquitto_broker, mosquitto_tls_broker  # noqa: E402, F401

# A throw-away PostgreSQL cluster (the fleet store's server engine).
from helpers.postgres import postgres_server, postgres_url  # noqa: E402, F401
