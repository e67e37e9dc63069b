"""File digests in the two encodings edgekit needs: hex (manifest) and Base64 (Greengrass)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, streamed so large models do not load into memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_b64_file(path: str | Path) -> str:
    """Standard Base64 of the raw SHA-256, the form Greengrass recipes use for artifact digests."""
    return base64.b64encode(bytes.fromhex(sha256_file(path))).decode("ascii")
