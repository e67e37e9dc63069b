"""Sample data: CSV, Parquet, NPY and NPZ, the label column, and files that lie."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_helpers import mixed_frame

from edge_agent.errors import BadInputError
from edgekit.export.data import load


def test_csv_and_parquet_give_the_same_frame_with_text_as_object_nan(tmp_path: Path):
    frame = mixed_frame(rows=50)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    csv = load(tmp_path / "d.csv", "target")
    parquet = load(tmp_path / "d.parquet", "target")
    for sample in (csv, parquet):
        assert list(sample.frame.columns) == ["age", "income", "city", "plan"]
        assert sample.frame["city"].dtype == object
        missing = sample.frame["city"][sample.frame["city"].isna()]
        assert len(missing) and all(isinstance(v, float) and np.isnan(v) for v in missing)
        assert sample.frame["age"].dtype.kind == "f"
        assert list(sample.target) == list(frame["target"])
        assert sample.rows == 50
    pd.testing.assert_frame_equal(csv.frame, parquet.frame, check_dtype=False)


def test_parquet_nulls_and_categoricals_become_object_nan(tmp_path: Path):
    frame = pd.DataFrame(
        {
            "c": pd.Categorical(["a", None, "b"]),
            "s": pd.array(["x", None, "y"], dtype="string"),
            "n": [1, 2, 3],
        }
    )
    frame.to_parquet(tmp_path / "d.parquet")
    loaded = load(tmp_path / "d.parquet").frame
    for col in ("c", "s"):
        assert loaded[col].dtype == object
        assert isinstance(loaded[col][1], float) and np.isnan(loaded[col][1])
    assert loaded["n"].dtype.kind == "i"


def test_target_column_is_dropped_only_when_present(tmp_path: Path):
    pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}).to_csv(tmp_path / "d.csv", index=False)
    assert load(tmp_path / "d.csv", "y").target.tolist() == [0, 1]
    kept = load(tmp_path / "d.csv", "label")  # "drops that column if present"
    assert list(kept.frame.columns) == ["a", "y"] and kept.target is None


def test_npz_target_and_tensors(tmp_path: Path):
    np.savez(tmp_path / "d.npz", image=np.zeros((5, 1, 2, 2), np.float32), target=np.arange(5))
    sample = load(tmp_path / "d.npz", "target")
    assert list(sample.tensors) == ["image"] and sample.target.tolist() == [0, 1, 2, 3, 4]
    assert sample.fingerprint()["tensors"] == {"image": [5, 1, 2, 2]}
    np.savez(tmp_path / "only.npz", target=np.arange(5))
    with pytest.raises(BadInputError, match="only the target"):
        load(tmp_path / "only.npz", "target")
    np.savez(tmp_path / "ragged.npz", a=np.zeros((5, 2)), b=np.zeros((4, 2)))
    with pytest.raises(BadInputError, match="different numbers of rows"):
        load(tmp_path / "ragged.npz")


def test_npy_target_column_is_an_index(tmp_path: Path):
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "t.npy", table)
    last = load(tmp_path / "t.npy", "-1")
    np.testing.assert_array_equal(last.tensors["input"], table[:, :2])
    np.testing.assert_array_equal(last.target, table[:, 2])
    first = load(tmp_path / "t.npy", "0")
    np.testing.assert_array_equal(first.tensors["input"], table[:, 1:])
    with pytest.raises(BadInputError, match="must be a column index") as info:
        load(tmp_path / "t.npy", "target")
    assert "-1" in info.value.hint
    with pytest.raises(BadInputError, match="is not a column"):
        load(tmp_path / "t.npy", "3")


def test_fingerprint_has_the_data_digest(tmp_path: Path):
    import hashlib

    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(tmp_path / "d.csv", index=False)
    info = load(tmp_path / "d.csv").fingerprint()
    assert info["sha256"] == hashlib.sha256((tmp_path / "d.csv").read_bytes()).hexdigest()
    assert info["rows"] == 2 and info["columns"] == ["a"]


@pytest.mark.parametrize(
    "name, content",
    [
        ("d.parquet", b"a,b\n1,2\n"),
        ("d.npy", b"a,b\n1,2\n"),
        ("d.npz", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}"),
        ("d.csv", b"PK\x03\x04\x00\x00\x00binary"),
    ],
)
def test_a_file_that_is_not_what_its_extension_says(name: str, content: bytes, tmp_path: Path):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadInputError, match="is not a") as info:
        load(tmp_path / name)
    assert "extension" in info.value.hint


def test_missing_and_unsupported_files(tmp_path: Path):
    with pytest.raises(BadInputError, match="does not exist") as info:
        load(tmp_path / "nope.csv")
    assert "`data`" in info.value.hint  # the CLI shows --data
    (tmp_path / "d.xlsx").write_bytes(b"x")
    with pytest.raises(BadInputError, match="unsupported type '.xlsx'"):
        load(tmp_path / "d.xlsx")
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(BadInputError, match="has no rows"):
        load(tmp_path / "empty.csv")


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(BadInputError, match="object arrays are refused|cannot read"):
        load(tmp_path / "o.npy")


@pytest.mark.parametrize("sep, shown", [(";", "';'"), ("\t", "tab")])
def test_a_csv_with_another_separator_is_named(tmp_path: Path, sep: str, shown: str):
    """A ';'-separated CSV (Excel in many locales) read as one column, and the error listed
    every model column as missing and that one as unexpected (trysk)."""
    path = tmp_path / "data.csv"
    pd.DataFrame({"a b": [1.5, 2.5], "c": [3, 4], "y": [0, 1]}).to_csv(path, sep=sep, index=False)
    with pytest.raises(BadInputError, match=f"separated by {shown}, not commas") as info:
        load(path, "y")
    assert "save it with commas" in info.value.hint
