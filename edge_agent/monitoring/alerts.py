"""Alert rules over windows: a rule fires when it holds in M of the last N windows, and resolves
when it no longer does. Each rule reads the metrics body of the telemetry contract, so the fleet
side can re-run the same rules on merged windows.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# rule name -> (check(body, config, state) -> (holds, value, threshold, subject), severity)
Verdict = tuple[bool, float | None, float | None, str | None]
Check = Callable[[dict[str, Any], Any, dict[str, Any]], Verdict]
RULES: dict[str, tuple[Check, str]] = {}


def rule(name: str, severity: str = "warning") -> Callable[[Check], Check]:
    def deco(fn: Check) -> Check:
        RULES[name] = (fn, severity)
        return fn

    return deco


def _drifted(entries: dict[str, Any]) -> list[tuple[str, float]]:
    return [(n, e.get("psi") or 0.0) for n, e in entries.items() if e.get("status") == "drift"]


def _drift_verdict(body: dict[str, Any], config: Any, part: str) -> Verdict:
    hits = _drifted(body.get("drift", {}).get(part, {}))
    worst = max((p for _, p in hits), default=None)
    return (
        bool(hits),
        worst,
        config.drift_psi_threshold,
        ",".join(sorted(n for n, _ in hits)) or None,
    )


@rule("drift")
def _feature_drift(body: dict[str, Any], config: Any, state: dict[str, Any]) -> Verdict:
    return _drift_verdict(body, config, "features")


@rule("prediction_drift")
def _prediction_drift(body: dict[str, Any], config: Any, state: dict[str, Any]) -> Verdict:
    return _drift_verdict(body, config, "predictions")


@rule("data_quality")
def _data_quality(body: dict[str, Any], config: Any, state: dict[str, Any]) -> Verdict:
    dq = body.get("data_quality", {})
    cells = dq.get("rows", 0) * max(body.get("monitor", {}).get("features", 1), 1)
    if not cells:
        return False, None, config.data_quality_threshold, None
    bad = sum(dq.get("counts", {}).values())
    rate = bad / cells
    worst = max(dq.get("counts", {}).items(), key=lambda kv: kv[1], default=(None, 0))[0]
    return rate > config.data_quality_threshold, rate, config.data_quality_threshold, worst


@rule("latency")
def _latency(body: dict[str, Any], config: Any, state: dict[str, Any]) -> Verdict:
    p99 = body.get("latency_ms", {}).get("p99")
    budget = config.latency_budget_ms
    if budget is None or p99 is None:
        return False, p99, budget, "p99"
    return p99 > budget, p99, budget, "p99"


@rule("error_rate", "critical")
def _error_rate(body: dict[str, Any], config: Any, state: dict[str, Any]) -> Verdict:
    req = body.get("requests", {})
    count = req.get("count", 0)
    if not count:
        return False, None, config.error_rate_threshold, None
    rate = sum(req.get("errors", {}).values()) / count
    return rate > config.error_rate_threshold, rate, config.error_rate_threshold, None


@rule("quality_drop", "critical")
def _quality_drop(body: dict[str, Any], config: Any, state: dict[str, Any]) -> Verdict:
    quality = body.get("quality") or {}
    scores = quality.get("scores") or {}
    if quality.get("labels", 0) < config.drift_min_samples:
        return False, None, None, None
    if quality.get("task") == "classification":
        metric, value, higher_better = "accuracy", scores.get("accuracy"), True
    else:
        metric, value, higher_better = "rmse", scores.get("rmse"), False
    if value is None:
        return False, None, None, metric
    reference = state.setdefault("quality_reference", {}).setdefault(metric, value)
    if higher_better:
        threshold = reference - config.quality_drop
        return value < threshold, value, threshold, metric
    threshold = reference * (1 + config.quality_drop)
    return value > threshold, value, threshold, metric


@dataclass
class _History:
    windows: collections.deque[bool]
    firing: bool = False


class AlertEngine:
    def __init__(self, config: Any, reference: dict[str, float] | None = None) -> None:
        self.config = config
        self._history: dict[str, _History] = {}
        self._state: dict[str, Any] = {"quality_reference": dict(reference or {})}
        self._count = 0

    def evaluate(self, body: dict[str, Any], window_end: float) -> list[dict[str, Any]]:
        """Alerts that start firing or resolve with this window."""
        cfg = self.config
        out: list[dict[str, Any]] = []
        for name, (check, severity) in RULES.items():
            holds, value, threshold, subject = check(body, cfg, self._state)
            hist = self._history.setdefault(name, _History(collections.deque(maxlen=cfg.alert_n)))
            if hist.windows.maxlen != cfg.alert_n:
                hist.windows = collections.deque(hist.windows, maxlen=cfg.alert_n)
            hist.windows.append(bool(holds))
            hits = sum(hist.windows)
            if hits >= cfg.alert_m and not hist.firing:
                hist.firing = True
                out.append(
                    self._alert(
                        name, "firing", severity, value, threshold, subject, hits, window_end
                    )
                )
            elif hist.firing and hits < cfg.alert_m:
                hist.firing = False
                out.append(
                    self._alert(
                        name, "resolved", "info", value, threshold, subject, hits, window_end
                    )
                )
        return out

    def immediate(
        self, name: str, message: str, severity: str = "critical", subject: str | None = None
    ) -> dict[str, Any]:
        """An event alert that does not wait for M of N (a failed model swap)."""
        self._count += 1
        return {
            "id": f"{name}-{self._count}",
            "rule": name,
            "state": "firing",
            "severity": severity,
            "message": message,
            "subject": subject,
            "value": None,
            "threshold": None,
            "held": {"m": 1, "n": 1, "hits": 1},
            "hook": self.config.alert_hook,
        }

    def _alert(
        self,
        name: str,
        state: str,
        severity: str,
        value: float | None,
        threshold: float | None,
        subject: str | None,
        hits: int,
        window_end: float,
    ) -> dict[str, Any]:
        self._count += 1
        cfg = self.config
        what = f"{name} on {subject}" if subject else name
        verb = "holds" if state == "firing" else "no longer holds"
        return {
            "id": f"{name}-{int(window_end)}-{self._count}",
            "rule": name,
            "state": state,
            "severity": severity,
            "message": f"{what} {verb} in {hits} of the last {cfg.alert_n} windows (M={cfg.alert_m})",
            "subject": subject,
            "value": None if value is None else float(value),
            "threshold": None if threshold is None else float(threshold),
            "held": {"m": cfg.alert_m, "n": cfg.alert_n, "hits": hits},
            "hook": cfg.alert_hook if state == "firing" else None,
        }
