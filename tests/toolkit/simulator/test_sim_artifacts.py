"""Unarchiving ZIP artifacts (issue 22): no member may land outside its folder, and the total
unpacked size is capped while writing (a zip bomb's directory lies about sizes)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from edgekit.toolkit.simulator.artifacts import ArtifactError, unzip


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_sibling_folder_with_the_same_prefix_is_refused(tmp_path):
    # unpacking into .../foo: ../foo2/x passed the old string-prefix test
    archive = _zip(tmp_path / "foo.zip", {"ok.txt": b"1", "../foo2/x": b"evil"})
    with pytest.raises(ArtifactError, match="unsafe path '../foo2/x'"):
        unzip(archive, tmp_path / "out" / "foo", 1 << 20)
    assert not (tmp_path / "out" / "foo2").exists()
    assert not (tmp_path / "out" / "foo" / "ok.txt").exists()  # checked before writing


@pytest.mark.parametrize("member", ["/etc/x", "a/../../x", "../x"])
def test_escaping_members_are_refused(tmp_path, member):
    archive = _zip(tmp_path / "a.zip", {member: b"x"})
    with pytest.raises(ArtifactError, match="unsafe path"):
        unzip(archive, tmp_path / "out", 1 << 20)


def test_total_size_is_capped_while_writing(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", {"a": b"\0" * 600_000, "b": b"\0" * 600_000})
    assert archive.stat().st_size < 10_000  # compresses away
    with pytest.raises(ArtifactError, match="more than 1,000,000 bytes"):
        unzip(archive, tmp_path / "out", 1_000_000)
    written = sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file())
    assert written <= 1_000_000


def test_a_good_archive_unpacks_with_folders(tmp_path):
    archive = _zip(tmp_path / "m.zip", {"d/": b"", "d/e/f.txt": b"hello", "g": b"!"})
    assert unzip(archive, tmp_path / "out", 100) == 6
    assert (tmp_path / "out" / "d" / "e" / "f.txt").read_bytes() == b"hello"
