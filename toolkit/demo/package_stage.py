"""Demo stage: package the demo model as a Greengrass component for linux/amd64 and
linux/aarch64, validate the recipe, and show the local-deployment command."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from edge_agent import signing
from toolkit.demo import DemoContext, stage
from toolkit.greengrass.package import PackageRequest, package
from toolkit.greengrass.validate import validate_file

COMPONENT = "com.example.edgekit.Classifier"
VERSION = "1.0.0"


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def release_key(ctx: DemoContext) -> tuple[Path, str]:
    """A fresh Ed25519 release key (what `edgekit keygen` makes) for this demo run."""
    keys = ctx.out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    private = keys / "release.pem"
    key_id = signing.generate_keypair(private, keys / "release.pub.pem", overwrite=True)
    return private, key_id


@stage(60, "package")
def package_demo(ctx: DemoContext) -> None:
    key = "tabular" if "tabular" in ctx.bundles else "cnn"
    # Signed, as a release should be: the devices of the simulate stage verify every model
    # artifact against the public key the recipe carries before they load it.
    sign_key, key_id = release_key(ctx)
    result = package(
        PackageRequest(
            bundle_dir=ctx.bundles[key],
            name=COMPONENT,
            version=VERSION,
            platforms=["linux/amd64", "linux/aarch64"],
            output=ctx.out / "greengrass-build",
            overwrite=True,
            sign_key=sign_key,
        )
    )
    report = validate_file(result.recipe_path)
    table = Table(title=f"Greengrass component {COMPONENT} {VERSION} ({key} model)")
    for col in ("platform", "target", "variant", "why", "preflight"):
        table.add_column(col)
    for p in result.plans:
        issues = ", ".join(f"{f.severity}: {f.check}" for f in p.findings) or "ok"
        table.add_row(p.label, p.target or "-", p.variant, _short(p.reason), issues)
    ctx.console.print(table)
    lite = sum(1 for p in report.problems if p.lite)
    mark = "[green]✓[/]" if report.ok else "[red]✗[/]"
    ctx.console.print(
        f"{mark} recipe {result.recipe_path} validates ({report.size_bytes:,} bytes, "
        f"{len(report.errors)} errors, {lite} nucleus-lite notes); artifacts: "
        + ", ".join(f"{f} {d[:12]}…" for f, d in result.artifacts.items())
    )
    ctx.console.print(
        f"signed with Ed25519 key {key_id} ({sign_key}); devices verify with verify_key",
        highlight=False,
    )
    ctx.console.print(f"local core: {result.local_deploy_command()}", highlight=False)
    if not report.ok:
        ctx.fail(f"the recipe {result.recipe_path} does not validate ({len(report.errors)} errors)")
    ctx.results["package"] = {
        "model": key,
        "recipe": str(result.recipe_path),
        "valid": report.ok,
        "platforms": [p.to_dict() for p in result.plans],
        "artifacts": result.artifacts,
        "local_deploy_command": result.local_deploy_command(),
        "signed_by": key_id,
    }
