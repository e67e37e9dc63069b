"""The closed loop: a fleet alert triggers the pipeline with new data.

On an alert the trigger gathers the agents' captured requests (labelled when labels are given),
re-trains through the pipeline's own `train` step on the training data plus the new rows, exports
with the new rows as the reference (the drift baseline follows the world as it is now),
re-evaluates against the gate and against the version on the devices, and only when the new one
is at least as good lets the deploy stage roll it out as a new component version, canary first.
Every attempt is a run in the run store linked to the alert, skipped attempts included.

Guard rails: one triggered run at a time (a lock in this process and a file lock across
processes), a minimum interval between triggered runs (from the run store, so it survives
restarts), and a dry run that stops before publish/deploy and reports what it would deploy.

As a fleet alert action (edgekit.toolkit.fleet.actions registry)::

    routes:
      - match: {rule: drift, source: device}
        actions:
          - kind: pipeline
            pipeline: pipeline.yaml
            captures: [/var/edgekit/captures]     # folders of capture-*.jsonl
            labels: labels.csv                    # or module:function; optional
            min_interval_s: 3600
            dry_run: true
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError, EdgekitError
from edgekit.toolkit.fleet.actions import Action, ActionContext, ActionError, action
from edgekit.toolkit.pipeline import captures as cap
from edgekit.toolkit.pipeline import spec as spec_mod
from edgekit.toolkit.pipeline.runner import run_pipeline
from edgekit.toolkit.pipeline.stages import Runtime
from edgekit.toolkit.pipeline.stages.build import resolve_function
from edgekit.toolkit.pipeline.store import RunStore

SKIPPED = "skipped"
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def try_lock_file(fh: Any) -> bool:
    """An exclusive, non-blocking lock on an open file, held until unlock_file or close:
    flock on POSIX, msvcrt's byte-range lock on Windows (fcntl does not exist there)."""
    try:
        if sys.platform == "win32":  # the spelling mypy narrows on
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def unlock_file(fh: Any) -> None:
    if sys.platform == "win32":
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class TriggerConfig:
    pipeline: Path
    captures: list[str] = field(default_factory=list)
    labels: str | None = None  # module:function(frame) -> labels, or a CSV with the inputs + label
    min_interval_s: float = 3600.0
    dry_run: bool = False
    lookback_s: float | None = None  # captures from this long before the alert (None: all)
    holdout: float = 0.4  # share of the new labelled rows kept to judge the new version
    min_rows: int = 30
    deploy: dict[str, Any] | None = None  # replaces stages.deploy (e.g. a simulated fleet)
    extra_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the run happens later, on the collector's action thread, maybe after a chdir: relative
        # paths are taken against the current folder now, when the route is set up
        self.pipeline = Path(self.pipeline).expanduser().absolute()
        self.captures = [str(Path(c).expanduser().absolute()) for c in self.captures]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> TriggerConfig:
        if not spec.get("pipeline"):
            raise BadInputError("pipeline action needs `pipeline: FILE`")
        caps = spec.get("captures") or []
        return cls(
            pipeline=Path(spec["pipeline"]),
            captures=[caps] if isinstance(caps, str) else list(caps),
            labels=spec.get("labels"),
            min_interval_s=float(spec.get("min_interval_s", 3600)),
            dry_run=bool(spec.get("dry_run", False)),
            lookback_s=spec.get("lookback_s"),
            holdout=float(spec.get("holdout", 0.4)),
            min_rows=int(spec.get("min_rows", 30)),
            deploy=spec.get("deploy"),
        )


@dataclass
class Outcome:
    status: str  # ok | stopped (dry run) | failed | skipped
    reason: str
    run_id: str | None = None
    would_deploy: dict[str, Any] | None = None
    deployed: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class PipelineTrigger:
    def __init__(
        self,
        config: TriggerConfig,
        deployers: dict[str, Any] | None = None,
        clock: Any = time.time,
    ) -> None:
        self.config = config
        self.deployers = dict(deployers or {})
        self.clock = clock
        self.spec = spec_mod.load(config.pipeline)  # a bad file fails when the route is set up
        if self.spec.stage_options("train") is None:
            raise self.spec.fail(
                ("stages",),
                "a triggered pipeline re-trains through its own train step: add stages.train",
            )
        self.history: list[Outcome] = []

    # -- guard rails ---------------------------------------------------------------------------
    def _lock(self) -> threading.Lock:
        with _LOCKS_GUARD:
            return _LOCKS.setdefault(str(self.spec.path), threading.Lock())

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        """True when this is the only triggered run of this pipeline, here and in any process."""
        lock = self._lock()
        if not lock.acquire(blocking=False):
            yield False
            return
        path = self.spec.workdir / "trigger.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+b")  # noqa: SIM115
        try:
            if not try_lock_file(fh):
                yield False
                return
            try:
                yield True
            finally:
                unlock_file(fh)
        finally:
            fh.close()
            lock.release()

    def _too_soon(self, store: RunStore) -> str | None:
        last = store.last_triggered(started_only=True)
        if last is None:
            return None
        age = self.clock() - last["started"]
        if age < self.config.min_interval_s:
            return (
                f"the last triggered run ({last['id']}) started {age:.0f} s ago; the minimum "
                f"interval is {self.config.min_interval_s:g} s"
            )
        return None

    # -- the run -------------------------------------------------------------------------------
    def fire(self, alert: Mapping[str, Any]) -> Outcome:
        alert = dict(alert)
        with self._exclusive() as alone:
            store = RunStore(self.spec.store)
            try:
                if not alone:
                    outcome = Outcome(SKIPPED, "another triggered run is in progress")
                else:
                    reason = self._too_soon(store)
                    outcome = Outcome(SKIPPED, reason) if reason else self._run(alert, store)
                if outcome.status == SKIPPED:
                    outcome.run_id = self._record_skip(store, alert, outcome.reason)
            finally:
                store.close()
        self.history.append(outcome)
        return outcome

    def _record_skip(self, store: RunStore, alert: dict[str, Any], reason: str) -> str:
        run_id = store.begin(
            pipeline=str(self.spec.path),
            digest=self.spec.digest,
            name=self.spec.name,
            inputs={},
            versions={},
            alert=alert,
            dry_run=self.config.dry_run,
        )
        store.finish(run_id, SKIPPED, error=reason)
        return run_id

    def _columns(self, store: RunStore) -> list[str] | None:
        """Table column names of the model on the devices (or the last one built)."""
        import json

        component = (self.spec.stage_options("package") or {}).get("component")
        found = store.deployed(component) if component else None
        for bundle in ([Path(found["bundle"])] if found else []) + [self.spec.output / "bundle"]:
            manifest = bundle / "manifest.json"
            if manifest.is_file():
                cols = json.loads(manifest.read_text())["signature"].get("columns") or []
                return [c["name"] for c in cols] or None
        return None

    def _new_data(
        self, alert: dict[str, Any], store: RunStore
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Write the data sets of this run; returns (overrides, what was gathered)."""
        c = self.config
        spec = self.spec
        since = None
        if c.lookback_s is not None:
            since = float(alert.get("t") or self.clock()) - float(c.lookback_s)
        got = cap.gather(c.captures, since, self._columns(store))
        info: dict[str, Any] = {"files": len(got.files), "captured": got.records, "rows": got.rows}
        if got.rows < c.min_rows:
            raise _Skip(
                f"not enough new data: {got.rows} distinct captured rows (min_rows {c.min_rows})"
            )
        column = spec.target_column or "target"
        labels: Any = None
        if c.labels:
            labels = (
                resolve_function(c.labels, spec.base, "labels")
                if ":" in c.labels and not Path(c.labels).exists()
                else spec.resolve(c.labels)
            )
        labelled = cap.label(got.frame, labels, column) if labels is not None else got.frame[:0]
        info["labelled"] = len(labelled)
        folder = spec.workdir / "triggered" / f"{int(self.clock())}-{alert.get('id', 'manual')}"
        folder.mkdir(parents=True, exist_ok=True)
        import pandas as pd

        train_opts = spec.stage_options("train") or {}
        overrides: dict[str, Any] = {"stages.package.version": "auto"}
        sample = folder / "new-data.csv"
        (labelled if len(labelled) else got.frame).to_csv(sample, index=False)
        overrides["data.sample"] = str(sample)
        overrides["data.calibration"] = str(sample)
        if len(labelled) >= c.min_rows:
            fit_rows, held = cap.split(labelled, c.holdout)
            old = pd.read_csv(spec.resolve(train_opts["data"]))
            train = pd.concat([old, fit_rows[[col for col in old.columns if col in fit_rows]]])
            train_path, eval_path = folder / "train.csv", folder / "evaluation.csv"
            train.to_csv(train_path, index=False)
            held.to_csv(eval_path, index=False)
            overrides["stages.train.data"] = str(train_path)
            overrides["data.evaluation"] = str(eval_path)
            if spec.stage_options("evaluate") is not None:
                overrides["stages.evaluate.compare_deployed"] = True
            info.update(
                train_rows=len(train), new_train_rows=len(fit_rows), evaluation_rows=len(held)
            )
        else:
            raise _Skip(
                f"only {len(labelled)} of {got.rows} new rows are labelled (min_rows {c.min_rows}): "
                "re-training needs labels",
            )
        if c.deploy is not None:
            overrides["stages.deploy"] = dict(c.deploy)
        overrides.update(c.extra_overrides)
        return overrides, info

    def _run(self, alert: dict[str, Any], store: RunStore) -> Outcome:
        try:
            overrides, info = self._new_data(alert, store)
        except _Skip as exc:
            return Outcome(SKIPPED, str(exc))
        spec = spec_mod.load(self.spec.path, overrides)
        runtime = Runtime(
            store=store,
            deployers=self.deployers,
            stop_before=("publish", "deploy") if self.config.dry_run else (),
            new_data=info,
        )
        try:
            report = run_pipeline(spec, runtime, alert=alert)
        except EdgekitError as exc:
            return Outcome("failed", exc.message, runtime.run_id, data=info)
        except Exception as exc:  # the user's train step raised: recorded with the run
            return Outcome("failed", f"{type(exc).__name__}: {exc}", runtime.run_id, data=info)
        if report.status == "stopped":
            would = next(
                (r["would_deploy"] for r in report.results.values() if r.get("stopped")), None
            )
            return Outcome(
                "stopped", "dry run: stopped before deployment", report.run_id, would, data=info
            )
        deployed = (report.results.get("deploy") or {}).get("deployed")
        comp = report.summary.get("component") or {}
        reason = (
            f"deployed {deployed['component']} {deployed['version']} to {deployed['to']}"
            if deployed
            else f"built {comp.get('name')} {comp.get('version')} (the pipeline has no deploy stage)"
        )
        return Outcome("ok", reason, report.run_id, deployed=deployed, data=info)


class _Skip(Exception):
    pass


@action("pipeline")
class PipelineAction(Action):
    """Fleet alert action: run the closed loop for the alert (see the module docstring)."""

    def __init__(self, spec: Mapping[str, Any], ctx: ActionContext) -> None:
        super().__init__(spec, ctx)
        self.trigger = PipelineTrigger(TriggerConfig.from_spec(spec))

    def run(self, alert: Mapping[str, Any]) -> str:
        outcome = self.trigger.fire(alert)
        text = f"{outcome.status}: {outcome.reason}" + (
            f" (run {outcome.run_id})" if outcome.run_id else ""
        )
        if outcome.status == "failed":
            raise ActionError(text)
        return text

    def describe(self) -> str:
        return f"pipeline {self.trigger.spec.path.name}" + (
            " (dry run)" if self.trigger.config.dry_run else ""
        )
