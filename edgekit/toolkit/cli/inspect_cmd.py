"""`edgekit inspect`: a bundle's signature, variants, sizes, parity and lineage, with every
digest verified (a tampered or missing file is reported and exits 1), and files the manifest
does not list (orphans: a lost update or an interrupted run) reported."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent.contracts.bundle import Bundle
from edge_agent.owned import bundle_orphans
from edge_agent.signing import SIGNATURE_FILE
from edgekit.toolkit.cli import app
from edgekit.toolkit.cli.common import JSON_OPTION, handle_errors, out, print_json
from edgekit.toolkit.present.bundle import summary_tables


@app.command("inspect")
@handle_errors
def inspect_command(
    bundle_dir: Path = typer.Argument(..., help="Bundle folder."),
    verify_key: Path | None = typer.Option(
        None, "--verify-key", help="Ed25519 public key: also check the bundle's signature."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a bundle's signature, variants, parity and lineage; verify every digest.
    Nothing from the bundle is imported or run."""
    bundle = Bundle.open(bundle_dir, verify_key=verify_key)
    problems = bundle.digest_problems()
    signed = (bundle.path / SIGNATURE_FILE).is_file()
    orphans = bundle_orphans(bundle.path, bundle.manifest)
    if as_json:
        print_json(
            {
                "ok": not problems,
                "bundle": str(bundle.path),
                "signed": signed,
                "signed_by": bundle.signed_by,
                "manifest": bundle.manifest,
                "orphans": orphans,
                "integrity": [
                    {
                        "file": p.file,
                        "problem": p.problem,
                        "expected": p.expected,
                        "actual": p.actual,
                    }
                    for p in problems
                ],
            }
        )
    else:
        for table in summary_tables(bundle, problems):
            out.print(table)
        if problems:
            out.print(
                f"[bold red]✗ {len(problems)} file(s) failed verification[/]: "
                + ", ".join(f"{p.file} ({p.problem})" for p in problems)
            )
        else:
            out.print("[green]✓ every digest verified[/]")
        if bundle.signed_by:
            out.print(f"[green]✓ signature verified[/] (key {bundle.signed_by})")
        elif signed:
            out.print(f"{SIGNATURE_FILE} present, not checked: pass --verify-key PUB.pem")
        if orphans:
            out.print(
                f"[yellow]! {len(orphans)} file(s) in the folder that the manifest does not list[/]"
                f": {', '.join(orphans)} (left by an interrupted or concurrent run, or put there "
                "by hand; edgekit never loads them: delete them, or re-run the command that "
                "makes them)",
                highlight=False,
            )
    if problems:
        raise typer.Exit(1)
