"""`edgekit demo`: the whole path on two small models, one stage per module.

Each stage module registers a function with `@stage(order, name)`; DEMO_STAGE_MODULES is the
one list to extend when a new capability joins the demo.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

DEMO_STAGE_MODULES = [
    "toolkit.demo.train_stage",
    "toolkit.demo.export_stage",
    "toolkit.demo.quantize_stage",
    "toolkit.demo.evaluate_stage",
    "toolkit.demo.bench_stage",
    "toolkit.demo.tune_stage",
    "toolkit.demo.package_stage",
    "toolkit.demo.pipeline_stage",
    "toolkit.demo.simulate_stage",
]


@dataclass
class DemoContext:
    out: Path
    console: Console
    quick: bool = False
    artifacts: dict[str, Any] = field(default_factory=dict)  # what earlier stages produced
    bundles: dict[str, Path] = field(default_factory=dict)  # model key -> bundle folder
    results: dict[str, Any] = field(default_factory=dict)  # stage name -> summary for --json


StageFn = Callable[[DemoContext], None]
_STAGES: list[tuple[int, str, StageFn]] = []


def stage(order: int, name: str) -> Callable[[StageFn], StageFn]:
    def register(fn: StageFn) -> StageFn:
        _STAGES.append((order, name, fn))
        return fn

    return register


def stages() -> list[tuple[int, str, StageFn]]:
    for module in DEMO_STAGE_MODULES:
        importlib.import_module(module)
    return sorted(_STAGES, key=lambda s: s[0])
