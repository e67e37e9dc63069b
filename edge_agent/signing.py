"""Detached Ed25519 signatures over a bundle's manifest.json.

The manifest records the sha256 and size of every file, so a valid signature over the manifest
vouches for the whole bundle: with a verify key configured, the digests protect against an
attacker who can change files, not only against corruption. Without a key nothing is checked
and `cryptography` is never imported, so the device agent needs it only when signing is used.

The signature lives beside the manifest in `manifest.sig` (JSON) and covers the exact bytes of
manifest.json behind a domain prefix, so it can never be replayed as a signature over anything
else. Any later change to the manifest (bench results, a selection) invalidates it: sign last.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edge_agent import atomic
from edge_agent.errors import BadInputError, IntegrityError

SIGNATURE_FILE = "manifest.sig"
FORMAT_VERSION = 1
ALGORITHM = "ed25519"
_DOMAIN = b"edgekit-manifest-signature-v1\n"
_PEM_START = "-----BEGIN"


def _serialization() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:
        raise BadInputError(
            "bundle signatures need the 'cryptography' package, which is not installed",
            hint="pip install 'cryptography>=42' (or edgekit[signing]), or remove the verify key",
        ) from exc
    return serialization


def _ed25519() -> Any:
    _serialization()
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def _pem_text(source: str | Path, what: str) -> bytes:
    """A key given as PEM text (e.g. inline in Greengrass configuration) or as a file path."""
    text = str(source)
    if text.lstrip().startswith(_PEM_START):
        return text.strip().encode("ascii", "replace") + b"\n"
    path = Path(text)
    if not path.is_file():
        raise BadInputError(
            f"{what} {path} does not exist",
            hint="give the PEM file `edgekit keygen` wrote (or its text)",
        )
    return path.read_bytes()


def load_public_key(source: str | Path) -> Any:
    """An Ed25519 public key from a PEM file or PEM text."""
    serialization, ed25519 = _serialization(), _ed25519()
    data = _pem_text(source, "verify key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise BadInputError(
            f"verify key is not a PEM public key: {exc}",
            hint="give the .pub.pem file that `edgekit keygen` wrote",
        ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BadInputError(
            f"verify key is a {type(key).__name__}, not an Ed25519 key",
            hint="make a key pair with `edgekit keygen`",
        )
    return key


def load_private_key(path: str | Path) -> Any:
    serialization, ed25519 = _serialization(), _ed25519()
    data = _pem_text(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BadInputError(
            f"signing key {path} is not an unencrypted PEM private key: {exc}",
            hint="give the private .pem file that `edgekit keygen` wrote",
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BadInputError(
            f"signing key {path} is a {type(key).__name__}, not an Ed25519 key",
            hint="make a key pair with `edgekit keygen`",
        )
    return key


def key_id(public_key: Any) -> str:
    """A short fingerprint that names the key in the signature and in messages."""
    serialization = _serialization()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Any) -> str:
    serialization = _serialization()
    pem: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def generate_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> str:
    """Write a new key pair (private key readable by its owner only); return the key id."""
    serialization, ed25519 = _serialization(), _ed25519()
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise BadInputError(f"{path} already exists", hint="choose another path")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = private_path.with_name(f".{private_path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    tmp.replace(private_path)
    atomic.write_bytes(public_path, public_pem(key.public_key()).encode("ascii"))
    return key_id(key.public_key())


def signature_document(manifest_bytes: bytes, private_key: Any) -> dict[str, Any]:
    signature = private_key.sign(_DOMAIN + manifest_bytes)
    return {
        "version": FORMAT_VERSION,
        "algorithm": ALGORITHM,
        "key_id": key_id(private_key.public_key()),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def sign_bytes(manifest_bytes: bytes, private_key: Any) -> bytes:
    """The manifest.sig content for these manifest bytes."""
    doc = signature_document(manifest_bytes, private_key)
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def verify(manifest_bytes: bytes, signature_bytes: bytes | None, public_key: Any) -> str:
    """Raise IntegrityError unless `signature_bytes` is this key's signature over exactly
    `manifest_bytes`; return the key id."""
    from cryptography.exceptions import InvalidSignature

    kid = key_id(public_key)
    if signature_bytes is None:
        raise IntegrityError(
            f"the bundle is not signed ({SIGNATURE_FILE} is missing) but a verify key is set",
            hint="sign it with `edgekit sign BUNDLE --key PRIVATE.pem`, or remove the verify key",
        )
    try:
        doc = json.loads(signature_bytes.decode("utf-8"))
        raw = base64.b64decode(doc["signature"], validate=True)
        if doc.get("version") != FORMAT_VERSION or doc.get("algorithm") != ALGORITHM:
            raise ValueError(f"unsupported signature format {doc.get('version')!r}")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{SIGNATURE_FILE} is not a valid signature file: {exc}",
            hint="sign the bundle again with `edgekit sign`",
        ) from None
    try:
        public_key.verify(raw, _DOMAIN + manifest_bytes)
    except InvalidSignature:
        other = doc.get("key_id")
        why = (
            f"it was signed by key {other}, not the verify key {kid}"
            if other and other != kid
            else "manifest.json changed after signing, or the signature was forged"
        )
        raise IntegrityError(
            f"the bundle's signature does not verify: {why}",
            hint="do not deploy this bundle; re-sign it only if you know every change in it",
        ) from None
    return kid
