"""The pipeline file: YAML checked against pipeline.schema.json, with every error naming the
line it is on (yaml's node marks map each JSON path to a line), then paths resolved against the
file's folder so a pipeline runs the same from any working directory.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import yaml

from edge_agent.errors import BadInputError
from edge_agent.hashing import sha256_bytes

SCHEMA_PATH = Path(__file__).with_name("pipeline.schema.json")
DEFAULT_WORKDIR = ".edgekit"
DEFAULT_OUTPUT = "build"


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def line_map(text: str, origin: str = "pipeline file") -> dict[tuple, int]:
    """JSON path (tuple of keys and indices) -> 1-based line, from the composed YAML nodes."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = path + (key.value,)
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    from edgekit.toolkit.greengrass.recipe_io import compose_bounded

    root = compose_bounded(text, origin)
    if root is not None:
        walk(root, ())
    return lines


def line_of(lines: Mapping[tuple, int], path: tuple) -> int | None:
    """The line of `path`, or of its nearest ancestor present in the file."""
    path = tuple(path)
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)


def _where(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def check(doc: Any, lines: Mapping[tuple, int], source: str) -> None:
    """Schema errors, the first few, each as `file:line: where: message`."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: line_of(lines, e.absolute_path) or 0)
    if not errors:
        return
    rows = []
    for e in errors[:8]:
        path = tuple(e.absolute_path)
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            allowed = sorted((e.schema.get("properties") or {}).keys())
            extra = sorted(set(e.instance) - set(allowed))
            path = path + (extra[0],) if extra else path
            msg = (
                f"unknown key {extra[0]!r} (allowed: {', '.join(allowed)})" if extra else e.message
            )
        else:
            msg = e.message
        rows.append(f"{source}:{line_of(lines, path) or 1}: {_where(path)}: {msg}")
    raise BadInputError(
        f"{source} is not a valid pipeline file:\n  " + "\n  ".join(rows),
        hint="see `edgekit init` for a commented example; the schema is "
        "edgekit/toolkit/pipeline/pipeline.schema.json",
    )


def apply_overrides(doc: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`{"stages.package.version": "1.0.1"}` style overrides (the trigger's new data); a value of
    None removes the key."""
    out = copy.deepcopy(doc)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return out


@dataclass
class PipelineSpec:
    path: Path
    text: str
    doc: dict[str, Any]  # as written, overrides applied
    lines: dict[tuple, int]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.doc["name"]

    @property
    def digest(self) -> str:
        """sha256 of the file as written plus the overrides: what the run store records."""
        extra = json.dumps(self.overrides, sort_keys=True, default=str) if self.overrides else ""
        return sha256_bytes(self.text.encode() + extra.encode())

    @overload
    def resolve(self, value: str) -> Path: ...
    @overload
    def resolve(self, value: None) -> None: ...
    @overload
    def resolve(self, value: str | None) -> Path | None: ...
    def resolve(self, value: str | None) -> Path | None:
        """`value` against the file's folder (None stays None: an optional path left out)."""
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()

    @property
    def workdir(self) -> Path:
        return self.resolve(self.doc.get("workdir", DEFAULT_WORKDIR))

    @property
    def output(self) -> Path:
        return self.resolve(self.doc.get("output", DEFAULT_OUTPUT))

    def published(self, name: str) -> Path:
        """Where the final `bundle` or `greengrass-build` is copied: `outputs.<name>` when the
        file says, else `<output>/<name>`."""
        given = (self.doc.get("outputs") or {}).get(name)
        return self.resolve(given) if given else self.output / name

    @property
    def store(self) -> Path:
        if "store" in self.doc:
            return self.resolve(self.doc["store"])
        return self.workdir / "runs.db"

    def data(self, kind: str) -> Path | None:
        return self.resolve((self.doc.get("data") or {}).get(kind))

    def required_data(self, kind: str) -> Path:
        """A data file the checks already required: data.sample (the schema) or
        data.evaluation when an evaluate stage runs (validate)."""
        p = self.data(kind)
        assert p is not None, f"data.{kind} is required before a stage reads it"
        return p

    @property
    def target_column(self) -> str | None:
        return (self.doc.get("data") or {}).get("target_column")

    @property
    def model(self) -> dict[str, Any]:
        return self.doc.get("model") or {}

    def stage_options(self, name: str) -> dict[str, Any] | None:
        stages = self.doc["stages"]
        if name not in stages:
            return None
        return dict(stages[name] or {})

    def line(self, *path: Any) -> int | None:
        return line_of(self.lines, tuple(path))

    def fail(self, path: tuple, message: str, hint: str | None = None) -> BadInputError:
        """A BadInputError that names the file and line of `path`."""
        return BadInputError(
            f"{self.path}:{self.line(*path) or 1}: {_where(path)}: {message}", hint=hint
        )


def parse(text: str, path: Path, overrides: Mapping[str, Any] | None = None) -> PipelineSpec:
    source = str(path)
    try:
        lines = line_map(text, source)  # first: it refuses documents too big to load
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInputError(
            f"{source}{line}: not valid YAML: {problem}", hint="check the indentation and quoting"
        ) from None
    if not isinstance(doc, dict):
        raise BadInputError(f"{source}:1: a pipeline file is a mapping (name:, data:, stages:)")
    doc = apply_overrides(doc, overrides or {})
    check(doc, lines, source)
    spec = PipelineSpec(Path(path).resolve(), text, doc, lines, dict(overrides or {}))
    _semantic_checks(spec)
    return spec


def load(path: str | Path, overrides: Mapping[str, Any] | None = None) -> PipelineSpec:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(
            f"pipeline file {path} not found", hint="write one with `edgekit init -o pipeline.yaml`"
        )
    return parse(path.read_text(encoding="utf-8"), path, overrides)


def _semantic_checks(spec: PipelineSpec) -> None:
    """What the schema cannot say: where the model comes from, files that must exist."""
    stages = spec.doc["stages"]
    model = spec.model
    train = stages.get("train")
    if train is not None:
        if bool(train.get("function")) == bool(train.get("command")):
            raise spec.fail(
                ("stages", "train"), "give exactly one of `function` (module:function) or `command`"
            )
        if "file" in model:
            raise spec.fail(
                ("model", "file"),
                "the model comes from the train stage; drop model.file",
                hint="keep model.factory for a PyTorch model whose weights the train step writes",
            )
    elif not ("file" in model or "factory" in model):
        raise spec.fail(
            ("model",),
            "say where the model comes from: model.file, model.factory, or a stages.train step",
        )
    checks: list[tuple[tuple[str | int, ...], Path | None]]
    checks = [(("data", k), spec.data(k)) for k in ("sample", "calibration", "evaluation")]
    checks += [(("model", k), spec.resolve(model.get(k))) for k in ("file", "weights")]
    if train is not None:
        checks.append((("stages", "train", "data"), spec.resolve(train["data"])))
        checks += [
            (("stages", "train", "sources", i), spec.resolve(s))
            for i, s in enumerate(train.get("sources") or [])
        ]
    sign_key = (stages.get("package") or {}).get("sign_key")
    if sign_key:
        checks.append((("stages", "package", "sign_key"), spec.resolve(sign_key)))
    for path, p in checks:
        if p is not None and not p.exists():
            raise spec.fail(path, f"{p} does not exist")
    deploy = stages.get("deploy")
    if deploy is not None:
        if deploy["to"] == "fleet" and not deploy.get("fleet"):
            raise spec.fail(("stages", "deploy"), "deploy to a fleet needs `fleet: NAME`")
        if deploy["to"] == "greengrass" and not any(
            deploy.get(k) for k in ("thing", "thing_group", "target_arn")
        ):
            raise spec.fail(
                ("stages", "deploy"), "deploy to greengrass needs thing, thing_group or target_arn"
            )
        if "package" not in stages:
            raise spec.fail(("stages", "deploy"), "deploy needs a package stage to deploy")
    for name in ("publish", "simulate"):
        if name in stages and "package" not in stages:
            raise spec.fail(("stages", name), f"{name} needs a package stage")
    if "evaluate" in stages and not spec.data("evaluation"):
        raise spec.fail(("stages", "evaluate"), "evaluate needs data.evaluation")
