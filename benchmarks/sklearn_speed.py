"""scikit-learn at batch 1: the bundle's ONNX variant in onnxruntime against the estimator's
own predict (issue 14's goal: at least 5x faster, per model).

Each model is fitted on a bundled data set, exported with edgekit's export path (so the ONNX
file is the one a device would get, parity-checked), then one row at a time is predicted,
alternately by scikit-learn (predict_proba for classifiers, predict for regressors, on a
one-row DataFrame as a service would call it) and by onnxruntime (one intra-op thread), in
interleaved rounds so a busy machine slows both alike. Medians of per-call times are reported.

    PYTHONPATH=. .venv/bin/python benchmarks/sklearn_speed.py [--rounds 5] [--calls 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from edge_agent.hardware import probe
from edgekit.export.builder import ExportRequest, export_bundle

GOAL = 5.0


def models() -> dict[str, tuple[Any, str]]:
    from sklearn import ensemble, linear_model, neighbors, neural_network, svm, tree
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def scaled(m):
        return make_pipeline(StandardScaler(), m)

    return {
        "LogisticRegression (wine)": (
            scaled(linear_model.LogisticRegression(max_iter=500)),
            "wine",
        ),
        "Ridge (diabetes)": (scaled(linear_model.Ridge()), "diabetes"),
        "DecisionTreeClassifier (breast_cancer)": (
            tree.DecisionTreeClassifier(max_depth=8, random_state=0),
            "breast_cancer",
        ),
        "RandomForestClassifier(30) scaled (wine)": (
            scaled(ensemble.RandomForestClassifier(30, random_state=0)),
            "wine",
        ),
        "RandomForestRegressor(30) scaled (diabetes)": (
            scaled(ensemble.RandomForestRegressor(30, random_state=0)),
            "diabetes",
        ),
        "GradientBoostingClassifier(50) (breast_cancer)": (
            ensemble.GradientBoostingClassifier(n_estimators=50, random_state=0),
            "breast_cancer",
        ),
        "HistGradientBoostingRegressor(50) (diabetes)": (
            ensemble.HistGradientBoostingRegressor(max_iter=50, random_state=0),
            "diabetes",
        ),
        "SVC (breast_cancer)": (scaled(svm.SVC(probability=True, random_state=0)), "breast_cancer"),
        "KNeighborsClassifier (wine)": (scaled(neighbors.KNeighborsClassifier()), "wine"),
        "MLPClassifier(256,256) (digits)": (
            scaled(neural_network.MLPClassifier((256, 256), max_iter=30, random_state=0)),
            "digits",
        ),
    }


def _frame(name: str):
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    return loader(as_frame=True).frame


def _timed(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def measure(label: str, model: Any, dataset: str, rounds: int, calls: int, root: Path) -> dict:
    import onnxruntime as ort
    import skops.io as sio

    frame = _frame(dataset)
    x, y = frame.drop(columns="target"), frame["target"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    work = root / f"m{abs(hash(label))}"
    work.mkdir()
    sio.dump(model, work / "m.skops")
    frame.to_csv(work / "data.csv", index=False)
    bundle, _ = export_bundle(
        ExportRequest(
            source=str(work / "m.skops"),
            data=work / "data.csv",
            output=work / "bundle",
            target_column="target",
        )
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(bundle.variant_path("fp32")), so, providers=["CPUExecutionProvider"]
    )
    samples = bundle.sample_inputs()
    rows = x.iloc[:1]
    feed = {k: v[:1] for k, v in samples.items()}
    native = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    for _ in range(20):  # warm both
        native(rows)
        session.run(None, feed)
    native_t, onnx_t = [], []
    for _ in range(rounds):
        native_t += _timed(lambda: native(rows), calls)
        onnx_t += _timed(lambda: session.run(None, feed), calls)
    n_ms = statistics.median(native_t) * 1e3
    o_ms = statistics.median(onnx_t) * 1e3
    return {
        "model": label,
        "native_ms": round(n_ms, 4),
        "onnx_ms": round(o_ms, 4),
        "speedup": round(n_ms / o_ms, 1),
        "meets_goal": n_ms / o_ms >= GOAL,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import os

    hw = probe()
    cpu = (hw.get("cpu") or {}).get("model") or platform.processor()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"machine: {cpu}, {os.cpu_count()} cores, load {load}; batch 1, onnxruntime 1 thread")
    print(f"{'model':48} {'sklearn ms':>10} {'onnx ms':>9} {'speedup':>8}")
    results = []
    with tempfile.TemporaryDirectory(prefix="edgekit-sk-bench-") as tmp:
        for label, (model, dataset) in models().items():
            r = measure(label, model, dataset, args.rounds, args.calls, Path(tmp))
            results.append(r)
            flag = "" if r["meets_goal"] else f"  below {GOAL:g}x"
            print(
                f"{r['model']:48} {r['native_ms']:10.3f} {r['onnx_ms']:9.4f} "
                f"{r['speedup']:7.1f}x{flag}",
                flush=True,
            )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": {"cpu": cpu, "load": load}, "results": results}, indent=1)
        )
    return 0 if all(r["meets_goal"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
