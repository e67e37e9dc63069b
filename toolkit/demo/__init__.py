"""`edgekit demo`: the whole path on two small models, one stage per module.

Each stage module registers a function with `@stage(order, name)`; DEMO_STAGE_MODULES is the
one list to extend when a new capability joins the demo. A stage whose check does not hold calls
`ctx.fail(reason)` and the demo goes on; a stage that raises stops it (the later stages need its
output). Either way the summary names the stage and `edgekit demo` exits 1.
"""

from __future__ import annotations

import importlib
import time
import traceback
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
    failures: dict[str, str] = field(default_factory=dict)  # stage name -> why it failed
    current: str = ""

    def fail(self, reason: str) -> None:
        """The running stage did not do what it promises: recorded, shown, and the demo's exit
        status says so; later stages still run."""
        self.failures.setdefault(self.current, reason)
        self.console.print(f"[red]✗ {self.current}:[/] {reason}", highlight=False)


PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class StageStatus:
    name: str
    status: str  # passed | failed | skipped
    seconds: float = 0.0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": self.seconds, "reason": self.reason}


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


def run_stages(
    ctx: DemoContext, on_stage: Callable[[str], None] | None = None
) -> list[StageStatus]:
    """Every stage in order, each with its status; after one raises the rest are skipped."""
    statuses: list[StageStatus] = []
    broken: str | None = None
    for _, name, fn in stages():
        if broken is not None:
            statuses.append(StageStatus(name, SKIPPED, reason=f"stage {broken} failed before it"))
            continue
        if on_stage is not None:
            on_stage(name)
        ctx.current = name
        started = time.perf_counter()
        try:
            fn(ctx)
        except Exception as exc:  # noqa: BLE001 - recorded and reported; the demo exits 1
            from edge_agent.errors import EdgekitError

            message = (
                exc.message if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
            )
            if not isinstance(exc, EdgekitError):
                ctx.results.setdefault("errors", {})[name] = traceback.format_exc(limit=6)
            ctx.fail(message)
            broken = name
        seconds = round(time.perf_counter() - started, 2)
        reason = ctx.failures.get(name)
        statuses.append(StageStatus(name, FAILED if reason else PASSED, seconds, reason))
    return statuses
