"""A session bundle of a small transformer encoder (tests/export/torch_models.py:TinyEncoder):
two int64 inputs (input_ids, attention_mask), a dict output, padded sentences of varied length.
Imported by the quantize, evaluate and tune conftests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.export.builder import ExportRequest, export_bundle

ENCODER = Path(__file__).parents[2] / "export" / "torch_models.py"


def token_arrays(rows: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 100, (rows, seq)).astype(np.int64)
    lengths = rng.integers(4, seq + 1, rows)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="session")
def encoder_data(bundles_root: Path) -> Path:
    path = bundles_root / "encoder_tokens.npz"
    if not path.exists():
        np.savez(path, **token_arrays(96, 24, seed=0))
    return path


@pytest.fixture(scope="session")
def encoder_bundle(bundles_root: Path, encoder_data: Path) -> Path:
    out = bundles_root / "encoder"
    if not out.exists():
        export_bundle(
            ExportRequest(source=f"{ENCODER}:tiny_encoder", data=encoder_data, output=out)
        )
    return out
