"""`edgekit package`: a bundle to a Greengrass component in the Development Kit's layout.

Order matters: names are checked before anything else, the preflight runs before anything is
written, artifacts are built in a staging folder and validated with the recipe, and only then
moved into `greengrass-build/`. A failure leaves the output folder as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_agent import atomic, owned, signing
from edge_agent.contracts.bundle import FP32, Bundle
from edge_agent.errors import BadInputError, CheckFailedError
from edge_agent.hashing import sha256_b64_file
from edgekit.toolkit.greengrass import agent_artifact, model_artifact, recipe_io, validate
from edgekit.toolkit.greengrass import wheelhouse as wh
from edgekit.toolkit.greengrass.names import (
    Platform,
    check_component_name,
    check_component_version,
    parse_platform,
)
from edgekit.toolkit.greengrass.preflight import CPU, Finding, PreflightInput, run_preflight
from edgekit.toolkit.greengrass.recipe import (
    CATCH_ALL_KEY,
    Artifact,
    ManifestPlan,
    Settings,
    build_recipe,
)
from edgekit.toolkit.greengrass.targets import choose_target, target_facts

DEFAULT_PLATFORMS = ("linux/amd64", "linux/aarch64")


@dataclass
class PackageRequest:
    bundle_dir: Path
    name: str
    version: str
    platforms: list[str] = field(default_factory=lambda: list(DEFAULT_PLATFORMS))
    output: Path = Path("greengrass-build")
    fmt: str = "json"
    targets: dict[Platform, str] = field(default_factory=dict)
    variants: dict[Platform, str] = field(default_factory=dict)
    # more variants in each model archive, for the devices' bench command to compare ("all":
    # every variant that is not rejected); the agent still serves the planned one
    bench_variants: list[str] = field(default_factory=list)
    wheelhouse: bool = False
    wheel_source: Path | None = None  # a local folder of wheels instead of the package index
    python_version: str = "3.11"
    glibc: str = wh.DEFAULT_GLIBC
    force: bool = False
    overwrite: bool = False
    catch_all: bool = False
    description: str | None = None
    publisher: str = "edgekit"
    settings: Settings = field(default_factory=Settings)
    targets_dir: Path | None = None  # the user's target profiles, as for `edgekit tune`
    sign_key: Path | None = None  # Ed25519 private key: sign each model artifact's manifest


@dataclass
class PlatformPlan:
    platform: Platform | None  # None: the catch-all manifest
    target: str | None
    variant: str
    provider: str
    session_options: dict[str, Any]
    reason: str
    notice: str | None = None
    selected: bool = False  # the bundle has a selection entry for (target, variant)
    findings: list[Finding] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.platform.key if self.platform else CATCH_ALL_KEY

    @property
    def label(self) -> str:
        return self.platform.label if self.platform else "linux/* (catch-all)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.label,
            "target": self.target,
            "variant": self.variant,
            "provider": self.provider,
            "session_options": self.session_options,
            "reason": self.reason,
            "notice": self.notice,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class PackageResult:
    name: str
    version: str
    recipe_path: Path
    artifacts_dir: Path
    plans: list[PlatformPlan]
    artifacts: dict[str, str]  # file -> Base64 SHA-256
    validation: validate.Report
    report_path: Path

    @property
    def findings(self) -> list[Finding]:
        return [f for p in self.plans for f in p.findings]

    def local_deploy_command(self) -> str:
        root = self.recipe_path.parent.parent.resolve()
        return (
            "sudo /greengrass/v2/bin/greengrass-cli deployment create "
            f"--recipeDir {root / 'recipes'} --artifactDir {root / 'artifacts'} "
            f'--merge "{self.name}={self.version}"'
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "component": self.name,
            "version": self.version,
            "recipe": str(self.recipe_path),
            "artifacts_dir": str(self.artifacts_dir),
            "artifacts": self.artifacts,
            "platforms": [p.to_dict() for p in self.plans],
            "validation": self.validation.to_dict(),
            "local_deploy_command": self.local_deploy_command(),
            "report": str(self.report_path),
        }


PYTHON_VERSION = re.compile(r"^3\.(\d{1,2})$")
OLDEST_PYTHON_MINOR = 10  # pyproject requires-python
HOST = re.compile(r"^(?!-)[A-Za-z0-9.:\-]+$")  # a name, IPv4 or IPv6 (::), never a flag


def check_python_version(version: str) -> str:
    """X.Y of the device's python3: it picks the wheels and the environment markers."""
    m = PYTHON_VERSION.match(version)
    if not m or int(m.group(1)) < OLDEST_PYTHON_MINOR:
        raise BadInputError(
            f"--python-version {version!r} is not a Python 3 version like 3.11",
            hint=f"give the device's python3 as 3.X (3.{OLDEST_PYTHON_MINOR} or later)",
        )
    return version


def check_settings(settings: Settings, publisher: str) -> None:
    """Values that reach the Startup shell script through {configuration:/...} must be plain
    words: an empty --host would swallow the next flag, spaces or ; would split the command."""
    if not HOST.match(settings.host):
        raise BadInputError(
            f"--host {settings.host!r} is not an address or host name",
            hint="e.g. 127.0.0.1 (this device only) or 0.0.0.0 (every interface)",
        )
    if not publisher.strip():
        raise BadInputError("`publisher` is empty", hint="e.g. `publisher` 'Example Corp'")
    grpc = settings.grpc_port
    if grpc is not None and (
        type(grpc) is not int or not 0 < grpc < 65536 or grpc == settings.port
    ):
        raise BadInputError(
            f"grpc_port {grpc!r} is not a TCP port from 1 to 65535 other than the REST port "
            f"({settings.port})",
            hint="e.g. grpc_port 8081, or leave it out to keep the gRPC endpoint off",
        )


def agent_extras(settings: Settings, signed: bool) -> tuple[str, ...]:
    """Optional agent requirements this component needs on the device: cryptography to check
    signed bundles, grpcio and protobuf when the gRPC endpoint is on."""
    extras: tuple[str, ...] = ("cryptography",) if signed else ()
    if settings.grpc_port is not None:
        extras += agent_artifact.GRPC_REQUIREMENTS
    return extras


def ort_pin() -> str:
    """The onnxruntime version the component pins: the one installed and tested here."""
    return agent_artifact.installed_version("onnxruntime")


def plan_platforms(bundle: Bundle, request: PackageRequest) -> list[PlatformPlan]:
    platforms = [parse_platform(p) for p in request.platforms]
    if not platforms:
        raise BadInputError("no `platforms` given", hint="e.g. `platforms` linux/amd64")
    if len(set(platforms)) != len(platforms):
        raise BadInputError("the same `platforms` is given twice")
    for p in platforms:
        if p.os != "linux":
            raise BadInputError(
                f"--platform {p.label}: edgekit's component runs its lifecycle as POSIX shell "
                "scripts in a Python virtual environment, which only Linux cores run",
                hint="package for linux/amd64 or linux/aarch64",
            )
    for p in {*request.targets, *request.variants}:
        if p not in platforms:
            raise BadInputError(
                f"--target/--variant name {p.label}, which is not one of the --platform values"
            )
    selection = bundle.manifest.get("selection") or {}
    plans = []
    for p in platforms:
        choice = choose_target(p, selection, request.targets.get(p), request.targets_dir)
        entry = choice.selection
        notice = None
        if p in request.variants:
            variant = request.variants[p]
            reason = f"--variant {p.label}={variant}"
            entry = entry if entry and entry.get("variant") == variant else None
        elif entry is not None:
            variant = entry["variant"]
            reason = f"tune's selection for {choice.target}: {entry.get('reason', '')}".rstrip(": ")
        else:
            variant = FP32
            reason = "fp32 fallback"
            notice = (
                f"no tuned selection for {p.label} (target {choice.target}): packaging the fp32 "
                "variant with default session options; run `edgekit tune` for a hardware-aware "
                "choice, or pass --variant PLATFORM=NAME"
            )
        v = bundle.variant(variant)
        if v.get("rejected"):
            raise BadInputError(
                f"variant {variant!r} chosen for {p.label} was rejected: {v.get('reject_reason')}",
                hint="choose another with `variants` PLATFORM=NAME",
            )
        plans.append(
            PlatformPlan(
                platform=p,
                target=choice.target,
                variant=variant,
                provider=(entry or {}).get("provider") or CPU,
                session_options=dict((entry or {}).get("session_options") or {}),
                reason=reason,
                notice=notice,
                selected=entry is not None,
            )
        )
    if request.catch_all:
        plans.append(
            PlatformPlan(None, None, FP32, CPU, {}, "catch-all manifest (--catch-all), fp32")
        )
    return plans


def bench_variants(bundle: Bundle, wanted: list[str]) -> list[str]:
    """The extra variants to ship for on-device benchmarks: named ones must exist and not be
    rejected; "all" is every variant that is not rejected."""
    if wanted == ["all"]:
        return [n for n, v in bundle.variants.items() if not v.get("rejected")]
    unknown = [v for v in wanted if v not in bundle.variants]
    if unknown:
        raise BadInputError(
            f"--bench-variants {','.join(unknown)}: not in the bundle "
            f"(it has {sorted(bundle.variants)})",
            hint="name variants of the bundle, or pass `bench_variants` all",
        )
    rejected = [v for v in wanted if bundle.variant(v).get("rejected")]
    if rejected:
        raise BadInputError(
            f"--bench-variants {','.join(rejected)}: rejected by the gate, nothing to compare",
            hint="leave rejected variants out",
        )
    return list(dict.fromkeys(wanted))


def preflight(
    bundle: Bundle, plans: list[PlatformPlan], ort_version: str, targets_dir: Path | None = None
) -> None:
    for plan in plans:
        if plan.platform is None or plan.target is None:
            continue
        plan.findings = run_preflight(
            PreflightInput(
                bundle=bundle,
                variant=plan.variant,
                platform=plan.label,
                target=plan.target,
                facts=target_facts(plan.target, targets_dir),
                provider=plan.provider,
                session_options=plan.session_options,
                ort_version=ort_version,
            )
        )


def _findings_text(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.platform} ({f.target}) {f.check}: {f.message}" for f in findings)


def _checked_request(request: PackageRequest) -> tuple[str, str]:
    """The component name and version, once every option was checked (nothing is written)."""
    name = check_component_name(request.name)
    version = check_component_version(request.version)
    if request.fmt not in recipe_io.FORMATS:
        raise BadInputError(f"`fmt` {request.fmt!r} is not json or yaml")
    if request.wheel_source is not None and not Path(request.wheel_source).is_dir():
        raise BadInputError(f"`wheel_source` {request.wheel_source} is not a folder")
    check_python_version(request.python_version)
    check_settings(request.settings, request.publisher)
    if Path(request.output).exists() and not Path(request.output).is_dir():
        raise BadInputError(
            f"-o {request.output} is a file, not a folder",
            hint="pass the build folder (greengrass-build)",
        )
    check_build_folder(Path(request.output), request.bundle_dir)
    return name, version


def _preflight_passed(bundle: Bundle, plans: list[Any], request: PackageRequest) -> str:
    """Run the compatibility preflight; its errors stop packaging unless --force. Returns the
    onnxruntime pin it checked against."""
    ort_version = ort_pin()
    preflight(bundle, plans, ort_version, request.targets_dir)
    errors = [f for p in plans for f in p.findings if f.severity == "error"]
    if errors and not request.force:
        raise CheckFailedError(
            f"compatibility preflight failed ({len(errors)} error(s)):\n{_findings_text(errors)}",
            hint="fix the bundle or the targets, or pass `force` to package anyway",
            details={"findings": [f.to_dict() for p in plans for f in p.findings]},
        )
    return ort_version


def _check_not_packaged(
    request: PackageRequest,
    name: str,
    version: str,
    output: Path,
    final_artifacts: Path,
    recipe_path: Path,
) -> None:
    """Component versions are immutable: an existing one is replaced only with --overwrite,
    and only when this tool wrote it."""
    if (final_artifacts.exists() or recipe_path.exists()) and not request.overwrite:
        raise BadInputError(
            f"{name} {version} is already packaged in {output}",
            hint="component versions are immutable: bump `version`, or pass `overwrite`",
        )
    if final_artifacts.exists() or recipe_path.exists():
        check_version_ours(output, name, version, final_artifacts)


def _install_marker(python_version: str, requirements: str, wheel_digests: dict[str, str]) -> str:
    """The venv holds only the pinned requirements: key its marker on what goes into it, not on
    the component version or the model, so a new version with the same requirements (a
    re-trained model, a config change) starts without reinstalling on every device."""
    digest = hashlib.sha256(
        (python_version + requirements + json.dumps(sorted(wheel_digests.items()))).encode()
    ).hexdigest()[:12]
    return ".edgekit-installed-" + digest


def _validated(staged_recipe: Path, stage: Path) -> validate.Report:
    """The generated recipe's validation report; an error when Greengrass would refuse it."""
    report = validate.validate_file(staged_recipe, artifacts_dir=stage)
    if report.errors and all(p.code == "size" for p in report.errors):
        raise CheckFailedError(
            f"the recipe would be {report.size_bytes:,} bytes; Greengrass tools refuse "
            f"recipes over {validate.MAX_RECIPE_BYTES:,}",
            hint="package fewer `platforms` values per component, drop `catch_all`, or "
            "choose a shorter --name (it recurs in topics and policy ids)",
        )
    if not report.ok:
        raise CheckFailedError(
            "the generated recipe does not validate:\n"
            + "\n".join(f"  {p.path}: {p.message}" for p in report.errors),
            hint="this is an edgekit bug; please report it with the bundle's manifest",
        )
    return report


def _platform_artifacts(
    plan: Any,
    request: PackageRequest,
    bundle: Bundle,
    stage: Path,
    signer: Any,
    requirements: str,
    agent_zip: str,
    digests: dict[str, str],
    wheel_digests: dict[str, str],
    say: Callable[[str], None],
    bench_extra: list[str],
) -> ManifestPlan:
    """One platform's artifacts (its model archive, its wheelhouse when asked) built into the
    stage, their digests recorded, and the recipe manifest that names them."""
    say(f"model archive for {plan.label}")
    shipped = [plan.variant, *(v for v in bench_extra if v != plan.variant)]
    model_zip = model_artifact.build_model_archive(bundle, shipped, stage, signer)
    digests[model_zip.name] = sha256_b64_file(model_zip)
    artifacts = [
        Artifact(agent_zip, digests[agent_zip]),
        Artifact(model_zip.name, digests[model_zip.name]),
    ]
    wheel_dir = None
    if request.wheelhouse and plan.platform is not None:
        say(f"wheelhouse for {plan.label}")
        wheels = wh.build_wheelhouse(
            plan.platform,
            requirements,
            stage,
            request.python_version,
            request.glibc,
            request.wheel_source,
        )
        digests[wheels.name] = sha256_b64_file(wheels)
        wheel_digests[wheels.name] = digests[wheels.name]
        artifacts.append(Artifact(wheels.name, digests[wheels.name]))
        wheel_dir = wh.unpack_dir(plan.platform)
    return ManifestPlan(
        key=plan.key,
        platform=(
            plan.platform.recipe_platform()
            if plan.platform
            else {"os": "linux", "architecture": "*"}
        ),
        label=f"{plan.label} {plan.target or 'any'} {plan.variant}",
        target=plan.target if plan.selected else None,
        variant=plan.variant,
        provider=plan.provider,
        session_options=plan.session_options,
        model_dir=model_artifact.unpack_dir(shipped),
        artifacts=artifacts,
        wheel_dir=wheel_dir,
        python_version=request.python_version,
    )


def package(
    request: PackageRequest, progress: Callable[[str], None] | None = None
) -> PackageResult:
    """Check, preflight, build the artifacts and the recipe beside their final place, and
    move them in only once the recipe validates."""
    say = progress or (lambda _msg: None)
    name, version = _checked_request(request)
    request, signer = _with_signer(request)
    bundle = Bundle.open(request.bundle_dir)
    plans = plan_platforms(bundle, request)
    bench_extra = bench_variants(bundle, request.bench_variants)

    say("preflight")
    ort_version = _preflight_passed(bundle, plans, request)
    output = Path(request.output)
    final_artifacts = output / "artifacts" / name / version
    recipe_path = output / "recipes" / recipe_io.file_name(name, version, request.fmt)
    _check_not_packaged(request, name, version, output, final_artifacts, recipe_path)

    # Built beside its final place and renamed in only once the recipe validates: a failure
    # leaves the output as it was (an existing version is swapped out only with --overwrite),
    # without even the empty folders this run made.
    made = [d for d in (output, output / "artifacts", final_artifacts.parent) if not d.exists()]
    with (
        _removed_if_empty_on_failure(made),
        atomic.staging_dir(final_artifacts, replace=request.overwrite) as stage,
    ):
        text, report, digests = _build_staged(
            stage, request, bundle, plans, signer, name, version, recipe_path.name, bench_extra, say
        )
    _write_recipe(recipe_path, text, request.fmt)

    report.path = str(recipe_path)
    report.artifacts_dir = str(final_artifacts)
    result = PackageResult(
        name, version, recipe_path, final_artifacts, plans, digests, report, Path()
    )
    result.report_path = output / f"{name}-{version}.edgekit.json"
    atomic.write_json(
        result.report_path,
        {
            **result.to_dict(),
            "bundle": str(Path(request.bundle_dir).resolve()),
            "onnxruntime_pin": ort_version,
        },
    )
    return result


def _with_signer(request: PackageRequest) -> tuple[PackageRequest, Any]:
    """With --sign-key: the private key, and the request with its public key set as the
    agent's verify key (the device checks the bundle it is given)."""
    if request.sign_key is None:
        return request, None
    signer = signing.load_private_key(request.sign_key)
    key = signing.public_pem(signer.public_key())
    return replace(request, settings=replace(request.settings, verify_key=key)), signer


def _build_staged(
    stage: Path,
    request: PackageRequest,
    bundle: Bundle,
    plans: list[PlatformPlan],
    signer: Any,
    name: str,
    version: str,
    recipe_name: str,
    bench_extra: list[str],
    say: Callable[[str], None],
) -> tuple[str, validate.Report, dict[str, str]]:
    """The agent archive and each platform's artifacts in `stage`, and the recipe text,
    validated against them; returns the text, the validation report and the digests."""
    real = [p.platform for p in plans if p.platform is not None]
    requirements = agent_artifact.requirements_text(
        real or [Platform("linux", "amd64")],
        request.python_version,
        agent_extras(request.settings, signer is not None),
    )
    say("agent archive")
    agent_zip = agent_artifact.build_agent_archive(stage, requirements)
    digests: dict[str, str] = {agent_zip.name: sha256_b64_file(agent_zip)}
    manifest_plans: list[ManifestPlan] = []
    wheel_digests: dict[str, str] = {}
    for plan in plans:
        manifest_plans.append(
            _platform_artifacts(
                plan,
                request,
                bundle,
                stage,
                signer,
                requirements,
                agent_zip.name,
                digests,
                wheel_digests,
                say,
                bench_extra,
            )
        )
    marker = _install_marker(request.python_version, requirements, wheel_digests)
    recipe = build_recipe(
        name=name,
        version=version,
        description=request.description
        or f"edgekit model {bundle.manifest['name']} ({bundle.task}) served by edge_agent",
        publisher=request.publisher,
        plans=manifest_plans,
        settings=request.settings,
        install_marker=marker,
    )
    text = recipe_io.dumps(recipe, request.fmt)
    staged_recipe = stage / recipe_name
    staged_recipe.write_text(text, "utf-8")
    report = _validated(staged_recipe, stage)
    say("writing")
    staged_recipe.unlink()
    return text, report, digests


def _write_recipe(recipe_path: Path, text: str, fmt: str) -> None:
    """Write the recipe, and remove this version's recipe in the other format (a repackage
    from YAML to JSON leaves one recipe, not two)."""
    atomic.write_text(recipe_path, text)
    for other in recipe_io.FORMATS:
        stale = recipe_path.with_suffix(f".{other}")
        if other != fmt and stale.exists():
            stale.unlink()


BUILD_ENTRIES = {"recipes", "artifacts", owned.MARKER}
REPORT_SUFFIX = ".edgekit.json"


def check_build_folder(output: Path, bundle_dir: Path | None) -> None:
    """-o is a Greengrass build folder: new, or one that holds only recipes/, artifacts/ and our
    package reports. Never the current folder, one above it, or one holding the bundle."""
    owned.check_location(output, [bundle_dir] if bundle_dir else [])
    if not output.is_dir():
        return
    foreign = sorted(
        p.name
        for p in output.iterdir()
        if p.name not in BUILD_ENTRIES
        and not p.name.endswith(REPORT_SUFFIX)
        and not owned.is_our_temp(p.name)
    )
    if foreign:
        raise BadInputError(
            f"-o {output}: holds files that are not a Greengrass build's "
            f"({', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}); nothing was changed",
            hint="give -o a build folder of its own, e.g. -o greengrass-build",
        )


def check_version_ours(output: Path, name: str, version: str, artifacts_dir: Path) -> None:
    """--overwrite replaces a packaged version only when edgekit packaged it: its report is
    there and names every file in the version's artifact folder."""
    report = output / f"{name}-{version}{REPORT_SUFFIX}"
    try:
        listed = set(json.loads(report.read_text("utf-8")).get("artifacts", {}))
    except (OSError, ValueError, AttributeError):
        listed = None
    where = f"-o {output}: {name} {version}"
    if listed is None:
        raise BadInputError(
            f"{where} was not packaged by edgekit (no {report.name}); nothing was changed",
            hint="bump `version`, or move that version away yourself",
        )
    if artifacts_dir.is_dir():
        foreign = sorted(
            p.name
            for p in artifacts_dir.iterdir()
            if p.name not in listed and not owned.is_our_temp(p.name)
        )
        if foreign:
            raise BadInputError(
                f"{where} holds files edgekit did not write ({', '.join(foreign[:5])}); "
                "nothing was changed",
                hint="move those files away, or bump `version`",
            )


def is_our_build(folder: Path) -> bool:
    """A whole build folder edgekit may replace: only build entries, and every component version
    in it (recipe and artifact folder) has the report `edgekit package` writes beside it. A file
    or a link is never one (it would pass every check below, having no entries)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        check_build_folder(folder, None)
    except BadInputError:
        return False
    reports = {p.name.removesuffix(REPORT_SUFFIX) for p in folder.glob(f"*{REPORT_SUFFIX}")}
    recipes = folder / "recipes"
    if recipes.is_dir() and any(p.stem not in reports for p in recipes.iterdir()):
        return False
    artifacts = folder / "artifacts"
    if artifacts.is_dir():
        for component in artifacts.iterdir():
            versions = list(component.iterdir()) if component.is_dir() else [component]
            if any(f"{component.name}-{v.name}" not in reports for v in versions):
                return False
    return True


@contextlib.contextmanager
def _removed_if_empty_on_failure(folders: list[Path]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for folder in reversed(folders):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        raise
