"""Array files from someone else: read with pickle off, each refusal saying what the file is."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from edge_agent.arrays import load_npz
from edge_agent.errors import BadInputError


def test_plain_npz_and_npy_load(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(3))
    np.save(tmp_path / "b.npy", np.ones(2))
    assert load_npz(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]
    assert load_npz(tmp_path / "b.npy")["arr_0"].tolist() == [1.0, 1.0]


def test_a_file_that_is_no_numpy_file_is_not_called_a_pickle(tmp_path):
    """A CSV or text file given as `simulate --data` was refused as "holds pickled data", which
    sends the user looking for a pickle (found by tryhostile)."""
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(BadInputError, match=r"is not a NumPy \.npz or \.npy file") as err:
        load_npz(path, "data set")
    assert "pickle" not in err.value.message


def test_pickles_and_object_arrays_are_refused_as_pickles(tmp_path):
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"x": 1}))
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    for name in ("p.npz", "o.npz"):
        with pytest.raises(BadInputError, match="holds pickled data"):
            load_npz(tmp_path / name)
