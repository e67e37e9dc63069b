"""Run a pipeline: plan the stages with their cache keys, take unchanged stages from the cache,
run the others in order, record everything in the run store, and publish the final bundle and
component to the output folder.

Cache entries live in `<workdir>/cache/<stage>/<key>/`: a stage runs in a staging folder that is
renamed into place only when it succeeded, so a failed stage leaves nothing half-written and the
entries of the stages before it stay valid for the next run.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.atomic import staging_dir, write_json
from edge_agent.errors import BadInputError, EdgekitError
from edgekit.toolkit.pipeline import keys
from edgekit.toolkit.pipeline.spec import PipelineSpec
from edgekit.toolkit.pipeline.stages import Runtime, Stage, StageContext, plan, registry
from edgekit.toolkit.pipeline.store import FAILED, OK, STOPPED, RunStore
from edgekit.toolkit.pipeline.summary import summarize

RESULT_FILE = "result.json"
REL = "@/"  # marks a path inside the cache entry in result.json

Event = Callable[[str, "StagePlan", dict[str, Any]], None]  # (started|done|cached|failed|stopped)


@dataclass
class StagePlan:
    stage: Stage
    key: str
    entry: Path
    cached: bool
    forced: bool = False
    stop: bool = False  # a dry run of the trigger stops here, before deploying

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def action(self) -> str:
        if self.stop:
            return "stop"
        return "cached" if self.cached and not self.forced else "run"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "key": self.key,
            "action": self.action,
            "forced": self.forced,
            "entry": str(self.entry),
            "options": self.stage.describe(),
        }


@dataclass
class RunReport:
    run_id: str | None
    status: str
    plan: list[StagePlan]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ran(self) -> list[str]:
        return [p.name for p in self.plan if p.name in self.results and p.action == "run"]

    @property
    def cached(self) -> list[str]:
        return [p.name for p in self.plan if p.name in self.results and p.action == "cached"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.status == OK,
            "run_id": self.run_id,
            "status": self.status,
            "plan": [p.to_dict() for p in self.plan],
            "ran": self.ran,
            "cached": self.cached,
            "timings_s": self.timings,
            "error": self.error,
            "outputs": self.outputs,
            "results": self.results,
            "summary": self.summary,
        }


def check_force(force: Iterable[str]) -> set[str]:
    names = {f.strip() for f in force if f.strip()}
    known = {c.name for c in registry()}
    bad = sorted(names - known - {"all"})
    if bad:
        raise BadInputError(
            f"--force {bad[0]!r} is not a stage", hint=f"one of {', '.join(sorted(known))}, all"
        )
    return names


def make_plan(spec: PipelineSpec, runtime: Runtime, force: Iterable[str] = ()) -> list[StagePlan]:
    """Every enabled stage with its key; a forced stage reruns, and so does every stage after it
    (they were made from the output it replaces)."""
    forced_names = check_force(force)
    out: list[StagePlan] = []
    upstream: str | None = None
    forcing = "all" in forced_names
    for stage in plan(spec):
        key = keys.stage_key(stage.name, stage.inputs(spec, runtime), upstream)
        entry = spec.workdir / "cache" / stage.name / key[:24]
        forcing = forcing or stage.name in forced_names
        cached = (entry / RESULT_FILE).is_file()
        stop = stage.deploys and stage.name in runtime.stop_before
        out.append(StagePlan(stage, key, entry, cached, forced=forcing, stop=stop))
        upstream = key
    return out


def _to_json(obj: Any, work: Path) -> Any:
    if isinstance(obj, Path):
        try:
            return REL + obj.resolve().relative_to(work.resolve()).as_posix()
        except ValueError:
            return str(obj)
    if isinstance(obj, dict):
        return {str(k): _to_json(v, work) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v, work) for v in obj]
    return obj


def _from_json(obj: Any, entry: Path) -> Any:
    if isinstance(obj, str) and obj.startswith(REL):
        return str(entry / obj[len(REL) :])
    if isinstance(obj, dict):
        return {k: _from_json(v, entry) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v, entry) for v in obj]
    return obj


def _run_stage(p: StagePlan, spec: PipelineSpec, outputs: dict, runtime: Runtime, say) -> dict:
    with staging_dir(p.entry, replace=True) as work:
        ctx = StageContext(spec, work, outputs, runtime, say)
        if p.stage.changes_bundle and ctx.latest("bundle"):
            shutil.copytree(ctx.latest("bundle"), work / "bundle")
        result = p.stage.run(ctx)
        stored = _to_json({**result, "key": p.key, "stage": p.name}, work)
        write_json(work / RESULT_FILE, stored)
    return _from_json(stored, p.entry)


PUBLISHED = (("bundle", "bundle"), ("build_dir", "greengrass-build"))


def _check_publish(target: Path, key: str) -> bool:
    """The published bundle / build folder replaces only one edgekit wrote (and nothing that
    holds the user's files); True when there is one to replace."""
    from edge_agent import owned

    if key == "bundle":
        return owned.check_replace(target, [owned.BUNDLE], option="output")
    from edgekit.toolkit.greengrass.package import is_our_build

    owned.check_location(target, option="output")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BadInputError(
            f"output {target}: is {'a symbolic link' if target.is_symlink() else 'a file'}, "
            "not a Greengrass build folder; nothing was changed",
            hint="set `outputs.greengrass-build:` in the pipeline file to a folder of its own",
        )
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return target.exists()
    if not is_our_build(target):
        raise BadInputError(
            f"output {target}: holds files `edgekit package` did not write; nothing was changed",
            hint="move them away or set another `output:` folder in the pipeline file",
        )
    return True


def _publish_outputs(spec: PipelineSpec, outputs: dict[str, dict]) -> dict[str, str]:
    """The final bundle and component copied to the output folder (each swapped in whole)."""
    published: dict[str, str] = {}
    ctx = StageContext(spec, spec.output, outputs, Runtime())
    for key, name in PUBLISHED:
        src = ctx.latest(key)
        if not src:
            continue
        target = spec.published(name)
        replacing = _check_publish(target, key)
        with staging_dir(target, replace=replacing) as stage:
            shutil.copytree(src, stage, dirs_exist_ok=True)
        published[name] = str(target)
    return published


def run_pipeline(
    spec: PipelineSpec,
    runtime: Runtime | None = None,
    *,
    force: Iterable[str] = (),
    alert: dict[str, Any] | None = None,
    on_event: Event | None = None,
    say: Callable[[str, str], None] | None = None,
) -> RunReport:
    """Run (or take from the cache) every stage; returns the report. A failed stage is recorded
    and its error re-raised after the run is closed in the store."""
    runtime = runtime or Runtime()
    own_store = runtime.store is None
    if own_store:
        runtime.store = RunStore(spec.store)
    store: RunStore = runtime.store
    try:
        stages = make_plan(spec, runtime, force)
        for key, name in PUBLISHED:  # before any stage runs: fail in a second, touch nothing
            _check_publish(spec.published(name), key)
        run_id = _begin(spec, runtime, store, stages, alert, force)
        run = _Run(spec, runtime, store, run_id, stages, on_event, say)
        for idx, p in enumerate(stages):
            if p.stop:
                run.stop(idx, p)
                break
            if p.action == "cached":
                run.take_cached(idx, p)
            else:
                run.run(idx, p)
        run.finish()
        return run.report
    finally:
        if own_store:
            store.close()
            runtime.store = None


def _begin(
    spec: PipelineSpec,
    runtime: Runtime,
    store: RunStore,
    stages: list[StagePlan],
    alert: dict[str, Any] | None,
    force: Iterable[str],
) -> str:
    """The run's row in the store (what went in, the versions, why it ran); its id is also the
    runtime's."""
    run_id = store.begin(
        pipeline=str(spec.path),
        digest=spec.digest,
        name=spec.name,
        inputs={**_inputs_record(spec, stages), **_new_data(runtime)},
        versions=keys.versions(),
        overrides=spec.overrides,
        alert=alert,
        dry_run=bool(runtime.stop_before),
        forced=sorted(check_force(force)),
    )
    runtime.run_id = run_id
    return run_id


class _Run:
    """One run while its stages go by: each stage's row in the store, its event, and its result
    in the report and in the outputs the later stages read."""

    def __init__(
        self,
        spec: PipelineSpec,
        runtime: Runtime,
        store: RunStore,
        run_id: str,
        stages: list[StagePlan],
        on_event: Event | None,
        say: Callable[[str, str], None] | None,
    ) -> None:
        self.spec, self.runtime, self.store, self.run_id = spec, runtime, store, run_id
        self.report = RunReport(run_id, OK, stages)
        self.emit: Event = on_event or (lambda *_a: None)
        self.say = say
        self.outputs: dict[str, dict[str, Any]] = {}

    def stop(self, idx: int, p: StagePlan) -> None:
        """A dry run ends before its deploying stage, recording what it would have deployed."""
        started = time.time()
        self.report.status = STOPPED
        would = _would_deploy(p, self.outputs)
        self.report.results[p.name] = {"stopped": True, "would_deploy": would}
        self.store.stage(
            self.run_id, idx, p.name, p.key, "stopped", started, 0.0, {"would_deploy": would}
        )
        self.emit("stopped", p, {"would_deploy": would})

    def take_cached(self, idx: int, p: StagePlan) -> None:
        started = time.time()
        result = _from_json(json.loads((p.entry / RESULT_FILE).read_text()), p.entry)
        self.outputs[p.name] = self.report.results[p.name] = result
        self.report.timings[p.name] = 0.0
        self.store.stage(self.run_id, idx, p.name, p.key, "cached", started, 0.0, result)
        self.emit("cached", p, result)

    def run(self, idx: int, p: StagePlan) -> None:
        started = time.time()
        self.emit("started", p, {})
        t0 = time.perf_counter()
        say = self.say
        try:
            result = _run_stage(
                p, self.spec, self.outputs, self.runtime, lambda m, n=p.name: (say or _quiet)(n, m)
            )
        except BaseException as exc:
            self._failed(idx, p, started, round(time.perf_counter() - t0, 3), exc)
            raise
        seconds = round(time.perf_counter() - t0, 3)
        self.outputs[p.name] = self.report.results[p.name] = result
        self.report.timings[p.name] = seconds
        self.store.stage(self.run_id, idx, p.name, p.key, "ran", started, seconds, result)
        self.emit("done", p, {"seconds": seconds, **result})

    def _failed(
        self, idx: int, p: StagePlan, started: float, seconds: float, exc: BaseException
    ) -> None:
        """The failed stage and the run closed in the store (called while `exc` is handled, so
        the traceback is still there), before the error goes on up."""
        message = exc.message if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
        details = (
            {"traceback": traceback.format_exc(limit=8)}
            if not isinstance(exc, EdgekitError)
            else getattr(exc, "details", None)
        )
        self.store.stage(
            self.run_id, idx, p.name, p.key, "failed", started, seconds, details, message
        )
        self.report.status, self.report.error = FAILED, f"stage {p.name} failed: {message}"
        self.report.timings[p.name] = seconds
        self.store.finish(
            self.run_id, FAILED, error=self.report.error, summary=_safe_summary(self.outputs)
        )
        self.emit("failed", p, {"error": message, "seconds": seconds})

    def finish(self) -> None:
        """Publish the outputs of a run that went through, and close it in the store."""
        report, outputs = self.report, self.outputs
        ctx = StageContext(self.spec, self.spec.workdir, outputs, self.runtime)
        report.outputs = _publish_outputs(self.spec, outputs) if report.status == OK else {}
        report.summary = _safe_summary(outputs)
        self.store.finish(
            self.run_id,
            report.status,
            bundle=ctx.latest("bundle"),
            component=ctx.latest("component"),
            version=ctx.latest("version"),
            summary=report.summary,
        )


def _quiet(_stage: str, _message: str) -> None:
    pass


def _would_deploy(p: StagePlan, outputs: dict[str, dict]) -> dict[str, Any]:
    ctx = StageContext(p.stage.spec, p.entry, outputs, Runtime())
    cfg = p.stage.cfg
    target = getattr(cfg, "to", None)
    if target == "fleet":
        target = f"fleet {cfg.fleet}"
    elif target == "greengrass":
        target = cfg.thing_group or cfg.thing or cfg.target_arn
    return {
        "stage": p.name,
        "component": ctx.latest("component"),
        "version": ctx.latest("version"),
        "platforms": ctx.latest("platforms"),
        "bundle": ctx.latest("bundle"),
        "target": target,
    }


def _safe_summary(outputs: dict[str, dict]) -> dict[str, Any]:
    ctx = StageContext(None, Path("."), outputs, Runtime())  # type: ignore[arg-type]
    bundle = ctx.latest("bundle")
    try:
        return summarize(Path(bundle) if bundle else None, outputs)
    except Exception as exc:  # a summary is a convenience; never fail a run over it
        return {"error": f"{type(exc).__name__}: {exc}"}


def _new_data(runtime: Runtime) -> dict[str, Any]:
    return {"new_data": runtime.new_data} if runtime.new_data else {}


def _inputs_record(spec: PipelineSpec, stages: list[StagePlan]) -> dict[str, Any]:
    """What went in: data sets and model files by digest, each stage's key."""
    files: dict[str, Any] = {}
    for kind in ("sample", "calibration", "evaluation"):
        p = spec.data(kind)
        if p is not None:
            files[f"data.{kind}"] = {"path": str(p), "sha256": keys.file_digest(p)}
    for kind in ("file", "weights"):
        p = spec.resolve(spec.model.get(kind))
        if p is not None:
            files[f"model.{kind}"] = {"path": str(p), "sha256": keys.file_digest(p)}
    train = spec.stage_options("train")
    if train:
        p = spec.resolve(train["data"])
        files["train.data"] = {"path": str(p), "sha256": keys.file_digest(p)}
    return {"files": files, "stage_keys": {s.name: s.key for s in stages}}
