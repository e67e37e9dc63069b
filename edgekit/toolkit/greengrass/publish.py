"""`edgekit publish`: upload a packaged component's artifacts to S3 and create the component
version in AWS IoT Greengrass, then wait until it is DEPLOYABLE.

A component version is immutable, so an existing one is never overwritten: bump the version.
Every call goes through `Clients`, so --dry-run prints exactly what a real run would send.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import atomic
from edge_agent.errors import BadInputError, CheckFailedError
from edge_agent.hashing import sha256_b64_file
from edgekit.toolkit.greengrass import recipe_io, validate
from edgekit.toolkit.greengrass.aws import Call, Clients, component_arn, describe_version
from edgekit.toolkit.greengrass.validate import get_ci

READY = "DEPLOYABLE"
# S3 bucket naming rules (general purpose buckets): 3-63 of a-z 0-9 . -, letter or digit at both
# ends, no "..", not shaped like an IP address.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
IP_SHAPED = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
FAILED = ("FAILED", "DEPRECATED")


@dataclass
class PublishRequest:
    build_dir: Path
    bucket: str
    recipe: Path | None = None
    dry_run: bool = False
    wait_timeout_s: float = 300.0
    poll_s: float = 2.0


def check_bucket_name(bucket: str) -> str:
    if not BUCKET_NAME.match(bucket) or ".." in bucket or IP_SHAPED.match(bucket):
        raise BadInputError(
            f"`bucket` {bucket!r} is not a valid S3 bucket name",
            hint="3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter "
            "or digit (no s3:// prefix, no path)",
        )
    return bucket


def check_bucket_region(found: dict[str, Any], bucket: str, region: str) -> None:
    """Greengrass reads artifacts only from a bucket in its own region (else the component
    version FAILS with 'Specified artifact resource cannot be accessed')."""
    headers = (found.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    where = found.get("BucketRegion") or headers.get("x-amz-bucket-region")
    if where and where != region:
        raise BadInputError(
            f"S3 bucket {bucket!r} is in {where}, but Greengrass is called in {region}: the "
            "service cannot read artifacts from another region",
            hint=f"use a bucket in {region}, or pass `region` {where}",
        )


def find_recipe(build_dir: Path, recipe: Path | None) -> Path:
    if recipe is not None:
        return recipe
    recipes = sorted((Path(build_dir) / "recipes").glob("*.json")) + sorted(
        (Path(build_dir) / "recipes").glob("*.yaml")
    )
    if not recipes:
        raise BadInputError(
            f"no recipe in {Path(build_dir) / 'recipes'}",
            hint="pass the folder `edgekit package -o` wrote (greengrass-build)",
        )
    if len(recipes) > 1:
        listed = ", ".join(p.name for p in recipes)
        raise BadInputError(
            f"{build_dir} holds several recipes ({listed})", hint="choose one with `recipe` FILE"
        )
    return recipes[0]


def s3_artifacts(recipe: dict[str, Any]) -> list[str]:
    """File names of the recipe's s3: artifacts, each once, in recipe order."""
    seen: list[str] = []
    for manifest in get_ci(recipe, "Manifests")[1] or []:
        for art in get_ci(manifest, "Artifacts")[1] or []:
            uri = get_ci(art, "Uri")[1]
            if isinstance(uri, str) and uri.lower().startswith("s3://"):
                name = uri.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.append(name)
    return seen


def rewrite_uris(recipe: dict[str, Any], bucket: str, name: str, version: str) -> dict[str, Any]:
    out = json.loads(json.dumps(recipe))
    for manifest in get_ci(out, "Manifests")[1] or []:
        for art in get_ci(manifest, "Artifacts")[1] or []:
            key, uri = get_ci(art, "Uri")
            if isinstance(uri, str) and uri.lower().startswith("s3://"):
                art[key] = f"s3://{bucket}/{name}/{version}/{uri.rsplit('/', 1)[-1]}"
    return out


def publish(
    request: PublishRequest, clients: Clients, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Validate, upload the artifacts and create the component version, waiting until it is
    deployable; a dry run lists the calls it would make and makes none that change anything."""
    say = progress or (lambda _m: None)
    check_bucket_name(request.bucket)
    recipe, name, version, artifacts_dir, files = _checked_recipe(request)
    published = rewrite_uris(recipe, request.bucket, name, version)
    inline = json.dumps(published, indent=2).encode("utf-8")
    if request.dry_run:
        return _dry_run(request, clients, name, version, artifacts_dir, files, published)

    say("checking the account and the component version")
    region, arn = _new_version(clients, name, version)
    found = clients.call("s3", "head_bucket", Bucket=request.bucket)
    check_bucket_region(found, request.bucket, region)
    uploaded = _upload(request, clients, name, version, artifacts_dir, files, say)
    say("creating the component version")
    created = clients.call("greengrassv2", "create_component_version", inlineRecipe=inline)
    arn = created.get("arn", arn)
    status = wait_deployable(clients, arn, request.wait_timeout_s, request.poll_s, say)
    result = {
        "ok": True,
        "dry_run": False,
        "component": name,
        "version": version,
        "arn": arn,
        "state": status.get("componentState"),
        "uploaded": uploaded,
        "calls": [c.to_dict() for c in clients.calls],
    }
    atomic.write_json(
        Path(request.build_dir) / f"{name}-{version}.published.json",
        {**{k: v for k, v in result.items() if k != "calls"}, "recipe": published},
    )
    return result


def _checked_recipe(request: PublishRequest) -> tuple[dict[str, Any], Any, Any, Path, list[str]]:
    """The recipe (validated against its artifacts), its name and version, the artifacts
    folder and the S3 artifacts it names, each present there."""
    recipe_path = find_recipe(request.build_dir, request.recipe)
    recipe, _raw = recipe_io.read(recipe_path)
    name = get_ci(recipe, "ComponentName")[1]
    version = get_ci(recipe, "ComponentVersion")[1]
    artifacts_dir = Path(request.build_dir) / "artifacts" / str(name) / str(version)
    report = validate.validate_file(recipe_path, artifacts_dir=artifacts_dir)
    if not report.ok:
        raise CheckFailedError(
            f"{recipe_path} does not validate ({len(report.errors)} error(s)):\n"
            + "\n".join(f"  {p.path}: {p.message}" for p in report.errors),
            hint=f"run `edgekit recipe validate {recipe_path}` and fix the recipe",
        )
    files = s3_artifacts(recipe)
    for file in files:
        if not (artifacts_dir / file).is_file():
            raise BadInputError(f"artifact {file} is missing from {artifacts_dir}")
    return recipe, name, version, artifacts_dir, files


def _dry_run(
    request: PublishRequest,
    clients: Clients,
    name: Any,
    version: Any,
    artifacts_dir: Path,
    files: list[str],
    published: dict[str, Any],
) -> dict[str, Any]:
    """The calls publish would make, in order, with what each would send."""
    region = _dry_region(clients)
    arn = component_arn(region, "<account-id>", name, version)
    calls = [
        Call("sts", "GetCallerIdentity", {}),
        Call("greengrassv2", "DescribeComponent", {"arn": arn}),
        Call("s3", "HeadBucket", {"Bucket": request.bucket}),
        *[
            Call(
                "s3",
                "PutObject",
                {
                    "Bucket": request.bucket,
                    "Key": f"{name}/{version}/{file}",
                    "Body": f"<{artifacts_dir / file}, {(artifacts_dir / file).stat().st_size} bytes>",
                    "ChecksumSHA256": sha256_b64_file(artifacts_dir / file),
                },
            )
            for file in files
        ],
        Call("greengrassv2", "CreateComponentVersion", {"inlineRecipe": published}),
        Call("greengrassv2", "DescribeComponent", {"arn": arn}),
    ]
    return {
        "ok": True,
        "dry_run": True,
        "component": name,
        "version": version,
        "arn": arn,
        "calls": [c.to_dict() for c in calls],
    }


def _new_version(clients: Clients, name: Any, version: Any) -> tuple[str, str]:
    """The account's region and the version's ARN; refused when the version exists already
    (published component versions are immutable)."""
    region, arn, existing = describe_version(clients, name, version)
    if existing is not None:
        state = (existing.get("status") or {}).get("componentState", "?")
        raise BadInputError(
            f"component {name} {version} already exists in {region} ({state}); published "
            "component versions are immutable",
            hint="bump the version (edgekit package --version X.Y.Z) and package again",
        )
    return region, arn


def _upload(
    request: PublishRequest,
    clients: Clients,
    name: Any,
    version: Any,
    artifacts_dir: Path,
    files: list[str],
    say: Callable[[str], None],
) -> list[str]:
    """Upload each artifact with its SHA-256 checksum; the S3 URIs written."""
    uploaded = []
    for file in files:
        say(f"uploading {file}")
        path = artifacts_dir / file
        key = f"{name}/{version}/{file}"
        with open(path, "rb") as body:
            clients.call(
                "s3",
                "put_object",
                Bucket=request.bucket,
                Key=key,
                Body=body,
                ChecksumSHA256=sha256_b64_file(path),
            )
        uploaded.append(f"s3://{request.bucket}/{key}")
    return uploaded


def wait_deployable(
    clients: Clients, arn: str, timeout_s: float, poll_s: float, say: Callable[[str], None]
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = clients.call("greengrassv2", "describe_component", arn=arn).get("status") or {}
        state = status.get("componentState")
        if state == READY:
            return status
        if state in FAILED:
            errors = "; ".join(f"{k}: {v}" for k, v in (status.get("errors") or {}).items())
            raise CheckFailedError(
                f"Greengrass did not accept {arn}: {state}: {status.get('message', '')} {errors}".strip(),
                hint="the service could not read an artifact or the recipe; check the S3 "
                "objects and the Greengrass service role's access to the bucket",
            )
        if time.monotonic() >= deadline:
            raise CheckFailedError(
                f"{arn} is still {state} after {timeout_s:.0f} s",
                hint="check later with `aws greengrassv2 describe-component --arn ...`",
            )
        say(f"component is {state}; waiting")
        time.sleep(poll_s)


def _dry_region(clients: Clients) -> str:
    try:
        return clients.resolved_region() or "<region>"
    except Exception:
        return "<region>"
