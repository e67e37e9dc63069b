"""The model artifact: the bundle restricted to the variants a manifest uses.

Devices download only what they run. The restricted manifest keeps every field but drops the
other variants and the selections that point at them; it is written without touching `updated`,
so packing the same bundle twice gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent import signing
from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.greengrass.archive import build_zip


def archive_name(variants: list[str]) -> str:
    return f"model-{'-'.join(sorted(variants))}.zip"


def unpack_dir(variants: list[str]) -> str:
    return archive_name(variants)[: -len(".zip")]


def restricted_manifest(bundle: Bundle, variants: list[str]) -> dict[str, Any]:
    m = json.loads(json.dumps(bundle.manifest))
    m["variants"] = {k: v for k, v in m["variants"].items() if k in variants}
    selection = {t: s for t, s in (m.get("selection") or {}).items() if s["variant"] in variants}
    if "selection" in m:
        m["selection"] = selection
    manifest_io.validate(m)
    return m


def build_model_archive(
    bundle: Bundle, variants: list[str], dest_dir: Path, signer: Any = None
) -> Path:
    """model-<variants>.zip: manifest.json, the variants' ONNX files and the other bundle files;
    with `signer` (an Ed25519 private key) also manifest.sig over that restricted manifest."""
    keep = [bundle.variant(v)["file"] for v in variants] + sorted(bundle.manifest["files"])
    bundle.verify(only=keep)  # never ship a file that no longer matches its digest
    m = restricted_manifest(bundle, variants)
    manifest_bytes = (json.dumps(m, indent=2) + "\n").encode("utf-8")
    entries: list[tuple[str, Path | bytes]] = [(manifest_io.MANIFEST_FILE, manifest_bytes)]
    if signer is not None:
        entries.append((signing.SIGNATURE_FILE, signing.sign_bytes(manifest_bytes, signer)))
    entries += [(name, bundle.file_path(name)) for name in sorted(set(keep))]
    return build_zip(entries, dest_dir / archive_name(variants))
