"""Session bundles beyond the shared ones: a torch MLP regressor and a tree ensemble.

Imported by the quantize and evaluate conftests; the shared tabular/CNN/regression bundles
come from tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.export.exporters import ExportOptions

MODELS = Path(__file__).parent / "models.py"


@pytest.fixture(scope="session")
def mlp_bundle(bundles_root: Path, regression_data: Path) -> Path:
    """torch MLP regressor (Gemm layers), input "input" (rows, 10), one value out."""
    out = bundles_root / "mlp"
    if not out.exists():
        export_bundle(
            ExportRequest(
                source=f"{MODELS}:diabetes_mlp",
                data=regression_data,
                output=out,
                target_column="target",
                options=ExportOptions(task="regression"),
            )
        )
    return out


@pytest.fixture(scope="session")
def forest_data(bundles_root: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    path = bundles_root / "forest.csv"
    if not path.exists():
        load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tree_bundle(bundles_root: Path, forest_data: Path) -> Path:
    out = bundles_root / "forest"
    if not out.exists():
        export_bundle(
            ExportRequest(
                source=f"{MODELS}:small_forest",
                data=forest_data,
                output=out,
                target_column="target",
            )
        )
    return out
