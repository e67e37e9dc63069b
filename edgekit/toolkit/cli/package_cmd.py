"""`edgekit package`: a bundle to a Greengrass component (recipe + deterministic artifacts)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, fmt_bytes, handle_errors, out, print_json
from edgekit.toolkit.cli.targets_cmd import TARGETS_DIR_OPTION
from edgekit.toolkit.greengrass.names import parse_assignments
from edgekit.toolkit.greengrass.package import DEFAULT_PLATFORMS, PackageRequest, package
from edgekit.toolkit.greengrass.preflight import Finding
from edgekit.toolkit.greengrass.recipe import Settings
from edgekit.toolkit.present.format import (
    compact_table,
    fmt_mapping,
    name_column,
    shorten_end,
    shorten_middle,
)


def findings_table(findings: list[Finding]) -> Table:
    table = Table(title="compatibility preflight")
    for col in ("platform", "target", "check", "severity", "finding"):
        table.add_column(col)
    for f in findings:
        color = "red" if f.severity == "error" else "yellow"
        text = f.message + (f"\n[dim]→ {f.hint}[/]" if f.hint else "")
        table.add_row(f.platform, f.target, f.check, f"[{color}]{f.severity}[/]", text)
    return table


def _whole_seconds(seconds: float) -> int:
    """The recipe's window is whole seconds, at least one."""
    if seconds < 1:
        raise BadInputError(f"--window {seconds:g}s is under one second", hint="e.g. --window 60s")
    return round(seconds)


@app.command("package")
@handle_errors
def package_command(
    bundle_dir: Path = typer.Argument(
        ..., help="Bundle folder (from edgekit export/quantize/tune)."
    ),
    name: str = typer.Option(..., "--name", help="Component name, e.g. com.example.Classifier."),
    version: str = typer.Option(..., "--version", help="Component version (SemVer, e.g. 1.0.0)."),
    platforms: list[str] = typer.Option(
        list(DEFAULT_PLATFORMS), "--platform", help="OS/ARCH per manifest (repeat)."
    ),
    output: Path = options.output("the Greengrass build folder.", Path("greengrass-build")),
    fmt: str = typer.Option("json", "--format", help="Recipe format: json or yaml."),
    targets: list[str] = options.target(
        [], "PLATFORM=TARGET, the target whose tuned selection a platform uses (repeat)."
    ),
    variants: list[str] = options.variant(
        ": PLATFORM=VARIANT, package this variant for a platform (repeat)."
    ),
    bench_variants: str = typer.Option(
        None,
        "--bench-variants",
        help="Also ship these variants (comma-separated, or all) for the devices' bench command "
        "to compare; the device still serves the selected one.",
    ),
    wheelhouse: bool = typer.Option(
        False, "--wheelhouse", help="Bundle the agent's wheels per platform (offline Install)."
    ),
    wheel_source: Path | None = typer.Option(
        None, "--wheel-source", help="Take wheels from this folder instead of the package index."
    ),
    python_version: str = typer.Option("3.11", "--python-version", help="Device Python (X.Y)."),
    glibc: str = typer.Option("2.28", "--glibc", help="Device glibc, for manylinux wheel tags."),
    catch_all: bool = typer.Option(
        False, "--catch-all", help="Add a last manifest matching any Linux device (fp32)."
    ),
    ignore_preflight: bool = options.ignore_preflight(),
    force: bool = options.alias("--force", "--ignore-preflight"),
    overwrite: bool = options.overwrite("this component version's output"),
    window: float = options.duration_of("60s", "--window", "Monitoring window"),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Agent REST port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Agent REST bind address."),
    grpc_port: int | None = typer.Option(
        None,
        "--grpc-port",
        help="Also serve KServe v2 over gRPC on this port (the device then installs grpcio and "
        "protobuf); off when left out.",
    ),
    capture_fraction: float = typer.Option(
        0.0, "--capture-fraction", min=0.0, max=1.0, help="Share of requests captured to disk."
    ),
    publisher: str = typer.Option("edgekit", "--publisher", help="ComponentPublisher."),
    sign_key: Path | None = typer.Option(
        None,
        "--sign-key",
        help="Ed25519 private key (edgekit keygen): sign each model artifact and put the public "
        "key in the component configuration, so the agent serves only signed bundles.",
    ),
    targets_dir: Path = TARGETS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Package a bundle as a Greengrass v2 component in the Development Kit's layout."""
    request = PackageRequest(
        bundle_dir=bundle_dir,
        name=name,
        version=version,
        platforms=platforms,
        output=output,
        fmt=fmt,
        targets=parse_assignments(targets, "--target"),
        variants=parse_assignments(variants, "--variant"),
        bench_variants=[v.strip() for v in (bench_variants or "").split(",") if v.strip()],
        wheelhouse=wheelhouse or wheel_source is not None,
        wheel_source=wheel_source,
        python_version=python_version,
        glibc=glibc,
        force=options.merged(ignore_preflight, force, "--force", "--ignore-preflight"),
        overwrite=overwrite,
        catch_all=catch_all,
        publisher=publisher,
        targets_dir=targets_dir,
        sign_key=sign_key,
        settings=Settings(
            window_s=_whole_seconds(window),
            host=host,
            port=port,
            capture_fraction=capture_fraction,
            grpc_port=grpc_port,
        ),
    )
    with err.status("packaging…") as status:
        result = package(request, progress=lambda m: status.update(f"packaging: {m}…"))
    if as_json:
        print_json(result.to_dict())
        return
    plans = compact_table(f"{result.name} {result.version}")  # six columns: no room for borders
    for col in ("platform", "target", "variant", "provider", "session options", "why"):
        if col in ("platform", "target", "variant", "session options"):
            name_column(plans, col)
        else:
            plans.add_column(col)
    for p in result.plans:
        plans.add_row(
            p.label,
            shorten_middle(p.target or "-"),
            shorten_middle(p.variant),
            p.provider.replace("ExecutionProvider", ""),  # as tune shows it: CPU, CUDA
            fmt_mapping(p.session_options, sep="\n"),  # one setting a line
            shorten_end(p.reason),
        )
    out.print(plans)
    for p in result.plans:
        if p.notice:
            err.print(f"[yellow]notice:[/] {p.notice}", highlight=False)
    if result.findings:
        out.print(findings_table(result.findings))
    arts = Table(title="artifacts")
    for col in ("file", "size", "Base64 SHA-256"):
        arts.add_column(col)
    for file, digest in result.artifacts.items():
        arts.add_row(file, fmt_bytes((result.artifacts_dir / file).stat().st_size), digest)
    out.print(arts)
    v = result.validation
    lite = sum(1 for p in v.problems if p.lite)
    out.print(
        f"[green]✓[/] recipe [bold]{result.recipe_path}[/] ({v.size_bytes:,} bytes) validates: "
        f"{len(v.errors)} errors, {len(v.warnings) - lite} warnings, {lite} nucleus-lite notes"
    )
    out.print("local core (Greengrass CLI):")
    out.print(f"  {result.local_deploy_command()}", highlight=False, soft_wrap=True)
    out.print(
        "[dim]the accessControl uses {iot:thingName}: the nucleus must run with "
        "interpolateComponentConfiguration: true (nucleus 2.6+)[/]"
    )
