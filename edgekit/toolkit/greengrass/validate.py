"""Recipe validation: the official schema on lower-cased keys, then the checks it does not make.

Every problem carries the JSON path of the offending value in the recipe as written. Errors are
what would make the Development Kit, the service or the nucleus refuse or misrun the recipe;
warnings are doubtful but legal; `lite` warnings are where Greengrass nucleus lite would refuse.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge_agent.hashing import sha256_b64_file as b64_sha256
from edgekit.toolkit.greengrass import casing, jsonpointer, names, recipe_io, versions
from edgekit.toolkit.greengrass import skipif as skipif_rule
from edgekit.toolkit.greengrass.casing import child

MAX_RECIPE_BYTES = 16_000  # the Development Kit's MAX_RECIPE_FILE_SIZE_BYTES
URI_SCHEMES = ("s3", "greengrass", "docker")
NAMESPACES = ("artifacts", "configuration", "work", "kernel", "iot")
KNOWN_KEYS = {
    "artifacts": ("path", "decompressedPath"),
    "work": ("path",),
    "kernel": ("rootPath",),
    "iot": ("thingName",),
}
LIFECYCLE_PHASES = ("bootstrap", "install", "startup", "run", "shutdown", "recover")
LITE_UNSUPPORTED_PHASES = ("bootstrap", "shutdown", "recover")
NUCLEUS = "aws.greengrass.Nucleus"
# The platform values the nucleus reports (PlatformResolver).
PLATFORM_VALUES = {
    "os": names.OS_VALUES,
    "architecture": names.ARCH_VALUES,
    "architecture.detail": names.ARCH_DETAIL_VALUES,
}
VAR = re.compile(r"\{([^{}\s]+)\}")
LEGACY_WILDCARD_KEYS = ("os", "architecture")
# Phases whose Timeout the nucleus casts straight to an integer (Run, Bootstrap).
INTEGER_TIMEOUT_PHASES = ("run", "bootstrap")


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning"
    path: str
    code: str
    message: str
    lite: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def schema() -> dict[str, Any]:
    text = (
        resources.files("edgekit.toolkit.greengrass")
        .joinpath("recipe_schema.json")
        .read_text("utf-8")
    )
    return json.loads(text)


def get_ci(obj: Any, key: str) -> tuple[str | None, Any]:
    """Case-insensitive lookup, as the Java nucleus reads recipe keys."""
    if not isinstance(obj, dict):
        return None, None
    for k, v in obj.items():
        if str(k).lower() == key.lower():
            return str(k), v
    return None, None


# -- nucleus features ---------------------------------------------------------------------------


def nucleus_requirements(recipe: dict[str, Any]) -> list[tuple[str, str]]:
    """(minimum nucleus version, why) for every version-dependent feature the recipe uses."""
    needs: list[tuple[str, str]] = []
    config_text = json.dumps(_default_configuration(recipe)[1] or {})
    if VAR.search(config_text) and any(_parse_var(m) for m in VAR.findall(config_text)):
        needs.append(
            (
                "2.6.0",
                "recipe variables in ComponentConfiguration (e.g. {iot:thingName} in "
                "accessControl) are interpolated from nucleus 2.6.0 "
                "(with interpolateComponentConfiguration)",
            )
        )
    lifecycle_text = json.dumps(
        [get_ci(m, "Lifecycle")[1] for m in _manifests(recipe)] + [get_ci(recipe, "Lifecycle")[1]]
    )
    if "{iot:thingName}" in lifecycle_text:
        needs.append(("2.3.0", "{iot:thingName} needs nucleus 2.3.0"))
    if "{work:path}" in lifecycle_text:
        needs.append(("2.0.4", "{work:path} needs nucleus 2.0.4"))
    return needs


def minimum_nucleus(recipe: dict[str, Any]) -> str:
    needs = nucleus_requirements(recipe)
    return max((v for v, _ in needs), key=versions.sort_key, default="2.0.0")


# -- helpers ------------------------------------------------------------------------------------


def _manifests(recipe: dict[str, Any]) -> list[Any]:
    value = get_ci(recipe, "Manifests")[1]
    return value if isinstance(value, list) else []


def _default_configuration(recipe: dict[str, Any]) -> tuple[str, Any]:
    ckey, config = get_ci(recipe, "ComponentConfiguration")
    dkey, default = get_ci(config, "DefaultConfiguration")
    if ckey is None or dkey is None:
        return "$", None
    return child(child("$", ckey), dkey), default


def _strings(node: Any, path: str):
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, child(path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")


def _numbers(node: Any, path: str, pointer: str):
    """(JSON path, JSON pointer, value) of every number, accessControl left out."""
    if isinstance(node, bool):
        return
    if isinstance(node, (int, float)):
        yield path, pointer, node
    elif isinstance(node, dict):
        for k, v in node.items():
            if pointer == "" and str(k) == "accessControl":
                continue
            yield from _numbers(v, child(path, k), pointer + jsonpointer.join([k]))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{path}[{i}]", f"{pointer}/{i}")


def _parse_var(body: str) -> tuple[str | None, str, str] | None:
    """`artifacts:path` -> (None, artifacts, path); `dep:configuration:/x` -> (dep, ...)."""
    parts = body.split(":", 1)
    if len(parts) < 2:
        return None
    if parts[0] in NAMESPACES:
        return None, parts[0], parts[1]
    rest = parts[1].split(":", 1)
    if len(rest) == 2 and rest[0] in NAMESPACES:
        return parts[0], rest[0], rest[1]
    return None


def _wildcard(key: str, value: Any) -> bool:
    """PlatformHelper.isAttributeSatisfied: null and `*` match anything; so do `all` and `any`
    for os and architecture (kept there for old recipes)."""
    return value in ("*", None) or (key in LEGACY_WILDCARD_KEYS and value in ("all", "any"))


def _artifact_name(uri: str) -> str:
    return urlparse(uri).path.rsplit("/", 1)[-1] if "://" in uri else uri.rsplit("/", 1)[-1]


def _zip_stem(name: str) -> str:
    return name[:-4] if name.lower().endswith(".zip") else name.rsplit(".", 1)[0]


# -- the official schema, and what the nucleus tolerates of it ---------------------------------


@dataclass(frozen=True)
class Tolerance:
    """A schema finding that the nucleus accepts, and the nucleus code that accepts it."""

    code: str
    applies: Callable[[Any], bool]  # on a jsonschema ValidationError
    why: str


def _last(err: Any) -> str:
    return str(err.absolute_path[-1]).lower() if err.absolute_path else ""


TOLERATED = (
    Tolerance(
        "null-step",
        lambda e: e.instance is None and _last(e) in (*LIFECYCLE_PHASES, "uninstall"),
        "a lifecycle step with no value is skipped (GenericExternalService.run: NothingDone)",
    ),
    Tolerance(
        "null-platform",
        lambda e: e.instance is None and _last(e) == "platform",
        "a manifest with no Platform matches every device (PlatformHelper: no platform is "
        "a wild-card)",
    ),
    Tolerance(
        "dependency-type-case",
        lambda e: (
            _last(e) == "dependencytype"
            and isinstance(e.instance, str)
            and e.instance.upper() in ("HARD", "SOFT")
        ),
        "DependencyType is read without regard to case (DependencyType enum, case-insensitive)",
    ),
)


def schema_findings(recipe: dict[str, Any]) -> list[Problem]:
    """The official schema's findings on the lower-cased recipe: an error where the nucleus
    refuses too, a warning naming the schema rule where the nucleus accepts the recipe."""
    import jsonschema

    out: list[Problem] = []
    validator = jsonschema.Draft7Validator(schema())
    lowered = casing.lower_keys(recipe)
    for err in sorted(validator.iter_errors(lowered), key=lambda e: list(map(str, e.path))):
        path = _original_path(recipe, list(err.absolute_path))
        detail = err.message
        if err.context:
            best = jsonschema.exceptions.best_match(err.context)
            if best is not None:
                detail = best.message
                path = _original_path(recipe, list(err.absolute_path) + list(best.path))
        rule = "/".join(str(p) for p in err.absolute_schema_path)
        tolerated = next((t for t in TOLERATED if t.applies(err)), None)
        if tolerated is None:
            out.append(Problem("error", path, "schema", f"official recipe schema: {detail}"))
        else:
            out.append(
                Problem(
                    "warning",
                    path,
                    f"schema-{tolerated.code}",
                    f"official recipe schema rule {rule}: {detail}; the nucleus accepts it: "
                    f"{tolerated.why}",
                )
            )
    return out


def _original_path(recipe: dict[str, Any], parts: list[Any]) -> str:
    path, node = "$", recipe
    for part in parts:
        if isinstance(node, dict):
            key, node = get_ci(node, str(part))
            path = child(path, key if key is not None else part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path = f"{path}[{part}]"
        else:
            path = child(path, part)
    return path


# -- the validator ------------------------------------------------------------------------------


class _Validator:
    def __init__(self, recipe: dict[str, Any], artifacts_dir: Path | None) -> None:
        self.recipe = recipe
        self.artifacts_dir = artifacts_dir
        self.problems: list[Problem] = []
        self.dependencies = {
            str(k) for k in (get_ci(recipe, "ComponentDependencies")[1] or {}) if k
        }
        self.config_path, self.config = _default_configuration(recipe)

    def add(self, severity: str, path: str, code: str, message: str, lite: bool = False) -> None:
        self.problems.append(Problem(severity, path, code, message, lite))

    def error(self, path: str, code: str, message: str) -> None:
        self.add("error", path, code, message)

    def warn(self, path: str, code: str, message: str) -> None:
        self.add("warning", path, code, message)

    def lite(self, path: str, code: str, message: str) -> None:
        self.add("warning", path, f"lite-{code}", f"nucleus lite: {message}", lite=True)

    # schema
    def check_schema(self) -> None:
        for path, keys in casing.case_collisions(self.recipe):
            self.error(path, "case-collision", f"keys {keys} differ only by case")
        self.problems += schema_findings(self.recipe)

    # identity
    def check_identity(self) -> None:
        key, version = get_ci(self.recipe, "ComponentVersion")
        why = versions.problem(version) if isinstance(version, str) else None
        if why is not None:
            self.error(child("$", key), "version", f"ComponentVersion {why}")
        key, name = get_ci(self.recipe, "ComponentName")
        if isinstance(name, str) and set(name) == {"."}:
            self.error(child("$", key), "name", f"ComponentName {name!r} is not usable as a path")
        key, ctype = get_ci(self.recipe, "ComponentType")
        if ctype not in (None, "aws.greengrass.generic"):
            self.lite(child("$", key), "type", f"only aws.greengrass.generic runs, not {ctype}")
        for path, written, canonical in casing.noncanonical_keys(self.recipe):
            self.lite(
                path, "casing", f"keys are case-sensitive: write {canonical!r}, not {written!r}"
            )

    # manifests
    def check_manifests(self) -> None:
        mkey, manifests = get_ci(self.recipe, "Manifests")
        if isinstance(manifests, list) and not manifests:
            self.error(child("$", mkey), "no-manifest", "no manifest: no device can run it")
        seen: dict[str, int] = {}
        for i, manifest in enumerate(_manifests(self.recipe)):
            path = f"{child('$', mkey)}[{i}]"
            if not isinstance(manifest, dict):
                continue
            self.check_platform(manifest, path, i, len(_manifests(self.recipe)), seen)
            self.check_lifecycle(manifest, path)
            self.check_artifacts(manifest, path)
        gkey, glob = get_ci(self.recipe, "Lifecycle")
        if isinstance(glob, dict) and glob:
            self.check_steps(glob, child("$", gkey), global_=True)

    def check_platform(
        self, manifest: dict, path: str, index: int, count: int, seen: dict[str, int]
    ) -> None:
        pkey, platform = get_ci(manifest, "Platform")
        ppath = child(path, pkey or "Platform")
        platform = platform if isinstance(platform, dict) else {}
        values = {str(k).lower(): v for k, v in platform.items()}
        catch_all = all(_wildcard(k, v) for k, v in values.items())
        if catch_all and index < count - 1:
            self.warn(
                ppath,
                "catch-all-first",
                f"manifest {index} matches every device, so the manifests after it never run; "
                "put the catch-all last",
            )
        signature = json.dumps(values, sort_keys=True)
        if signature in seen:
            self.warn(
                ppath,
                "duplicate-platform",
                f"same platform as manifest {seen[signature]}: this one never matches",
            )
        seen.setdefault(signature, index)
        if "runtime" not in values:
            self.lite(ppath, "runtime", 'needs a "runtime" platform key ("*" or aws_nucleus_lite)')
        for key, value in platform.items():
            low = str(key).lower()
            vpath = child(ppath, key)
            if not isinstance(value, str):
                continue
            if value.startswith("/") and value.endswith("/") and len(value) > 1:
                self.lite(vpath, "regex", "regular expressions in platforms are not supported")
                self.check_regex(vpath, low, value[1:-1])
                continue
            if value == "*":
                continue
            if _wildcard(low, value):
                self.warn(
                    vpath,
                    "platform-legacy-wildcard",
                    f"{low} {value!r} is a wildcard to the nucleus (PlatformHelper keeps it for "
                    "old recipes); write '*'",
                )
                continue
            allowed = PLATFORM_VALUES.get(low)
            if allowed and value not in allowed:
                better = names.ARCH_ALIASES.get(value) if low == "architecture" else None
                if low == "architecture.detail" and re.fullmatch(r"arm(\d)(\d)", value):
                    better = f"armv{value[3]}l"
                hint = f" (use {better!r})" if better else ""
                self.error(
                    vpath,
                    "platform-value",
                    f"{low} {value!r} is never reported by the nucleus, so this manifest never "
                    f"matches{hint}; values: {', '.join(allowed)}",
                )

    def check_regex(self, path: str, key: str, pattern: str) -> None:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            self.error(path, "platform-regex", f"invalid regular expression: {exc}")
            return
        allowed = PLATFORM_VALUES.get(key)
        if allowed and not any(rx.fullmatch(v) for v in allowed):
            self.error(
                path,
                "platform-value",
                f"/{pattern}/ matches no {key} value the nucleus reports ({', '.join(allowed)})",
            )

    def check_lifecycle(self, manifest: dict, path: str) -> None:
        lkey, lifecycle = get_ci(manifest, "Lifecycle")
        if isinstance(lifecycle, dict):
            self.check_steps(lifecycle, child(path, lkey))

    def check_steps(self, lifecycle: dict, path: str, global_: bool = False) -> None:
        phases = {str(k).lower(): (str(k), v) for k, v in lifecycle.items()}
        if global_ and not any(p in phases for p in LIFECYCLE_PHASES):
            for key, value in lifecycle.items():  # selection keys, each holding a lifecycle
                if isinstance(value, dict):
                    self.check_steps(value, child(path, key))
            return
        if "run" in phases and "startup" in phases:
            self.error(path, "run-and-startup", "a lifecycle has either Run or Startup, never both")
        for low in LITE_UNSUPPORTED_PHASES:
            if low in phases:
                self.lite(child(path, phases[low][0]), "phase", f"{phases[low][0]} is not run")
        for low, (key, step) in phases.items():
            if isinstance(step, dict):
                self.check_step(low, step, child(path, key))

    def check_step(self, phase: str, step: dict, path: str) -> None:
        skey, skipif = get_ci(step, "Skipif")
        if skey is not None:
            self.lite(child(path, skey), "skipif", "Skipif is not supported")
            if isinstance(skipif, str):
                self.check_skipif(child(path, skey), skipif)
        tkey, timeout = get_ci(step, "Timeout")
        if timeout is not None and (
            (isinstance(timeout, str) and not timeout.isdigit())
            or (isinstance(timeout, int) and timeout <= 0)
        ):
            self.error(
                child(path, tkey),
                "timeout",
                f"Timeout {timeout!r} is not a positive number of seconds",
            )
        elif isinstance(timeout, str) and phase in INTEGER_TIMEOUT_PHASES:
            self.error(
                child(path, tkey),
                "timeout-type",
                f"Timeout {timeout!r} is a string: the nucleus casts the {phase} timeout to an "
                "integer and fails on a string; write it as a number",
            )
        pkey, privileged = get_ci(step, "RequiresPrivilege")
        if privileged is True or str(privileged).lower() == "true":
            self.warn(
                child(path, pkey),
                "privileged",
                "RequiresPrivilege runs this step as root; least privilege: drop it unless the "
                "step cannot work as the component's user",
            )

    def check_skipif(self, path: str, skipif: str) -> None:
        rule = skipif_rule.parse(skipif)
        if rule is None:
            self.error(
                path,
                "skipif",
                f"Skipif {skipif!r}: the nucleus takes only 'exists PATH' or 'onpath PROGRAM' "
                "(optionally after !) and fails the step on anything else",
            )
        elif rule.kind == "exists" and not rule.arg.startswith(("/", "~", "{")):
            self.warn(
                path,
                "skipif-relative",
                f"Skipif 'exists {rule.arg}': the nucleus resolves the path from its own "
                "folder, not the component's work folder; write {work:path}/...",
            )

    def check_artifacts(self, manifest: dict, path: str) -> None:
        akey, artifacts = get_ci(manifest, "Artifacts")
        if not isinstance(artifacts, list):
            return
        seen: dict[str, int] = {}
        for j, art in enumerate(artifacts):
            apath = f"{child(path, akey)}[{j}]"
            if not isinstance(art, dict):
                continue
            ukey, uri = get_ci(art, "Uri")
            if not isinstance(uri, str):
                continue
            upath = child(apath, ukey)
            scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
            if scheme not in URI_SCHEMES:
                self.error(
                    upath,
                    "uri-scheme",
                    f"artifact URI {uri!r}: the nucleus downloads only "
                    f"{', '.join(s + ':' for s in URI_SCHEMES)} URIs",
                )
            name = _artifact_name(uri)
            if scheme != "docker" and name in seen:  # images are not files: no name clash
                self.error(
                    upath,
                    "duplicate-artifact",
                    f"artifact file name {name!r} already used by artifact {seen[name]}",
                )
            seen.setdefault(name, j)
            self.check_digest(art, apath, name, scheme)

    def check_digest(self, art: dict, path: str, name: str, scheme: str) -> None:
        dkey, digest = get_ci(art, "Digest")
        akey, algorithm = get_ci(art, "Algorithm")
        if digest is not None:
            try:
                raw = base64.b64decode(str(digest), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                self.error(
                    child(path, dkey),
                    "digest-format",
                    "Digest must be the standard Base64 of a SHA-256 (44 characters), not hex",
                )
                return
            if algorithm != "SHA-256":
                self.error(
                    child(path, akey or "Algorithm"),
                    "digest-algorithm",
                    f"Algorithm {algorithm!r}: a SHA-256 Digest needs Algorithm 'SHA-256'",
                )
        if self.artifacts_dir is None or scheme not in ("s3", "greengrass"):
            return
        file = self.artifacts_dir / name
        if not file.is_file():
            self.error(
                path, "artifact-missing", f"artifact {name!r} is not in {self.artifacts_dir}"
            )
            return
        if digest is None:
            self.warn(
                path,
                "digest-missing",
                "no Digest: a local deployment cannot verify this artifact",
            )
        elif b64_sha256(file) != digest:
            self.error(
                child(path, dkey),
                "digest-mismatch",
                f"Digest does not match {name}: the file is {b64_sha256(file)}",
            )

    # variables
    def check_variables(self) -> None:
        for i, manifest in enumerate(_manifests(self.recipe)):
            if not isinstance(manifest, dict):
                continue
            mpath = f"{child('$', get_ci(self.recipe, 'Manifests')[0])}[{i}]"
            lkey, lifecycle = get_ci(manifest, "Lifecycle")
            for path, text in _strings(lifecycle, child(mpath, lkey or "Lifecycle")):
                self.check_text(path, text, [manifest], in_lifecycle=True)
        gkey, glob = get_ci(self.recipe, "Lifecycle")
        if glob:
            for path, text in _strings(glob, child("$", gkey)):
                self.check_text(path, text, _manifests(self.recipe), in_lifecycle=True)
        for path, text in _strings(self.config, self.config_path):
            self.check_text(path, text, [], in_lifecycle=False)

    def check_text(self, path: str, text: str, manifests: list, in_lifecycle: bool) -> None:
        for m in VAR.finditer(text):
            parsed = _parse_var(m.group(1))
            if parsed is None:
                if ":" in m.group(1) and re.fullmatch(r"[A-Za-z0-9_.\-]+:[^\s]+", m.group(1)):
                    self.warn(
                        path,
                        "unknown-variable",
                        f"{m.group(0)} is not a recipe variable; the nucleus leaves it as is",
                    )
                continue
            dep, ns, key = parsed
            if not in_lifecycle:
                if ns == "configuration" or dep:
                    self.warn(
                        path,
                        "config-variable",
                        f"{m.group(0)} is not interpolated in ComponentConfiguration",
                    )
                else:
                    self.warn(
                        path,
                        "config-interpolation",
                        f"{m.group(0)} in ComponentConfiguration is replaced only on a nucleus "
                        "2.6+ that runs with interpolateComponentConfiguration: true; elsewhere "
                        "the literal text stays (an accessControl resource then matches no "
                        "real topic); `edgekit deploy --nucleus-version` sets it",
                    )
                    self.lite(path, "config-interpolation", f"{m.group(0)} is not interpolated")
                continue
            if dep is not None:
                self.lite(path, "dependency-variable", f"{m.group(0)}: no dependency prefixes")
                if dep not in self.dependencies:
                    self.error(
                        path,
                        "variable-dependency",
                        f"{m.group(0)} names {dep!r}, which is not a direct dependency",
                    )
                continue
            if ns == "configuration":
                found, _ = jsonpointer.lookup(self.config, key)
                if not found:
                    self.warn(
                        path,
                        "variable-configuration",
                        f"{m.group(0)}: DefaultConfiguration has no {key}; unless a deployment "
                        "merges it, the nucleus passes the text through unreplaced",
                    )
                continue
            if key not in KNOWN_KEYS.get(ns, ()):
                self.error(path, "variable-unknown", f"{m.group(0)} is not a recipe variable")
                continue
            if ns == "artifacts":
                rest = text[m.end() :]
                self.check_artifact_ref(path, m.group(0), key, rest, manifests)

    def check_artifact_ref(self, path: str, var: str, key: str, rest: str, manifests: list) -> None:
        ref = re.match(r"/([^\s'\";|&<>]*)", rest)
        if not ref or not manifests:
            return
        segments = [s for s in ref.group(1).split("/") if s]
        if not segments or "{" in ref.group(1) or "*" in ref.group(1):
            return
        artifacts = []
        for manifest in manifests:
            arts = get_ci(manifest, "Artifacts")[1]
            artifacts += arts if isinstance(arts, list) else []
        by_name = {}
        for art in artifacts:
            if isinstance(art, dict) and isinstance(get_ci(art, "Uri")[1], str):
                by_name[_artifact_name(get_ci(art, "Uri")[1])] = art
        if key == "path":
            if segments[0] not in by_name:
                self.error(
                    path,
                    "variable-artifact",
                    f"{var}/{segments[0]}: no artifact named {segments[0]!r} in this manifest",
                )
            return
        zips = {
            _zip_stem(n): n
            for n, a in by_name.items()
            if str(get_ci(a, "Unarchive")[1] or "NONE").upper() == "ZIP"
        }
        if segments[0] not in zips:
            known = ", ".join(sorted(zips)) or "none is unarchived"
            self.error(
                path,
                "variable-artifact",
                f"{var}/{segments[0]}: no ZIP artifact unpacks to {segments[0]!r} ({known})",
            )
            return
        inner = "/".join(segments[1:])
        archive = self.artifacts_dir / zips[segments[0]] if self.artifacts_dir else None
        if inner and archive is not None and archive.is_file():
            with zipfile.ZipFile(archive) as zf:
                listed = zf.namelist()
            if inner not in listed and not any(
                n.startswith(inner.rstrip("/") + "/") for n in listed
            ):
                self.error(
                    path,
                    "variable-artifact",
                    f"{var}/{ref.group(1)}: {zips[segments[0]]} has no {inner!r}",
                )

    # configuration values
    def check_config_values(self) -> None:
        """Numbers in DefaultConfiguration may come back from the nucleus as floats (AWS's
        own recipes write them as strings); interpolated into a script, 8080 reads 8080.0."""
        lifecycle = json.dumps(
            [get_ci(m, "Lifecycle")[1] for m in _manifests(self.recipe)]
            + [get_ci(self.recipe, "Lifecycle")[1]]
        )
        for path, pointer, value in _numbers(self.config, self.config_path, ""):
            used = "{configuration:" + pointer + "}" in lifecycle
            where = (
                f"; {{configuration:{pointer}}} in the lifecycle would then read {float(value)!r}"
                if used
                else ""
            )
            self.warn(
                path,
                "config-number",
                f"number {value!r} in DefaultConfiguration may reach the component as a "
                f"float{where}; write it as the string {str(value)!r}",
            )

    # access control
    def check_access_control(self) -> None:
        akey, acl = get_ci(self.config, "accessControl")
        if acl is None:
            return
        apath = child(self.config_path, akey)
        if not isinstance(acl, dict):
            self.error(apath, "access-control", "accessControl must be an object")
            return
        ids: dict[str, str] = {}
        for service, policies in acl.items():
            spath = child(apath, service)
            if not isinstance(policies, dict):
                self.error(spath, "access-control", "policies must be an object by policy id")
                continue
            for pid, policy in policies.items():
                ppath = child(spath, pid)
                if pid in ids:
                    self.error(ppath, "policy-id", f"policy id {pid!r} also used under {ids[pid]}")
                ids.setdefault(pid, str(service))
                if not isinstance(policy, dict):
                    self.error(ppath, "access-control", "a policy must be an object")
                    continue
                okey, ops = get_ci(policy, "operations")
                rkey, res = get_ci(policy, "resources")
                if not isinstance(ops, list) or not ops:
                    self.error(child(ppath, okey or "operations"), "policy", "no operations listed")
                elif "*" in ops:
                    self.warn(child(ppath, okey), "operations-star", "grants every operation ('*')")
                if not isinstance(res, list) or not res:
                    self.error(child(ppath, rkey or "resources"), "policy", "no resources listed")
                    continue
                for k, r in enumerate(res):
                    everything = r == "*" or (
                        service == "aws.greengrass.ipc.mqttproxy" and r == "#"
                    )
                    if everything:
                        self.warn(
                            f"{child(ppath, rkey)}[{k}]",
                            "resource-star",
                            f"resource {r!r} grants every topic/resource: scope it, e.g. "
                            "with {iot:thingName}",
                        )

    # dependencies
    def check_dependencies(self) -> None:
        """What DependencyResolver refuses: a range it cannot parse, a component that depends on
        itself ("Circular dependency detected"); DependencyType is read case-insensitively."""
        dkey, deps = get_ci(self.recipe, "ComponentDependencies")
        if not isinstance(deps, dict):
            return
        name = get_ci(self.recipe, "ComponentName")[1]
        for dep, spec in deps.items():
            dpath = child(child("$", dkey), dep)
            if dep == name:
                self.error(
                    dpath,
                    "circular-dependency",
                    f"{name} depends on itself: the nucleus fails the deployment with "
                    "'Circular dependency detected'",
                )
            vkey, requirement = get_ci(spec, "VersionRequirement")
            if isinstance(requirement, str):
                why = versions.range_problem(requirement)
                if why is not None:
                    self.error(
                        child(dpath, vkey),
                        "version-requirement",
                        f"{why}; the nucleus cannot resolve the dependency",
                    )
            tkey, dtype = get_ci(spec, "DependencyType")
            if (
                isinstance(dtype, str)
                and dtype.upper() in ("HARD", "SOFT")
                and dtype != dtype.upper()
            ):
                self.lite(
                    child(dpath, tkey),
                    "dependency-type",
                    f"write {dtype.upper()!r}: only the Java nucleus reads {dtype!r}",
                )

    # nucleus range
    def check_nucleus(self) -> None:
        dkey, deps = get_ci(self.recipe, "ComponentDependencies")
        deps = deps if isinstance(deps, dict) else {}
        nkey, nucleus = get_ci(deps, NUCLEUS)
        needs = nucleus_requirements(self.recipe)
        if nkey is not None:
            self.lite(
                child(child("$", dkey), nkey),
                "nucleus-dependency",
                f"{NUCLEUS} is not installed on lite cores (aws.greengrass.NucleusLite is)",
            )
        if not needs:
            return
        need_v, why = max(needs, key=lambda n: versions.sort_key(n[0]))
        if nkey is None:
            self.warn(
                child("$", dkey or "ComponentDependencies"),
                "nucleus-range",
                f"no dependency on {NUCLEUS}: {why}; add VersionRequirement '>={need_v}'",
            )
            return
        vkey, requirement = get_ci(nucleus, "VersionRequirement")
        if versions.range_problem(requirement) is not None:
            return  # check_dependencies reports it
        lowest = versions.lower_bound(requirement)
        if lowest is not None and versions.compare(lowest, need_v) < 0:
            self.warn(
                child(child(child("$", dkey), nkey), vkey),
                "nucleus-range",
                f"{requirement!r} admits nuclei older than {need_v}: {why}",
            )


def validate_recipe(
    recipe: dict[str, Any], *, size_bytes: int | None = None, artifacts_dir: Path | None = None
) -> list[Problem]:
    v = _Validator(recipe, artifacts_dir)
    if size_bytes is not None and size_bytes > MAX_RECIPE_BYTES:
        v.error(
            "$",
            "size",
            f"the recipe is {size_bytes:,} bytes; the Development Kit refuses recipes over "
            f"{MAX_RECIPE_BYTES:,}",
        )
    v.check_schema()
    v.check_identity()
    v.check_manifests()
    v.check_variables()
    v.check_config_values()
    v.check_access_control()
    v.check_dependencies()
    v.check_nucleus()
    return v.problems


def default_artifacts_dir(recipe_path: Path, recipe: dict[str, Any]) -> Path | None:
    """greengrass-build/recipes/X.json -> greengrass-build/artifacts/<name>/<version>/ if present."""
    name = get_ci(recipe, "ComponentName")[1]
    version = get_ci(recipe, "ComponentVersion")[1]
    if not isinstance(name, str) or not isinstance(version, str):
        return None
    if not names.NAME_PATTERN.match(name) or set(name) == {"."} or "/" in version:
        return None
    candidate = recipe_path.resolve().parent.parent / "artifacts" / name / version
    return candidate if candidate.is_dir() else None


@dataclass
class Report:
    path: str
    artifacts_dir: str | None
    size_bytes: int
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "recipe": self.path,
            "artifacts_dir": self.artifacts_dir,
            "size_bytes": self.size_bytes,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }


def validate_file(path: Path, artifacts_dir: Path | None = None) -> Report:
    recipe, raw = recipe_io.read(path)
    where = artifacts_dir or default_artifacts_dir(Path(path), recipe)
    problems = validate_recipe(recipe, size_bytes=len(raw), artifacts_dir=where)
    return Report(str(path), str(where) if where else None, len(raw), problems)
