"""`edge-agent batch` replaces only outputs it wrote: never an input, a file of the user's, or
the bundle's files; run from the user's folder with relative paths, as the README does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent import cli
from edge_agent.contracts.bundle import Bundle

NOTE = b"the user's own bytes"


@pytest.fixture
def work(cnn_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd with the bundle as ./b, one input file ./in.npz and a folder of two, ./ins/."""
    shutil.copytree(cnn_bundle, tmp_path / "b")
    rows = Bundle.open(cnn_bundle).sample_inputs()["input"][:10]
    np.savez(tmp_path / "in.npz", input=rows)
    (tmp_path / "ins").mkdir()
    np.savez(tmp_path / "ins" / "x.npz", input=rows)
    np.savez(tmp_path / "ins" / "y.npz", input=rows[:4])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def batch(*args: str) -> int:
    return cli.main(["batch", "--bundle", "b", "--no-progress", *args])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    "args, why",
    [
        (["--input", "in.npz", "-o", "in.npz"], "is this command's input"),
        (["--input", "in.npz", "-o", "mine.npz"], "not a batch output"),
        (["--input", "in.npz", "-o", "b/out.npz"], "inside this command's input"),
        (["--input", "ins", "-o", "ins"], "is this command's input"),
        (["--input", "ins", "-o", "."], "current folder"),
        (["--input", "ins", "-o", "outs"], "not a batch output"),
        # a folder for one input file: `.` crashed (ValueError traceback), `..` wrote `...npz`
        # and `outs` wrote `outs.npz` beside the folder (found by tryhostile)
        (["--input", "in.npz", "-o", "."], "is a folder, but a single input file"),
        (["--input", "in.npz", "-o", ".."], "is a folder, but a single input file"),
        (["--input", "in.npz", "-o", "outs"], "is a folder, but a single input file"),
    ],
)
def test_batch_refuses_to_replace_what_it_did_not_write(work, capsys, args, why):
    (work / "mine.npz").write_bytes(NOTE)
    (work / "outs").mkdir()
    (work / "outs" / "x.npz").write_bytes(NOTE)  # the user's file where ins/x.npz's output goes
    before = _snapshot(work)
    assert batch(*args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert why in err and args[-1] in err
    assert _snapshot(work) == before


def test_batch_replaces_its_own_outputs(work, capsys):
    assert batch("--input", "ins", "-o", "outs") == 0
    assert batch("--input", "ins", "-o", "outs") == 0  # its own outputs: replaced
    assert batch("--input", "in.npz", "-o", "one.npz") == 0
    assert batch("--input", "in.npz", "-o", "one.npz") == 0
    assert sorted(os.listdir(work / "outs")) == ["x.npz", "y.npz"]
    with np.load(work / "outs" / "y.npz") as y:
        assert y["logits"].shape == (4, 10)


def test_two_inputs_with_one_output_name_are_refused(work, capsys):
    rows = Bundle.open(work / "b").sample_inputs()["input"][:3]
    np.save(work / "ins" / "x.npy", rows)  # x.npz and x.npy would both write outs/x.npz
    assert batch("--input", "ins", "-o", "outs") == 2
    assert "would both write" in capsys.readouterr().err
    assert not (work / "outs").exists()
