"""Artifacts: copy from a local build folder (or a local stand-in for s3:// URIs), verify the
Base64 SHA-256 digest as the nucleus does, unarchive ZIPs, and make the store read-only."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.toolkit.simulator.layout import GreengrassRoot

# The nucleus's componentStoreMaxSizeBytes default: what one component may unpack to here.
MAX_UNARCHIVED_BYTES = 10_000_000_000


class ArtifactError(CheckFailedError):
    """An artifact is missing or its digest does not match: the deployment fails."""


@dataclass(frozen=True)
class ArtifactSource:
    """Where artifacts come from, offline.

    `build_dir` is a `greengrass-build` folder (artifacts/<name>/<version>/<file>); `s3_root`
    stands in for S3 (s3://bucket/key -> s3_root/bucket/key). The file is looked up in the
    build folder first by name, as the Development Kit does when it rewrites URIs.
    """

    build_dir: Path | None = None
    s3_root: Path | None = None

    def locate(self, name: str, version: str, uri: str) -> Path:
        parsed = urlparse(uri)
        scheme = parsed.scheme.lower()
        filename = Path(parsed.path).name or parsed.netloc
        candidates: list[Path] = []
        if self.build_dir is not None:
            candidates.append(self.build_dir / "artifacts" / name / version / filename)
        if scheme == "s3" and self.s3_root is not None:
            candidates.append(self.s3_root / parsed.netloc / parsed.path.lstrip("/"))
        if scheme not in ("s3", "greengrass", "file"):
            raise BadInputError(
                f"{name} {version}: artifact URI scheme {scheme!r} is not supported by the "
                f"simulator ({uri})",
                hint="use s3:// URIs with the files in the build folder or the S3 stand-in",
            )
        if scheme == "file":
            candidates.append(Path(parsed.path))
        for c in candidates:
            if c.is_file():
                return c
        raise ArtifactError(
            f"{name} {version}: artifact {uri} not found (looked in "
            f"{', '.join(str(c) for c in candidates) or 'nowhere'})",
            hint="run `edgekit package` first, or pass the folder that holds the artifacts",
        )


def b64_sha256(path: Path, algorithm: str = "SHA-256") -> str:
    algo = algorithm.replace("-", "").lower()
    try:
        digest = hashlib.new(algo)
    except ValueError:
        raise ArtifactError(f"unsupported digest algorithm {algorithm!r}") from None
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode("ascii")


def _read_only(path: Path, executable: bool) -> None:
    mode = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    if executable:
        mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    os.chmod(path, mode)


def _make_writable(folder: Path) -> None:
    for dirpath, _dirs, filenames in os.walk(folder):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = Path(dirpath) / f
            if not p.is_symlink():
                os.chmod(p, 0o644)


def unzip(archive: Path, out: Path, max_bytes: int) -> int:
    """Extract `archive` into `out`, refusing any member that would land outside `out` and
    stopping once more than `max_bytes` come out (sizes counted while writing, not trusted from
    the archive's directory). Returns the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    base = out.resolve()
    written = 0
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:  # every path is checked before anything is written
            if not (base / info.filename).resolve().is_relative_to(base):
                raise ArtifactError(f"{archive.name}: unsafe path {info.filename!r} in archive")
        for info in members:
            dest = (base / info.filename).resolve()
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                while block := src.read(1 << 20):
                    written += len(block)
                    if written > max_bytes:
                        raise ArtifactError(
                            f"{archive.name}: unpacks to more than {max_bytes:,} bytes",
                            hint="the component store's limit (the nucleus's "
                            "componentStoreMaxSizeBytes): is the archive a zip bomb?",
                        )
                    dst.write(block)
    return written


def install_artifacts(
    root: GreengrassRoot,
    name: str,
    version: str,
    artifacts: list[dict[str, Any]],
    source: ArtifactSource,
    max_unarchived_bytes: int = MAX_UNARCHIVED_BYTES,
) -> list[Path]:
    """Copy, verify and unarchive one component version's artifacts into the device's store.

    Verification happens before anything is unarchived; a failure removes the version's
    folders so a half-installed version never stays behind.
    """
    dest = root.artifacts(name, version)
    unarch = root.unarchived(name, version)
    if dest.exists():
        _make_writable(dest)
        shutil.rmtree(dest)
    if unarch.exists():
        _make_writable(unarch)
        shutil.rmtree(unarch)
    dest.mkdir(parents=True)
    placed: list[Path] = []
    budget = max_unarchived_bytes
    try:
        seen: set[str] = set()
        for art in artifacts:
            uri = art.get("URI")
            if not uri:
                raise BadInputError(f"{name} {version}: an artifact has no URI")
            src = source.locate(name, version, uri)
            target = dest / Path(urlparse(uri).path).name
            if target.name in seen:
                raise BadInputError(f"{name} {version}: two artifacts are named {target.name}")
            seen.add(target.name)
            shutil.copyfile(src, target)
            if "Digest" in art:
                actual = b64_sha256(target, art.get("Algorithm", "SHA-256"))
                if actual != art["Digest"]:
                    raise ArtifactError(
                        f"{name} {version}: integrity check failed for {target.name}: digest "
                        f"{actual} does not match the recipe's {art['Digest']}",
                        hint="the artifact changed after packaging: re-run `edgekit package`",
                    )
            if str(art.get("Unarchive", "NONE")).upper() == "ZIP":
                budget -= unzip(target, unarch / target.stem, budget)
            perm = art.get("Permission") or {}
            _read_only(target, str(perm.get("Execute", "NONE")).upper() != "NONE")
            placed.append(target)
    except BaseException:
        _make_writable(dest)
        shutil.rmtree(dest, ignore_errors=True)
        if unarch.exists():
            _make_writable(unarch)
            shutil.rmtree(unarch, ignore_errors=True)
        raise
    return placed
