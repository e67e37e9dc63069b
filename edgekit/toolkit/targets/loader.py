"""Load and validate target profiles: the shipped YAML files plus a user's `--targets-dir`.

A malformed profile is a BadInputError naming the file and the field, never a traceback.
A user profile with the name of a shipped one replaces it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edge_agent.errors import BadInputError
from edgekit.toolkit.targets.local import local_profile
from edgekit.toolkit.targets.profile import LOCAL, TargetProfile

PROFILE_SUFFIXES = (".yaml", ".yml")


@cache
def schema() -> dict[str, Any]:
    text = (
        resources.files("edgekit.toolkit.targets").joinpath("target.schema.json").read_text("utf-8")
    )
    return json.loads(text)


def builtin_dir() -> Path:
    return Path(str(resources.files("edgekit.toolkit.targets").joinpath("profiles")))


def _field(error: Any) -> str:
    """The dotted field a jsonschema error is about (the missing or unexpected key included)."""
    parts = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance]
        parts += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed)
        parts += extra[:1]
    return ".".join(parts) or "(top level)"


def validation_problems(data: Any) -> list[tuple[str, str]]:
    """Every schema violation as (field, message); empty when the profile is valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [(_field(e), e.message) for e in errors]


def parse_profile(data: Any, origin: str) -> TargetProfile:
    problems = validation_problems(data)
    if problems:
        field, message = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise BadInputError(
            f"target profile {origin}: field '{field}': {message}{more}",
            hint="fix the field; `edgekit targets --json` shows the shipped profiles as examples",
            details={"file": origin, "problems": [{"field": f, "message": m} for f, m in problems]},
        )
    if data["name"] == LOCAL:
        raise BadInputError(
            f"target profile {origin}: field 'name': 'local' is reserved for this machine",
            hint="give the profile another name",
        )
    for i, recipe in enumerate(data["quantization"]["prefer"]):
        unknown = [p for p in recipe.get("providers", []) if p not in data["providers"]]
        if unknown:
            raise BadInputError(
                f"target profile {origin}: field 'quantization.prefer.{i}.providers': "
                f"{', '.join(unknown)} not among the profile's providers",
                hint="list the provider under 'providers' or drop it from the recipe",
            )
    if data["cpu"].get("threads", data["cpu"]["cores"]) < data["cpu"]["cores"]:
        raise BadInputError(
            f"target profile {origin}: field 'cpu.threads': fewer threads than cores",
            hint="threads counts logical CPUs, at least the number of cores",
        )
    return TargetProfile(data=data, source=origin)


def load_profile_file(path: Path, source: str | None = None) -> TargetProfile:
    origin = source or str(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise BadInputError(
            f"target profile {origin}{where}: not valid YAML: "
            f"{getattr(exc, 'problem', None) or exc}",
            hint="check the indentation and quoting at that line",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"target profile {origin}: cannot read it: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError(
            f"target profile {origin}: field '(top level)': must be a mapping of fields",
            hint="see the shipped profiles in edgekit/toolkit/targets/profiles/",
        )
    profile = parse_profile(data, origin)
    if profile.name != path.stem:
        raise BadInputError(
            f"target profile {origin}: field 'name': {profile.name!r} differs from the file "
            f"name {path.stem!r}",
            hint=f"rename the file to {profile.name}.yaml or set name: {path.stem}",
        )
    return profile


def _profile_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in PROFILE_SUFFIXES and p.is_file())


def check_targets_dir(targets_dir: str | Path) -> Path:
    directory = Path(targets_dir)
    if not directory.is_dir():
        raise BadInputError(
            f"`targets_dir` {directory} is not a folder",
            hint="pass a folder holding <name>.yaml profile files",
        )
    return directory


def load_targets(
    targets_dir: str | Path | None = None, *, include_local: bool = True
) -> dict[str, TargetProfile]:
    """Every profile by name: shipped ones, then the user's (which replace same-named ones)."""
    found: dict[str, TargetProfile] = {}
    for path in _profile_files(builtin_dir()):
        found[path.stem] = load_profile_file(path, source=f"builtin:{path.name}")
    if targets_dir is not None:
        directory = check_targets_dir(targets_dir)
        for path in _profile_files(directory):
            profile = load_profile_file(path)
            found[profile.name] = profile
    if include_local:
        found[LOCAL] = local_profile()
    return found


def get_target(name: str, targets_dir: str | Path | None = None) -> TargetProfile:
    if name == LOCAL:
        if targets_dir is not None:
            check_targets_dir(targets_dir)  # a mistyped folder is an error, even for local
        return local_profile()
    targets = load_targets(targets_dir, include_local=False)
    if name not in targets:
        known = ", ".join(sorted([*targets, LOCAL]))
        raise BadInputError(
            f"unknown target {name!r}",
            hint=f"choose one of: {known} (or add {name}.yaml under `targets_dir`)",
        )
    return targets[name]
