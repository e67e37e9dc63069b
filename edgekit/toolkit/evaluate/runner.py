"""evaluate_bundle: every variant on labelled (or unlabelled) data, scored with sklearn.metrics,
compared with FP32, gated, and recorded in the manifest (variant["evaluation"]).

A static INT8 variant that fails the gate gets a qdq_loss_debug report; with auto_exclude=K it
is quantized again with the K worst nodes left in float, and the new variant is judged too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import FP32, Bundle
from edge_agent.contracts.evaluation import evaluation_record
from edge_agent.errors import BadInputError, BundleError, EdgekitError
from edge_agent.hashing import sha256_file
from edgekit.toolkit.evaluate import debug as qdq_debug
from edgekit.toolkit.evaluate import gate as G
from edgekit.toolkit.quantize import runtime
from edgekit.toolkit.quantize.feeds import load_feeds, rows_of
from edgekit.toolkit.scoring import metrics as M
from edgekit.toolkit.scoring import predictions as P


@dataclass
class EvaluateRequest:
    data: Path
    target_column: str | None = None
    max_drop: float = G.DEFAULT_MAX_DROP
    metric: str | None = None
    auto_exclude: int = 0
    variants: list[str] | None = None
    command: str | None = None


def _score(
    bundle: Bundle, name: str, feeds: dict[str, np.ndarray], target: np.ndarray | None
) -> tuple[dict[str, Any], P.Predictions]:
    outputs = runtime.run(bundle.verify_variant(name), feeds, bundle.signature, f"variant {name}")
    pred = P.read(bundle.signature, bundle.task, outputs, feeds)
    metrics: dict[str, Any] = {}
    if target is not None and bundle.task == "classification":
        assert pred.proba is not None and pred.classes is not None  # read() gives a classifier both
        labels = bundle.labels or list(range(pred.proba.shape[1]))
        y_true = P.target_indices(target, labels)
        metrics = M.classification(y_true, pred.classes, pred.proba, labels)
    elif target is not None and bundle.task == "regression":
        assert pred.values is not None  # read() gives a regressor its values
        metrics = M.regression(np.asarray(target, dtype=np.float64), pred.values)
    return metrics, pred


def _compare(pred: P.Predictions, ref: P.Predictions) -> dict[str, Any]:
    agreement = M.versus_reference(ref.scores, pred.scores)
    if pred.classes is not None:
        assert ref.classes is not None  # the same task's reference has classes too
        agreement["label_agreement"] = M.label_agreement(ref.classes, pred.classes)
    return agreement


def _evaluate_one(
    bundle: Bundle,
    name: str,
    feeds: dict[str, np.ndarray],
    target: np.ndarray | None,
    ref: tuple[dict[str, Any], P.Predictions] | None,
) -> tuple[dict[str, Any], P.Predictions]:
    metrics, pred = _score(bundle, name, feeds, target)
    ref_metrics, ref_pred = ref if ref is not None else (metrics, pred)
    agreement = _compare(pred, ref_pred)
    result = {
        "variant": name,
        "precision": bundle.variant(name)["precision"],
        "bytes": bundle.variant(name)["bytes"],
        "read_from": pred.source,
        "metrics": metrics,
        "vs_fp32": {**agreement, "deltas": M.deltas(metrics, ref_metrics)},
    }
    return result, pred


def _gate_value(result: dict[str, Any], metric: str) -> Any:
    if metric in result["metrics"]:
        return result["metrics"][metric]
    return result["vs_fp32"].get(metric)


def _available(result: dict[str, Any]) -> list[str]:
    scalars = M.scalar_metrics(result["metrics"])
    scalars.update(M.scalar_metrics({k: v for k, v in result["vs_fp32"].items() if k != "deltas"}))
    return list(scalars)


def _requantize(bundle: Bundle, name: str, nodes: list[str], k: int) -> tuple[str, list[str]]:
    """Quantize again as `name` was, leaving `nodes` in float; returns the new variant's name."""
    from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle

    q = bundle.variant(name)["quantization"]
    config = dict(q["config"])
    config["nodes_to_exclude"] = sorted(set(config.get("nodes_to_exclude") or []) | set(nodes))
    notes = []
    calib = q.get("calibration") or {}
    calibration = None
    if calib.get("kind") == "file":
        path = Path(calib["path"])
        if path.is_file() and sha256_file(path) == calib.get("sha256"):
            calibration = path
        else:
            notes.append(f"calibration file {path} is gone or changed; used the stored samples")
    new_name = f"{name}-excl{k}"[:64]
    made = quantize_bundle(
        bundle.path,
        QuantizeRequest(
            method="static",
            options=config,
            calibration=calibration,
            target_column=calib.get("target_column") if calibration else None,
            name=new_name,
            replace=True,
            preprocess=bool((q.get("preprocess") or {}).get("applied", True)),
            command=f"edgekit evaluate --auto-exclude {k} (from {name})",
            derived_from=name,
        ),
    )
    if made.duplicate_of:
        notes.append(f"{new_name} would be byte-identical to {made.duplicate_of}: reused it")
    return made.variant, notes


def _clean(obj: Any) -> Any:
    """NaN and infinities become None: the manifest and --json must stay valid JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _checked_inputs(
    bundle: Bundle, request: EvaluateRequest
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The evaluation feeds and labels, once the request and the data were checked."""
    if FP32 not in bundle.variants:
        raise BundleError(
            f"bundle {bundle.path} has no fp32 variant to compare against",
            hint="re-export the model with `edgekit export`",
        )
    if not math.isfinite(request.max_drop) or request.max_drop < 0:
        raise BadInputError(
            f"`max_drop` must be a number of 0 or more, got {request.max_drop}",
            hint="e.g. `max_drop` 0.01 (one point of accuracy)",
        )
    if request.auto_exclude < 0:
        raise BadInputError("`auto_exclude` must be 0 or more")
    feeds, target, sample = load_feeds(
        bundle.signature, request.data, request.target_column, "evaluation data"
    )
    if (
        target is None
        and request.target_column is None
        and "target" in (sample.frame.columns if sample.frame is not None else sample.tensors)
    ):
        raise BadInputError(
            f"{request.data} has a column named 'target'",
            hint="pass `target_column` target to score against it",
        )
    if rows_of(feeds) == 0:
        raise BadInputError(
            f"evaluation data {request.data} has no rows", hint="give `data` a file with rows"
        )
    return feeds, target


def _store(
    path: Path,
    results: dict[str, Any],
    judged: dict[str, str],
    data_info: dict[str, Any],
    metric: str,
    request: EvaluateRequest,
) -> Bundle:
    """Record every verdict in the manifest: a locked read-modify-write, so what other commands
    stored meanwhile stays, and a variant that changed under us is not given a verdict about
    another file."""
    now = manifest_io.utc_now()
    with Bundle.updating(path) as bundle:
        for name, result in results.items():
            entry = bundle.variants.get(name)
            if entry is None or entry["sha256"] != judged.get(name):
                raise BundleError(
                    f"variant {name!r} of {bundle.path} was removed or replaced while it was "
                    "being evaluated",
                    hint="run the evaluation again",
                )
            entry["evaluation"] = evaluation_record(now, data_info, result)
            if name != FP32:
                G.apply(entry, result["gate"])
        manifest_io.append_history(
            bundle.manifest,
            "evaluate",
            request.command or f"edgekit evaluate {bundle.path} --data {request.data}",
            metric=metric,
            max_drop=request.max_drop,
            passed=[n for n, r in results.items() if n != FP32 and r["gate"]["passed"]],
        )
    return bundle


def _debug_and_retry(
    bundle: Bundle,
    names: list[str],
    results: dict[str, Any],
    feeds: dict[str, np.ndarray],
    request: EvaluateRequest,
    judge: Callable[[Bundle, str], None],
) -> tuple[Bundle, list[str]]:
    """Debug each failing static variant (which nodes lose most) and, with --auto-exclude,
    quantize it again with those nodes in float and judge the retry; the bundle as reopened
    after the retries, and their names."""
    retried: list[str] = []
    for name in [n for n in names if n != FP32]:
        result = results[name]
        entry = bundle.variant(name)
        if result["gate"]["passed"] or qdq_debug.debuggable(entry):
            continue
        try:
            result["debug"] = qdq_debug.report(
                bundle, name, feeds, top=max(10, request.auto_exclude)
            )
        except EdgekitError:
            raise
        except Exception as exc:  # the debug tools are best effort on unusual graphs
            result["debug"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            continue
        derived = (entry.get("quantization") or {}).get("derived_from")
        if request.auto_exclude > 0 and derived:
            result["debug"]["not_retried"] = f"already a retry of {derived}"
        elif request.auto_exclude > 0:
            nodes = qdq_debug.worst_nodes(result["debug"], request.auto_exclude)
            new_name, notes = _requantize(bundle, name, nodes, request.auto_exclude)
            bundle = Bundle.open(bundle.path)
            judge(bundle, new_name)
            results[new_name]["auto_exclude"] = {
                "from": name,
                "excluded_nodes": nodes,
                "notes": notes,
            }
            retried.append(new_name)
    return bundle, retried


def evaluate_bundle(bundle_dir: str | Path, request: EvaluateRequest) -> dict[str, Any]:
    """Score every (or each asked) variant, gate it against FP32, debug and (with
    --auto-exclude) retry the static ones that fail, and record the verdicts."""
    bundle = Bundle.open(bundle_dir)
    feeds, target = _checked_inputs(bundle, request)
    names = request.variants or list(bundle.variants)
    for n in names:
        bundle.variant(n)  # a clear error for an unknown --variant

    judged = {FP32: bundle.variant(FP32)["sha256"]}  # the file each verdict is about
    ref_result, ref_pred = _evaluate_one(bundle, FP32, feeds, target, None)
    results = {FP32: ref_result}
    preds = {FP32: ref_pred}
    metric = G.main_metric(bundle.task, target is not None, request.metric, _available(ref_result))
    ref_value = _gate_value(ref_result, metric)
    ref_result["gate"] = {"metric": metric, "reference": True, "passed": True}

    def judge(bundle: Bundle, name: str) -> None:
        judged[name] = bundle.variant(name)["sha256"]
        result, pred = _evaluate_one(bundle, name, feeds, target, (ref_result["metrics"], ref_pred))
        result["gate"] = G.judge(
            metric, _gate_value(result, metric), ref_value, request.max_drop, name
        )
        results[name], preds[name] = result, pred

    for name in names:
        if name != FP32:
            judge(bundle, name)
    bundle, retried = _debug_and_retry(bundle, names, results, feeds, request, judge)

    results = _clean(results)
    data_info = {
        "path": str(Path(request.data).resolve()),
        "sha256": sha256_file(request.data),
        "rows": rows_of(feeds),
        "target_column": request.target_column,
        "labelled": target is not None,
    }
    bundle = _store(bundle.path, results, judged, data_info, metric, request)
    quantized = [n for n in results if n != FP32]
    passing = [n for n in quantized if results[n]["gate"]["passed"]]
    return {
        "bundle": str(bundle.path),
        "task": bundle.task,
        "data": data_info,
        "metric": metric,
        "max_drop": request.max_drop,
        "variants": results,
        "quantized": quantized,
        "passed": passing,
        "retried": retried,
    }
