"""A model bundle on disk: a folder with manifest.json, one ONNX file per variant,
the drift baseline and stored sample inputs.

This class is the one way every command (and the device agent) reads and extends a bundle.
A bundle is untrusted input, so `Bundle.open` checks everything before a stage sees it: the
manifest's schema (and its signature when a verify key is given), plain file names only (no
path separators, no `..`, nothing reserved), and no symbolic links anywhere in the folder.
File digests are checked when a file is used (`verify_variant`, `load_samples`, `baseline`),
so a stage never reads bytes the manifest does not vouch for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.arrays import load_npz
from edge_agent.contracts import manifest as manifest_io
from edge_agent.errors import BundleError, IntegrityError
from edge_agent.hashing import sha256_file
from edge_agent.signing import SIGNATURE_FILE

FP32 = "fp32"
RESERVED_NAMES = frozenset({manifest_io.MANIFEST_FILE, SIGNATURE_FILE})


def check_name(name: object) -> str:
    """A name the manifest gives for a file must be a plain file name inside the bundle."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or Path(name).is_absolute()
        or ".." in Path(name).parts
        or "/" in name
        or "\\" in name
        or "\0" in name
    ):
        raise BundleError(
            f"bundle file name {name!r} is not a plain file name inside the bundle",
            hint="a manifest names files in its own folder only; this bundle was tampered with",
        )
    if name in RESERVED_NAMES:
        raise BundleError(f"bundle file name {name!r} is reserved for the bundle itself")
    return name


@dataclass(frozen=True)
class DigestProblem:
    file: str
    problem: str  # "missing", "modified", "size"
    expected: str | None = None
    actual: str | None = None


class Bundle:
    def __init__(self, path: str | Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.signed_by: str | None = None  # the verify key's id, when the signature was checked
        self._verified: dict[str, tuple[int, int, int]] = {}

    @classmethod
    def open(cls, path: str | Path, *, verify_key: Any = None) -> Bundle:
        """Read and check a bundle. With `verify_key` (a PEM path, PEM text or a loaded Ed25519
        public key) the manifest must carry a valid signature by that key before it is parsed."""
        data = manifest_io.read_bytes(path)
        signed_by = None
        if verify_key is not None:
            signed_by = _verify_signature(Path(path), data, verify_key)
        bundle = cls(Path(path), manifest_io.parse(data, Path(path) / manifest_io.MANIFEST_FILE))
        bundle.signed_by = signed_by
        bundle.check_layout()
        return bundle

    def check_layout(self) -> None:
        """Every name the manifest gives is a plain file name, the baseline and samples are
        vouched for by a digest, and the folder holds no symbolic link."""
        m = self.manifest
        for name in m["files"]:
            check_name(name)
        for variant, entry in m["variants"].items():
            check_name(entry["file"])
            if entry["file"] in m["files"]:
                raise BundleError(f"variant {variant!r} file {entry['file']!r} is listed twice")
        for key in ("baseline", "samples"):
            name = m.get(key)
            if name is not None:
                check_name(name)
                if name not in m["files"]:
                    raise BundleError(
                        f"the manifest's {key} {name!r} is not among its files, so no digest "
                        "vouches for it",
                        hint="re-export the bundle",
                    )
        with os.scandir(self.path) as entries:
            links = sorted(e.name for e in entries if e.is_symlink())
        if links:
            raise BundleError(
                f"bundle {self.path} holds symbolic links ({', '.join(links)}); a bundle holds "
                "only plain files",
                hint="copy the real files into the bundle (a link could make it read any file)",
            )

    # -- paths -----------------------------------------------------------------------------
    def file_path(self, name: str) -> Path:
        """Resolve a file named in the manifest, refusing anything that escapes the bundle."""
        return self.path / check_name(name)

    @property
    def variants(self) -> dict[str, dict[str, Any]]:
        variants: dict[str, dict[str, Any]] = self.manifest["variants"]
        return variants

    def variant(self, name: str) -> dict[str, Any]:
        if name not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise BundleError(f"bundle has no variant {name!r} (it has: {known})")
        return self.variants[name]

    def variant_path(self, name: str) -> Path:
        return self.file_path(self.variant(name)["file"])

    @property
    def signature(self) -> dict[str, Any]:
        signature: dict[str, Any] = self.manifest["signature"]
        return signature

    @property
    def task(self) -> str:
        task: str = self.manifest["task"]
        return task

    @property
    def labels(self) -> list[Any] | None:
        return self.signature.get("labels")

    # -- integrity ---------------------------------------------------------------------------
    def expected_files(self) -> dict[str, tuple[str, int]]:
        """Every file the manifest vouches for: name -> (sha256, bytes)."""
        out = {name: (e["sha256"], e["bytes"]) for name, e in self.manifest["files"].items()}
        for variant in self.variants.values():
            out[variant["file"]] = (variant["sha256"], variant["bytes"])
        return out

    def digest_problems(self, only: list[str] | None = None) -> list[DigestProblem]:
        problems = []
        for name, (sha, size) in sorted(self.expected_files().items()):
            if only is not None and name not in only:
                continue
            path = self.file_path(name)
            if path.is_symlink():
                problems.append(DigestProblem(name, "symlink", sha))
                continue
            if not path.is_file():
                problems.append(DigestProblem(name, "missing", sha))
                continue
            stat = path.stat()
            if stat.st_size != size:
                problems.append(DigestProblem(name, "size", str(size), str(stat.st_size)))
                continue
            key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
            if self._verified.get(name) == key:
                continue  # hashed already and unchanged since
            actual = sha256_file(path)
            if actual != sha:
                problems.append(DigestProblem(name, "modified", sha, actual))
            else:
                self._verified[name] = key
        return problems

    def verify(self, only: list[str] | None = None) -> None:
        """Raise IntegrityError naming every file that is missing or does not match."""
        problems = self.digest_problems(only)
        if problems:
            lines = "; ".join(f"{p.file}: {p.problem}" for p in problems)
            raise IntegrityError(
                f"bundle {self.path} failed verification: {lines}",
                hint="the files were changed after export; re-export or restore them",
                details=problems,
            )

    def verify_variant(self, name: str) -> Path:
        """Check a variant's file (and any external data it names) before loading it."""
        path = self.variant_path(name)
        self.verify(only=[self.variant(name)["file"]])
        return path

    # -- writing -----------------------------------------------------------------------------
    def register_file(self, name: str) -> dict[str, Any]:
        path = self.file_path(name)
        entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        self.manifest["files"][name] = entry
        self._verified.pop(name, None)
        return entry

    def add_variant(
        self, name: str, onnx_file: str | Path, info: dict[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Copy an ONNX file into the bundle as variant `name` and record it."""
        if name in self.variants and not replace:
            raise BundleError(
                f"bundle already has a variant {name!r}", hint="choose another `name`"
            )
        file_name = f"{name}.onnx"
        dest = self.file_path(file_name)
        src = Path(onnx_file)
        listed = {v["file"] for v in self.variants.values()} | set(self.manifest["files"])
        if file_name not in listed and dest.exists() and src.resolve() != dest.resolve():
            raise BundleError(
                f"{dest} exists but the bundle's manifest does not list it, so edgekit will not "
                "overwrite it",
                hint="move it away (an interrupted run may have left it: `edgekit inspect` lists "
                "such files) or choose another --name",
            )
        if src.resolve() != dest.resolve():
            tmp = dest.with_name(f".{file_name}.tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        entry = {
            "file": file_name,
            "sha256": sha256_file(dest),
            "bytes": dest.stat().st_size,
            "created": manifest_io.utc_now(),
            "rejected": False,
            "reject_reason": None,
            "benchmarks": {},
            **info,
        }
        self.variants[name] = entry
        return entry

    def save(self) -> None:
        manifest_io.write(self.path, self.manifest)

    @classmethod
    @contextlib.contextmanager
    def updating(cls, path: str | Path) -> Iterator[Bundle]:
        """The bundle as on disk now, under the bundle's write lock; saved when the body succeeds.
        Every stage that adds to an existing bundle goes through here, so none loses another's
        update."""
        with manifest_io.update(path) as manifest:
            yield cls(Path(path), manifest)

    # -- samples -----------------------------------------------------------------------------
    def load_samples(self) -> dict[str, np.ndarray]:
        """Stored sample inputs, keyed by ONNX input name (plus `__expected__/<output>` rows)."""
        name = self.manifest.get("samples")
        if not name:
            raise BundleError(
                f"bundle {self.path} stores no sample inputs",
                hint="re-export it: `edgekit export MODEL --data FILE`",
            )
        self.verify(only=[name])
        return load_npz(self.file_path(name), "bundle samples")

    def sample_inputs(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.load_samples().items() if not k.startswith("__")}

    def baseline(self) -> dict[str, Any]:
        import json

        name = self.manifest.get("baseline")
        if not name:
            raise BundleError(f"bundle {self.path} has no drift baseline")
        self.verify(only=[name])
        baseline: dict[str, Any] = json.loads(self.file_path(name).read_text("utf-8"))
        return baseline


def _verify_signature(path: Path, manifest_bytes: bytes, verify_key: Any) -> str:
    from edge_agent import signing  # imports cryptography: only when a key is configured

    key = verify_key
    if isinstance(verify_key, (str, Path)):
        key = signing.load_public_key(verify_key)
    sig_path = path / SIGNATURE_FILE
    if sig_path.is_symlink():
        raise BundleError(f"{sig_path} is a symbolic link; a bundle holds only plain files")
    signature = sig_path.read_bytes() if sig_path.is_file() else None
    return signing.verify(manifest_bytes, signature, key)


def save_samples(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write sample inputs without pickled objects, so loading them can never run code."""
    clean = {}
    for key, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype == object:
            arr = arr.astype(str)
        clean[key] = arr
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **clean)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    tmp.replace(path)
