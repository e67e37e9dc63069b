"""Deterministic ZIP archives: the same files always give the same bytes, hence the same digest.

Greengrass component versions are immutable and the artifact digest is part of the recipe, so a
rebuild of unchanged input must not change it. Entries are sorted, stamped with one fixed time,
given fixed Unix permissions and written without extra fields.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from edge_agent.atomic import write_bytes

# 1980-01-01 00:00:00 is the earliest time a ZIP entry can hold.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
COMPRESS_LEVEL = 9
# Formats that are already compressed gain nothing from deflate.
STORED_SUFFIXES = (".whl", ".zip", ".npz", ".gz", ".xz", ".bz2")


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.create_system = 3  # Unix, so external_attr carries a mode
    info.external_attr = FILE_MODE << 16
    stored = name.endswith(STORED_SUFFIXES)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    return info


def build_zip(entries: Iterable[tuple[str, Path | bytes]], dest: Path) -> Path:
    """Write `dest` from (archive name, file path or bytes) pairs, sorted by name, atomically."""
    items = sorted(entries, key=lambda e: e[0])
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate archive entries: {', '.join(dupes)}")
    tmp = dest.with_name(f".{dest.name}.building")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(tmp, "w", compresslevel=COMPRESS_LEVEL) as zf:
            for name, source in items:
                if name.startswith("/") or ".." in Path(name).parts:
                    raise ValueError(f"archive entry {name!r} would leave the unpack folder")
                data = source if isinstance(source, bytes) else Path(source).read_bytes()
                zf.writestr(_entry(name), data)
        write_bytes(dest, tmp.read_bytes())
    finally:
        if tmp.exists():
            os.unlink(tmp)
    return dest


def tree_entries(
    root: Path, prefix: str = "", exclude_dirs: tuple[str, ...] = ("__pycache__",)
) -> list[tuple[str, Path]]:
    """Every file under `root` as (prefix/relative name, path), skipping caches and bytecode."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in exclude_dirs for part in rel.parts) or not path.is_file():
            continue
        if path.suffix in (".pyc", ".pyo"):
            continue
        found.append((f"{prefix}{rel.as_posix()}", path))
    return found
