"""The bundle manifest: reading, validating and writing `manifest.json`.

The manifest is the only state that passes between stages, so every write validates
against the shipped schema and goes through an atomic rename.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_agent import atomic, locking
from edge_agent.clock import utc_now as utc_now  # re-exported: manifest_io.utc_now
from edge_agent.errors import BundleError
from edge_agent.schemas import validation_errors

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1


def validate(manifest: dict[str, Any]) -> None:
    """Raise BundleError listing every schema violation."""
    errors = validation_errors(manifest, "manifest")
    if errors:
        listed = "\n  ".join(errors[:20])
        raise BundleError(
            f"manifest does not match schema version {SCHEMA_VERSION}:\n  {listed}",
            hint="the bundle was edited by hand or made by an incompatible edgekit; re-export it",
        )


def read(bundle_dir: str | Path) -> dict[str, Any]:
    return parse(read_bytes(bundle_dir), Path(bundle_dir) / MANIFEST_FILE)


def read_bytes(bundle_dir: str | Path) -> bytes:
    """The manifest's bytes, read once: a signature is checked on exactly what is parsed."""
    path = Path(bundle_dir) / MANIFEST_FILE
    if not Path(bundle_dir).is_dir():
        raise BundleError(
            f"{bundle_dir} is not a bundle folder", hint="pass the folder `edgekit export -o` wrote"
        )
    if path.is_symlink():
        raise BundleError(
            f"{path} is a symbolic link; a bundle holds only plain files",
            hint="copy the real file into the bundle",
        )
    if not path.is_file():
        raise BundleError(
            f"{bundle_dir} has no {MANIFEST_FILE}", hint="pass the folder `edgekit export -o` wrote"
        )
    return path.read_bytes()


def parse(data: bytes, path: str | Path = MANIFEST_FILE) -> dict[str, Any]:
    """Decode, check the schema version and validate a manifest's bytes."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} must hold a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{path} has schema_version {version!r}; this edgekit reads version {SCHEMA_VERSION}",
            hint="upgrade edgekit or re-export the bundle",
        )
    validate(manifest)
    return manifest


def write(bundle_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Validate then atomically replace manifest.json."""
    manifest["updated"] = utc_now()
    validate(manifest)
    atomic.write_json(Path(bundle_dir) / MANIFEST_FILE, manifest)


@contextlib.contextmanager
def update(
    bundle_dir: str | Path, timeout: float = locking.DEFAULT_TIMEOUT_S
) -> Iterator[dict[str, Any]]:
    """A locked read-modify-write: yield the manifest as it is on disk now and write it back when
    the body succeeds. Concurrent writers take turns, so none of their changes is lost."""
    with locking.locked(bundle_dir, timeout):
        manifest = read(bundle_dir)
        yield manifest
        write(bundle_dir, manifest)


def append_history(manifest: dict[str, Any], stage: str, command: str, **details: Any) -> None:
    """Record what a stage did, so the manifest doubles as the model card's changelog."""
    manifest.setdefault("history", []).append(
        {"stage": stage, "at": utc_now(), "command": command, **details}
    )
