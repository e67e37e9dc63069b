"""Atomic writes: nothing half-written, nothing left over, normal permissions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent import atomic


def test_write_json_replaces_whole_files(tmp_path: Path):
    target = tmp_path / "sub" / "doc.json"
    atomic.write_json(target, {"a": 1})
    atomic.write_json(target, {"b": 2})
    assert json.loads(target.read_text()) == {"b": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["doc.json"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_failing_write_keeps_the_old_file(tmp_path: Path):
    target = tmp_path / "doc.json"
    atomic.write_json(target, {"ok": True})
    with pytest.raises(TypeError):
        atomic.write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_numpy_values_serialise():
    import numpy as np

    assert json.loads(atomic_json({"x": np.float32(1.5), "v": np.arange(2)})) == {
        "x": 1.5,
        "v": [0, 1],
    }


def atomic_json(obj) -> str:
    return json.dumps(obj, default=atomic._json_default)


def test_staging_dir_renames_on_success(tmp_path: Path):
    target = tmp_path / "bundle"
    with atomic.staging_dir(target) as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".bundle.")
        (stage / "f.txt").write_text("x")
        assert not target.exists()
    assert (target / "f.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()


def test_staging_dir_removes_everything_on_failure(tmp_path: Path):
    target = tmp_path / "bundle"
    with pytest.raises(RuntimeError), atomic.staging_dir(target) as stage:
        (stage / "half.onnx").write_bytes(b"12")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staging_dir_refuses_or_replaces_an_existing_target(tmp_path: Path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError), atomic.staging_dir(target) as stage:
        (stage / "new.txt").write_text("new")
    assert (target / "old.txt").exists() and len(list(tmp_path.iterdir())) == 1

    with pytest.raises(ValueError), atomic.staging_dir(target, replace=True) as stage:
        (stage / "new.txt").write_text("new")
        raise ValueError("fails before the swap")
    assert [p.name for p in target.iterdir()] == ["old.txt"]

    with atomic.staging_dir(target, replace=True) as stage:
        (stage / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace to watch the system calls")
@pytest.mark.parametrize("how", ["write_json", "staging_dir"])
def test_the_rename_is_made_durable_by_fsyncing_the_folder(tmp_path: Path, how: str):
    """After the rename, the parent folder itself is fsynced (else a power loss can undo it)."""
    folder = tmp_path / "out"
    folder.mkdir()
    code = (
        "import sys; from edge_agent import atomic\n"
        f"if {how!r} == 'write_json': atomic.write_json(sys.argv[1] + '/doc.json', {{'a': 1}})\n"
        "else:\n"
        "    with atomic.staging_dir(sys.argv[1] + '/bundle') as d: (d / 'f').write_text('x')\n"
    )
    trace = tmp_path / "trace.txt"
    subprocess.run(
        [
            "strace",
            "-f",
            "-s",
            "4096",
            "-o",
            str(trace),
            "-e",
            "trace=openat,rename,renameat,renameat2,fsync",
        ]
        + [sys.executable, "-c", code, str(folder)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    lines = trace.read_text().splitlines()
    renamed = max(
        i
        for i, line in enumerate(lines)
        if line.split()[1].startswith("rename") and str(folder) in line
    )
    opened = [
        (i, line.split("= ")[-1].strip())
        for i, line in enumerate(lines)
        if i > renamed and "openat(" in line and f'"{folder}"' in line and "O_DIRECTORY" in line
    ]
    assert opened, "the folder is opened after the rename:\n" + "\n".join(lines[renamed:])
    fd = opened[0][1]
    assert any(f"fsync({fd})" in line for line in lines[opened[0][0] :]), "and fsynced"
