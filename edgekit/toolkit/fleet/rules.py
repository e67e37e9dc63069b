"""Fleet-side alert rules and their configuration (a JSON or YAML file, ``--rules``).

Device alerts (``alerts`` messages) are stored and routed as they come. On top of them the
collector runs its own rules, kept in registries so a new rule is one decorated function:

* message rules (by telemetry type): ``lab_regression`` on each ``bench`` reply;
* periodic rules (on the store): ``fleet_drift`` on the bin counts summed over every device
  for the last ``lookback_s`` — drift too spread out for any single device to prove.

Configuration, every key optional::

    lab_regression: {threshold: 0.25, metric: mean}   # mean, p50, p90, p95 or p99
    fleet_drift: {every_s: 30, lookback_s: 600, min_samples: 500, alpha: 0.001, psi: 0.1}
    targets: {"pi-*": rpi4}          # a device's target when its hello names none
    routes:                          # where alerts go (default: log everything)
      - match: {rule: drift}         # globs on rule, severity, source, thing, subject, state
        actions:
          - {kind: command, command: [python, retrain.py, "{thing}", "{subject}"]}
          - {kind: topic, topic: "edgekit/fleet/retrain"}
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edge_agent.monitoring import drift as drift_stats
from edgekit.toolkit.fleet import lab
from edgekit.toolkit.fleet.actions import ActionContext, Route, parse_routes
from edgekit.toolkit.fleet.drift import FLEET, aggregate
from edgekit.toolkit.fleet.ingest import Parsed, expand_drift

FLEET_MIN_SAMPLES = 500
DEFAULT_ROUTES: list[dict[str, Any]] = [{"match": {}, "actions": [{"kind": "log"}]}]
_KEYS = {"lab_regression", "fleet_drift", "targets", "routes"}


@dataclass
class RulesConfig:
    lab_threshold: float = lab.DEFAULT_THRESHOLD
    lab_metric: str = lab.DEFAULT_METRIC
    drift_every_s: float = 30.0
    drift_lookback_s: float = 600.0
    # a fleet verdict waits for more rows than one device window (the agent's minimum is 100):
    # early windows of a fleet are few and rarely representative
    drift_policy: drift_stats.DriftPolicy = field(
        default_factory=lambda: drift_stats.DriftPolicy(min_samples=FLEET_MIN_SAMPLES)
    )
    targets: dict[str, str] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_ROUTES))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "rules") -> RulesConfig:
        if not isinstance(doc, Mapping):
            raise BadInputError(f"{where}: expected a mapping at the top level")
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise BadInputError(f"{where}: unknown keys {unknown}", hint=f"use {sorted(_KEYS)}")
        cfg = cls()
        labc = doc.get("lab_regression") or {}
        drc = doc.get("fleet_drift") or {}
        try:
            cfg.lab_threshold = float(labc.get("threshold", cfg.lab_threshold))
            cfg.lab_metric = str(labc.get("metric", cfg.lab_metric))
            cfg.drift_every_s = float(drc.get("every_s", cfg.drift_every_s))
            cfg.drift_lookback_s = float(drc.get("lookback_s", cfg.drift_lookback_s))
            cfg.drift_policy = drift_stats.DriftPolicy(
                min_samples=int(drc.get("min_samples", FLEET_MIN_SAMPLES)),
                alpha=float(drc.get("alpha", 0.001)),
                psi_threshold=float(drc.get("psi", 0.1)),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise BadInputError(f"{where}: a threshold is not a number ({exc})") from None
        if cfg.lab_metric not in lab.METRICS:
            raise BadInputError(
                f"{where}: lab_regression.metric {cfg.lab_metric!r} is not one of {lab.METRICS}"
            )
        cfg.targets = {str(k): str(v) for k, v in (doc.get("targets") or {}).items()}
        if "routes" in doc:
            if not isinstance(doc["routes"], list):
                raise BadInputError(f"{where}: routes must be a list")
            cfg.routes = list(doc["routes"])
        return cfg

    @classmethod
    def load(cls, path: str | Path | None) -> RulesConfig:
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise BadInputError(f"`rules` {path}: no such file")
        text = path.read_text()
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                doc = yaml.safe_load(text) or {}
            else:
                doc = json.loads(text)
        except ValueError as exc:  # json and yaml errors both derive from ValueError or YAMLError
            raise BadInputError(f"`rules` {path} does not parse: {exc}") from None
        except Exception as exc:
            raise BadInputError(f"`rules` {path} does not parse: {exc}") from None
        return cls.from_dict(doc, str(path))

    def build_routes(self, ctx: ActionContext) -> list[Route]:
        return parse_routes(self.routes, ctx)

    def target_for(self, thing: str, reported: str | None) -> str | None:
        if reported:
            return reported
        for pattern, target in self.targets.items():
            if fnmatch.fnmatchcase(thing, pattern):
                return target
        return None


MessageRule = Callable[["FleetRules", Parsed], list[dict[str, Any]]]
PeriodicRule = Callable[["FleetRules", float], list[dict[str, Any]]]
MESSAGE_RULES: dict[str, list[MessageRule]] = {}
PERIODIC_RULES: dict[str, PeriodicRule] = {}


def message_rule(message_type: str) -> Callable[[MessageRule], MessageRule]:
    def deco(fn: MessageRule) -> MessageRule:
        MESSAGE_RULES.setdefault(message_type, []).append(fn)
        return fn

    return deco


def periodic_rule(name: str) -> Callable[[PeriodicRule], PeriodicRule]:
    def deco(fn: PeriodicRule) -> PeriodicRule:
        PERIODIC_RULES[name] = fn
        return fn

    return deco


class FleetRules:
    """Evaluates the registered rules against new messages and, every so often, the store."""

    def __init__(self, config: RulesConfig, bundles: lab.BundleIndex, store: Any) -> None:
        self.config = config
        self.bundles = bundles
        self.store = store
        self.state: dict[str, Any] = {}
        self._last_periodic: dict[str, float] = {}
        self.notes: list[str] = []

    def on_messages(self, new: list[Parsed]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for p in new:
            for rule in MESSAGE_RULES.get(p.type, ()):
                out.extend(rule(self, p))
        return out

    def periodic(self, now: float | None = None, force: bool = False) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        out: list[dict[str, Any]] = []
        for name, rule in PERIODIC_RULES.items():
            if force or now - self._last_periodic.get(name, 0.0) >= self.config.drift_every_s:
                self._last_periodic[name] = now
                out.extend(rule(self, now))
        return out

    def device_target(self, thing: str) -> str | None:
        reported = self.store.scalar("SELECT target FROM devices WHERE thing = ?", (thing,))
        return self.config.target_for(thing, reported)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


LAB_HOWTO = (
    "record one: `edgekit tune BUNDLE --target {target}` (records a lab figure of its selection) "
    "or `edgekit bench BUNDLE --target {target}`, then package again"
)


def lab_check(
    thing: str,
    target: str | None,
    model_name: str | None,
    results: dict[str, Any],
    bundles: lab.BundleIndex | None,
    config: RulesConfig,
) -> tuple[list[lab.Comparison], list[str]]:
    """The one lab-against-device check, for the live collector (a bench reply as it arrives),
    the emulator's built-in collector and `fleet report` (the latest stored replies): each
    variant the device measured against the lab record for its target. Returns the comparisons
    made and notes on what could not be compared and how to make it comparable."""
    if target is None:
        return [], [f"{thing}: no target (its hello names none) — pass a rules `targets` map"]
    bundle = bundles.get(model_name) if bundles else None
    if bundle is None:
        return [], [f"{thing}: bundle {model_name!r} not known — pass --bundle DIR"]
    out, notes = [], []
    for variant, rec in sorted(results.items()):
        if not isinstance(rec, dict):
            continue
        cmp = lab.compare(
            thing, target, variant, rec, bundle, config.lab_threshold, config.lab_metric
        )
        if cmp is not None:
            out.append(cmp)
            continue
        reason = rec.get("error") or rec.get("skipped")
        notes.append(
            f"{thing}/{variant}: "
            + (
                f"device bench {reason}"
                if reason
                else f"no lab record for target {target}; " + LAB_HOWTO.format(target=target)
            )
        )
    return out, notes


def lab_alerts(comparisons: list[lab.Comparison], t: float | None = None) -> list[dict[str, Any]]:
    """The `lab_regression` alerts of the comparisons that are slower than allowed."""
    return [c.alert(t) for c in comparisons if c.slower]


@message_rule("bench")
def lab_regression(rules: FleetRules, p: Parsed) -> list[dict[str, Any]]:
    """Each variant the device benchmarked against the lab record for the device's target."""
    m = p.message
    comparisons, notes = lab_check(
        p.thing,
        rules.device_target(p.thing),
        m["model"].get("name"),
        m["body"].get("results") or {},
        rules.bundles,
        rules.config,
    )
    for note in notes:
        rules.note(note)
    return lab_alerts(comparisons, m["window"]["end"])


@periodic_rule("fleet_drift")
def fleet_drift(rules: FleetRules, now: float) -> list[dict[str, Any]]:
    """Summed counts of every device over the lookback, judged against the baseline; fires when a
    feature turns to drift and resolves when it turns back."""
    cfg = rules.config
    rows = [
        r
        for row in rules.store.query(
            "SELECT * FROM drift WHERE window_end >= ?", (now - cfg.drift_lookback_s,)
        )
        for r in expand_drift(row)
    ]
    firing: dict[tuple, bool] = rules.state.setdefault("fleet_drift", {})
    out = []
    for fd in aggregate(rows, rules.bundles.baseline, cfg.drift_policy):
        if fd.thing != FLEET or fd.verdict is None:
            continue
        key = (fd.model, fd.group, fd.name)
        is_drift = fd.status == "drift"
        if is_drift == firing.get(key, False):
            continue
        firing[key] = is_drift
        out.append(
            {
                "t": now,
                "source": "fleet",
                "thing": None,
                "rule": "fleet_drift",
                "state": "firing" if is_drift else "resolved",
                "severity": "warning",
                "message": (
                    f"{fd.group[:-1]} {fd.name} of {fd.model} "
                    + ("drifted" if is_drift else "back to baseline")
                    + f" across the fleet: PSI {fd.psi:.3f} over {fd.n} rows in the last "
                    f"{cfg.drift_lookback_s:g}s"
                ),
                "subject": fd.name,
                "value": fd.psi,
                "threshold": cfg.drift_policy.psi_threshold,
                "detail": fd.to_dict(),
            }
        )
    return out
