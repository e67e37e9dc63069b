"""`edgekit simulate` reads its load data (--data, or the deployed bundle's samples) without
pickle: a pickled array is refused with exit 2 before any device starts, and never runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import BadInputError, IntegrityError
from edge_agent.hashing import sha256_file
from edgekit.toolkit.simulator.load import find_dataset, load_dataset


class _Boom:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def _pickled_npz(path: Path, marker: Path) -> Path:
    np.savez(path, X=np.array([_Boom(marker)], dtype=object))
    return path


def test_pickled_data_is_refused_by_the_cli(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    work = tmp_path / "work"
    (work / "greengrass-build").mkdir(parents=True)
    _pickled_npz(work / "evil.npz", marker)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "edgekit"), "simulate", "--component",
         "greengrass-build", "--data", "evil.npz", "--devices", "1", "--json"],
        cwd=work, capture_output=True, text=True, timeout=120, env=os.environ,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    doc = json.loads(done.stdout)
    assert "pickled data" in doc["error"] and "Traceback" not in done.stderr
    assert not marker.exists()
    assert not (work / "edgekit-sim-run").exists()  # nothing started


def test_load_dataset_reads_plain_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "ok.npz", X=np.ones((4, 3), np.float32), __target__=np.zeros(4))
    data = load_dataset(tmp_path / "ok.npz")
    assert list(data.inputs) == ["X"] and data.rows == 4


def _deployed(regression_bundle: Path, root: Path) -> Path:
    model = root / "packages" / "artifacts-unarchived" / "c" / "1.0.0" / "model-fp32"
    shutil.copytree(regression_bundle, model)
    return model


def test_deployed_samples_go_through_the_bundle_loader(regression_bundle, tmp_path) -> None:
    model = _deployed(regression_bundle, tmp_path)
    data = find_dataset(tmp_path)
    assert data is not None and data.model == "regression" and data.rows > 0

    marker = tmp_path / "ran"
    _pickled_npz(model / "samples.npz", marker)
    with pytest.raises(IntegrityError, match="samples.npz"):  # the digest no longer matches
        find_dataset(tmp_path)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"]["samples.npz"] = {
        "sha256": sha256_file(model / "samples.npz"),
        "bytes": (model / "samples.npz").stat().st_size,
    }
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match="pickled data"):  # attacker fixed the digest too
        find_dataset(tmp_path)
    assert not marker.exists()
