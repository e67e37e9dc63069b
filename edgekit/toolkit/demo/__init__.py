"""`edgekit demo`: the whole path on two small models, as pipeline files the runner runs.

The demo ships its pipelines as package data (`edgekit/toolkit/demo/pipelines/*.yaml`). It writes the
data they read (scikit-learn's breast_cancer and digits, split) and a release key, copies each
file into the output folder, and runs it with `run_pipeline`, the runner behind `edgekit run`:
every stage (train, export, quantize, evaluate, bench, tune, package, simulate) is a pipeline
stage, and each stage's tables come from `edgekit.toolkit.present`. Then the closed loop (loop.py).

A stage that fails stops its own pipeline (the later stages are reported skipped); the other
pipelines still run. Either way the summary names the stage and `edgekit demo` exits 1.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
STAGE_ORDER = (
    "train", "export", "quantize", "evaluate", "bench", "tune", "package", "simulate", "pipeline",
)  # fmt: skip


@dataclass(frozen=True)
class DemoPipeline:
    """One shipped pipeline file, the model it takes down the path, and its --quick settings."""

    key: str  # the model's name in the demo's --json (tabular, cnn)
    file: str  # in edgekit/toolkit/demo/pipelines; copied to the output folder under the same name
    quick: dict[str, Any] = field(default_factory=dict)  # overrides for --quick


_QUICK_MEASURE = {
    # a tenth of a second or so per configuration; two batch sizes even then, so the bench
    # report can draw throughput against batch size
    "stages.bench.duration_s": 0.12,
    "stages.bench.batches": [1, 8],
    "stages.tune.quick": True,
    "stages.tune.max_trials": 12,
}
PIPELINES = [
    DemoPipeline(
        "tabular",
        "breast-cancer.yaml",
        {**_QUICK_MEASURE, "stages.simulate.duration_s": 12, "stages.simulate.drift_after_s": 2},
    ),
    DemoPipeline("cnn", "digits-cnn.yaml", {**_QUICK_MEASURE, "stages.train.params.epochs": 5}),
]
LOOP_FILE = "loop.yaml"  # materialised as pipeline.yaml: the closed loop's pipeline
LOOP_AS = "pipeline.yaml"


def shipped(name: str) -> str:
    """The text of a pipeline file that ships with the package."""
    return (
        resources.files("edgekit.toolkit.demo")
        .joinpath("pipelines")
        .joinpath(name)
        .read_text("utf-8")
    )


@dataclass
class StageStatus:
    name: str
    status: str  # passed | failed | skipped
    seconds: float = 0.0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": self.seconds, "reason": self.reason}


@dataclass
class DemoRun:
    """What the runs gave: each pipeline's stage results, the published outputs, and per stage
    name what happened to it in every pipeline that has it."""

    results: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # key -> stage
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> published paths
    events: dict[str, list[StageStatus]] = field(default_factory=dict)  # stage -> per pipeline
    errors: dict[str, str] = field(default_factory=dict)  # tracebacks of unexpected failures
    loop: dict[str, Any] | None = None

    def record(self, status: StageStatus) -> None:
        self.events.setdefault(status.name, []).append(status)

    def statuses(self) -> list[StageStatus]:
        """One status per stage name: failed if it failed anywhere, else skipped if it was
        skipped anywhere, else passed; seconds add up."""
        out = []
        names = [n for n in STAGE_ORDER if n in self.events]
        names += [n for n in self.events if n not in names]
        for name in names:
            seen = self.events[name]
            seconds = round(sum(s.seconds for s in seen), 2)
            for status in (FAILED, SKIPPED):
                bad = [s for s in seen if s.status == status]
                if bad:
                    out.append(StageStatus(name, status, seconds, bad[0].reason))
                    break
            else:
                out.append(StageStatus(name, PASSED, seconds))
        return out


def prepare(out: Path) -> None:
    """The pre-step: the data the pipelines read and the release key their package stage signs
    with (kept when there is one: a new key would make every later stage run again)."""
    from edge_agent import signing
    from edgekit.toolkit.demo.models import write_digits_data, write_tabular_data

    write_tabular_data(out / "data")
    write_digits_data(out / "data")
    keys = out / "keys"
    if not (keys / "release.pem").is_file() or not (keys / "release.pub.pem").is_file():
        keys.mkdir(parents=True, exist_ok=True)
        signing.generate_keypair(keys / "release.pem", keys / "release.pub.pem", overwrite=True)


def materialise(out: Path, name: str, as_name: str | None = None) -> Path:
    """The shipped pipeline file, copied into the demo's folder (its paths are relative)."""
    from edge_agent import atomic

    path = out / (as_name or name)
    atomic.write_text(path, shipped(name))
    return path


def run_one(demo: DemoRun, pipe: DemoPipeline, path: Path, console: Console, quick: bool) -> None:
    """One pipeline on the runner; its stages' outcomes recorded under their names."""
    from edge_agent.errors import EdgekitError
    from edgekit.toolkit.pipeline import spec as spec_mod
    from edgekit.toolkit.pipeline.runner import run_pipeline
    from edgekit.toolkit.present.pipeline import progress_printer

    show, say = progress_printer(console)
    results = demo.results.setdefault(pipe.key, {})
    failed: list[str] = []

    def on_event(kind: str, p: Any, info: dict[str, Any]) -> None:
        show(kind, p, info)
        if kind in ("done", "cached"):
            results[p.name] = {k: v for k, v in info.items() if k != "seconds"}
            demo.record(StageStatus(p.name, PASSED, info.get("seconds", 0.0)))
        elif kind == "failed":
            failed.append(p.name)
            demo.record(StageStatus(p.name, FAILED, info["seconds"], info["error"]))

    console.rule(f"[bold]{pipe.key}: edgekit run {path.name}")
    spec = None
    try:
        spec = spec_mod.load(path, pipe.quick if quick else {})
        report = run_pipeline(spec, on_event=on_event, say=say)
        demo.outputs[pipe.key] = report.outputs
    except Exception as exc:  # noqa: BLE001 - recorded and reported; the demo exits 1
        if not failed:  # the file itself, or its outputs, before any stage ran
            message = (
                exc.message if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
            )
            demo.record(StageStatus(path.name, FAILED, 0.0, message))
        if not isinstance(exc, EdgekitError):
            demo.errors[pipe.key] = traceback.format_exc(limit=6)
        if isinstance(exc, EdgekitError) and exc.hint:
            console.print(f"  hint: {exc.hint}", highlight=False)
    if failed and spec is not None:
        from edgekit.toolkit.pipeline.stages import plan

        names = [s.name for s in plan(spec)]
        for name in names[names.index(failed[0]) + 1 :] if failed[0] in names else []:
            demo.record(StageStatus(name, SKIPPED, reason=f"stage {failed[0]} failed before it"))


def run_loop(demo: DemoRun, out: Path, console: Console, quick: bool) -> None:
    """The closed loop (loop.py), recorded as the `pipeline` stage."""
    from edge_agent.errors import EdgekitError
    from edgekit.toolkit.demo.loop import closed_loop

    console.rule("[bold]pipeline: the closed loop")
    started = time.perf_counter()
    pipe = materialise(out, LOOP_FILE, LOOP_AS)
    try:
        demo.loop, failure = closed_loop(out, pipe, console, quick)
    except Exception as exc:  # noqa: BLE001 - recorded and reported; the demo exits 1
        if not isinstance(exc, EdgekitError):
            demo.errors["pipeline"] = traceback.format_exc(limit=6)
        failure = exc.message if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
    seconds = round(time.perf_counter() - started, 2)
    if failure:
        console.print(f"[red]✗ pipeline:[/] {failure}", highlight=False)
    demo.record(StageStatus("pipeline", FAILED if failure else PASSED, seconds, failure))


def run_demo(out: Path, console: Console, quick: bool = False, loop: bool = True) -> DemoRun:
    """Prepare, then every shipped pipeline on the runner, then the closed loop."""
    import logging

    demo = DemoRun()
    prepare(out)
    # the collector's log action would print each fleet alert; the simulate table sums them up
    alerts_log = logging.getLogger("edgekit.fleet.alerts")
    level = alerts_log.level
    alerts_log.setLevel(logging.ERROR)
    try:
        for pipe in PIPELINES:
            run_one(demo, pipe, materialise(out, pipe.file), console, quick)
        if loop:
            run_loop(demo, out, console, quick)
    finally:
        alerts_log.setLevel(level)
    return demo
