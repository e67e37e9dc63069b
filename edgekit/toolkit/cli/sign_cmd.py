"""`edgekit keygen` and `edgekit sign`: an Ed25519 key pair, and a detached signature over a
bundle's manifest that `edge-agent serve --verify-key` checks before loading anything."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent import atomic, signing
from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError, IntegrityError
from edgekit.toolkit.cli import app
from edgekit.toolkit.cli.common import JSON_OPTION, handle_errors, out, print_json


def _public_path(private: Path) -> Path:
    stem = private.name[: -len(".pem")] if private.name.endswith(".pem") else private.name
    return private.with_name(f"{stem}.pub.pem")


@app.command("keygen")
@handle_errors
def keygen_command(
    private: Path = typer.Argument(..., help="Private key file to create (PEM, mode 0600)."),
    public: Path | None = typer.Option(
        None, "--public", help="Public key file to create (default: PRIVATE with .pub.pem)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make an Ed25519 key pair for signing bundles (keep the private key off the devices)."""
    public = public or _public_path(private)
    for path in (private, public):
        if not path.parent.is_dir():
            raise BadInputError(f"folder {path.parent} does not exist")
    kid = signing.generate_keypair(private, public)
    if as_json:
        print_json({"ok": True, "private": str(private), "public": str(public), "key_id": kid})
        return
    out.print(f"key {kid}: private {private} (keep it secret), public {public}")
    out.print(f"sign with: edgekit sign BUNDLE --key {private}")
    out.print(f"verify on the device with: edge-agent serve --verify-key {public} ...")


@app.command("sign")
@handle_errors
def sign_command(
    bundle_dir: Path = typer.Argument(..., help="Bundle folder."),
    key: Path = typer.Option(..., "--key", help="Private key from `edgekit keygen` (PEM)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Sign a bundle's manifest (every file's digest with it) after verifying every file.
    Sign last: any later change to the manifest (bench, tune) invalidates the signature."""
    private = signing.load_private_key(key)
    data = manifest_io.read_bytes(bundle_dir)
    bundle = Bundle(bundle_dir, manifest_io.parse(data, bundle_dir / manifest_io.MANIFEST_FILE))
    bundle.check_layout()
    problems = bundle.digest_problems()
    if problems:
        raise IntegrityError(
            "refusing to sign a bundle whose files do not match its manifest: "
            + "; ".join(f"{p.file}: {p.problem}" for p in problems),
            hint="re-export or restore the files, then sign",
        )
    sig_path = bundle_dir / signing.SIGNATURE_FILE
    atomic.write_bytes(sig_path, signing.sign_bytes(data, private))
    kid = signing.key_id(private.public_key())
    if as_json:
        print_json(
            {"ok": True, "bundle": str(bundle_dir), "signature": str(sig_path), "key_id": kid}
        )
        return
    out.print(f"[green]✓[/] signed {bundle_dir} with key {kid} → {sig_path}")
