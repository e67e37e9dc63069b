"""Cache keys: a stage's key is the sha256 of everything that decides its result — input files by
content digest, its options, the library versions, and the key of the stage before it — so a
changed option or data file reruns that stage and exactly the ones after it.
"""

from __future__ import annotations

import functools
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_agent.hashing import sha256_bytes, sha256_file

LIBRARIES = (
    "edgekit",
    "numpy",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "scikit-learn",
    "torch",
    "onnxconverter-common",
)


@functools.cache
def versions() -> dict[str, str | None]:
    """Library versions from the installed distributions (nothing imported, so it is cheap)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in order); memoised on
    (path, size, mtime) so a run hashes each data set once."""
    p = Path(path)
    if p.is_dir():
        parts = [
            f"{f.relative_to(p).as_posix()}:{file_digest(f)}"
            for f in sorted(p.rglob("*"))
            if f.is_file()
        ]
        return sha256_bytes("\n".join(parts).encode())
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        _FILE_DIGESTS[memo] = sha256_file(p)
    return _FILE_DIGESTS[memo]


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stage_key(name: str, inputs: dict[str, Any], upstream: str | None) -> str:
    return sha256_bytes(
        canonical(
            {"stage": name, "inputs": inputs, "upstream": upstream, "versions": versions()}
        ).encode()
    )
