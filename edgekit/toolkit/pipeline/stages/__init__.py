"""The pipeline's stages: each is a class with a typed config, the inputs that make its cache key,
and one run method (as Olive's passes). A stage registers itself with `@register`; the order
number places it in the path. Stages call the other packages' Python APIs, never the CLI.

A stage works in `ctx.work`, a fresh folder that becomes its cache entry when it succeeds; a
stage that changes the bundle gets a copy of the upstream bundle at `ctx.work / "bundle"`, so a
cached entry is never modified afterwards and a failed stage leaves every earlier entry intact.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgekit.toolkit.pipeline.spec import PipelineSpec

STAGE_MODULES = [
    "edgekit.toolkit.pipeline.stages.build",
    "edgekit.toolkit.pipeline.stages.model",
    "edgekit.toolkit.pipeline.stages.ship",
]


@dataclass
class Runtime:
    """What a run brings besides the file: the run store, where deployments go, the trigger's
    notes. Tests and the closed loop fill `deployers` with in-process fleets."""

    store: Any = None  # edgekit.toolkit.pipeline.store.RunStore
    run_id: str | None = None
    deployers: dict[str, Any] = field(default_factory=dict)
    deployed_bundle: Path | None = None  # the bundle now on the devices (compare_deployed)
    stop_before: tuple[str, ...] = ()  # the trigger's dry run stops before deployment
    new_data: dict[str, Any] | None = None  # the trigger's gathered rows, kept with the run


@dataclass
class StageContext:
    spec: PipelineSpec
    work: Path
    outputs: dict[str, dict[str, Any]]  # earlier stages' results this run (paths resolved)
    runtime: Runtime
    say: Callable[[str], None] = lambda _m: None

    def latest(self, key: str) -> Any:
        """The most recent earlier stage's value for `key` (bundle, component...)."""
        for result in reversed(list(self.outputs.values())):
            if key in result:
                return result[key]
        return None

    @property
    def bundle(self) -> Path:
        """The bundle this stage works on: its own copy when the stage changes the bundle."""
        own = self.work / "bundle"
        return own if own.exists() else Path(self.latest("bundle"))


class Stage:
    name: ClassVar[str]
    order: ClassVar[int]
    Config: ClassVar[type] = dict
    changes_bundle: ClassVar[bool] = False  # gets a copy of the upstream bundle to change
    deploys: ClassVar[bool] = (
        False  # acts outside this machine (publish/deploy): dry-runs stop here
    )
    # result keys holding paths inside `work` (made relative in the cache, absolute when read)
    path_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: PipelineSpec, options: dict[str, Any]) -> None:
        self.spec = spec
        self.cfg = make_config(self.Config, options, spec, ("stages", self.name))

    def inputs(self, spec: PipelineSpec, runtime: Runtime) -> dict[str, Any]:
        """Everything besides the upstream key and library versions that decides the result."""
        return {"options": dataclasses.asdict(self.cfg)}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.cfg).items() if v)


STAGES: dict[str, type[Stage]] = {}


def register(name: str, order: int) -> Callable[[type[Stage]], type[Stage]]:
    def deco(cls: type[Stage]) -> type[Stage]:
        cls.name = name
        cls.order = order
        STAGES[name] = cls
        return cls

    return deco


def registry() -> list[type[Stage]]:
    for module in STAGE_MODULES:
        importlib.import_module(module)
    return sorted(STAGES.values(), key=lambda c: c.order)


def make_config(cls: type, options: dict[str, Any], spec: PipelineSpec, where: tuple) -> Any:
    """The stage's dataclass from its (schema-checked) options."""
    if cls is dict:
        return dict(options)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise spec.fail(where + (unknown[0],), f"unknown option {unknown[0]!r}")
    return cls(**options)


def plan(spec: PipelineSpec) -> list[Stage]:
    """The enabled stages in order, configured."""
    out = []
    for cls in registry():
        options = spec.stage_options(cls.name)
        if options is not None:
            out.append(cls(spec, options))
    unknown = sorted(set(spec.doc["stages"]) - set(STAGES))
    if unknown:
        raise spec.fail(("stages", unknown[0]), f"unknown stage {unknown[0]!r}")
    return out
