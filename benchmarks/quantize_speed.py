"""Quantization speed: FP32 vs each INT8 variant, single thread, batch 1 and 32.

Builds two models of realistic size with seeded weights (edgekit/toolkit/zoo/realistic.py: a ResNet-style
CNN of 1.2 M parameters and a 4-layer BERT-style encoder, hidden 256) and a tiny MLP, exports them
with edgekit's own export path, quantizes them with edgekit's quantize stage (auto and explicit
methods), judges quality with edgekit's evaluate stage on held-out inputs (agreement with FP32:
the gate rejects what drifts) and measures latency with onnxruntime, one intra-op thread, batch 1
and batch 32, variants measured in interleaved rounds so a busy machine slows all of them alike.

    .venv/bin/python benchmarks/quantize_speed.py [--quick] [--json out.json] [--check]

Prints latency ratios (FP32 time / variant time: above 1 is faster), size ratios and the quality
change, plus the machine (CPU model, ISA flags). Nothing is assumed: on the tiny model INT8 is
expected to be slower, and the table says so when it is.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from edge_agent.hardware import probe
from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.export.exporters import ExportOptions
from edgekit.toolkit.evaluate import EvaluateRequest, evaluate_bundle
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle
from edgekit.toolkit.zoo import realistic as zoo

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 130)


@dataclass
class ModelPlan:
    key: str
    factory: str
    inputs: Any  # (rows, seed) -> feeds
    realistic: bool  # the best INT8 variant is expected to beat FP32
    variants: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


PLANS = [
    ModelPlan(
        "cnn",
        "edgekit.toolkit.zoo.realistic:image_cnn",
        zoo.image_inputs,
        True,
        [
            ("auto", "auto", {}),
            ("static-per-tensor", "static", {"per_channel": False}),
            ("dynamic", "dynamic", {}),
        ],
    ),
    ModelPlan(
        "transformer",
        "edgekit.toolkit.zoo.realistic:text_encoder",
        zoo.text_inputs,
        True,
        [
            ("auto", "auto", {}),
            ("static-minmax", "static", {}),
        ],
    ),
    ModelPlan(
        "tiny-mlp",
        "edgekit.toolkit.zoo.realistic:tiny_mlp",
        zoo.tiny_inputs,
        False,
        [("dynamic", "dynamic", {}), ("static", "static", {})],
    ),
]


def machine() -> dict[str, Any]:
    hw = probe()
    return {
        "cpu": hw["cpu"]["model"],
        "flags": sorted(k for k, v in hw["cpu"]["features"].items() if v),
        "logical_cores": hw["cpu"]["logical_cores"],
        "architecture": hw["platform"]["architecture"],
        "onnxruntime": hw["onnxruntime"]["version"],
        "python": platform.python_version(),
    }


def build(plan: ModelPlan, work: Path, rows: int) -> Path:
    data = work / f"{plan.key}-export.npz"
    np.savez(data, **plan.inputs(rows, 0))
    bundle, _ = export_bundle(
        ExportRequest(
            source=plan.factory,
            data=data,
            output=work / plan.key,
            options=ExportOptions(task="classification"),
            overwrite=True,
            command=f"benchmarks/quantize_speed.py export {plan.factory}",
        )
    )
    return bundle.path


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure(
    paths: dict[str, Path], feeds: dict[str, np.ndarray], rounds: int, per_round: int
) -> dict[str, float]:
    """Median latency (ms) per variant, variants interleaved round by round."""
    sessions = {name: session(p) for name, p in paths.items()}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for s in sessions.values():
        for _ in range(2):
            s.run(None, feeds)
    for _ in range(rounds):
        for name, s in sessions.items():
            for _ in range(per_round):
                start = time.perf_counter()
                s.run(None, feeds)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def run_model(plan: ModelPlan, work: Path, quick: bool) -> dict[str, Any]:
    console.rule(f"[bold]{plan.key}")
    started = time.perf_counter()
    bundle = build(plan, work, 128 if quick else 256)
    made: dict[str, dict[str, Any]] = {}
    for label, method, options in plan.variants:
        result = quantize_bundle(
            bundle, QuantizeRequest(method=method, options=options, name=f"int8-{label}")
        ).as_dict()
        made[result["variant"]] = {"label": label, "method": result["method"]}
        if method == "auto":
            made[result["variant"]]["auto"] = result["quantization"]["auto"]["reasons"]
    held_out = work / f"{plan.key}-eval.npz"
    np.savez(held_out, **plan.inputs(128 if quick else 512, 1))
    report = evaluate_bundle(bundle, EvaluateRequest(data=held_out, max_drop=0.01))

    from edge_agent.contracts.bundle import Bundle

    b = Bundle.open(bundle)
    paths = {name: b.variant_path(name) for name in ["fp32", *made]}
    latency = {}
    for batch in (1, 32):
        feeds = {k: v[:batch] for k, v in plan.inputs(batch, 2).items()}
        if batch == 1:
            rounds, per_round = (3, 5) if quick else (10, 30)
        else:
            rounds, per_round = (2, 1) if quick else (8, 3)
        latency[batch] = measure(paths, feeds, rounds, per_round)

    rows = {}
    fp32_bytes = b.variant("fp32")["bytes"]
    for name in paths:
        r = report["variants"][name]
        rows[name] = {
            **made.get(name, {"label": "fp32", "method": "fp32"}),
            "bytes": b.variant(name)["bytes"],
            "size_ratio": b.variant(name)["bytes"] / fp32_bytes,
            "latency_ms": {str(k): latency[k][name] for k in latency},
            "speedup": {str(k): latency[k]["fp32"] / latency[k][name] for k in latency},
            "label_agreement": r["vs_fp32"].get("label_agreement"),
            "cosine_mean": r["vs_fp32"].get("cosine_mean"),
            "gate_passed": bool(r["gate"].get("passed")),
            "gate_reason": r["gate"].get("reason"),
        }
    # The best INT8 variant among those that pass the gate; if none passes (the tiny model's
    # near-tied random logits), the fastest one, marked rejected in the verdict.
    candidates = [n for n in made if rows[n]["gate_passed"]] or list(made)
    best = {str(k): max(candidates, key=lambda n: rows[n]["speedup"][str(k)]) for k in latency}
    params = zoo.parameter_count(
        {"cnn": zoo.image_cnn, "transformer": zoo.text_encoder, "tiny-mlp": zoo.tiny_mlp}[
            plan.key
        ]()
    )
    return {
        "parameters": params,
        "realistic": plan.realistic,
        "variants": rows,
        "best_int8": best,
        "int8_faster": {k: rows[v]["speedup"][k] > 1.0 for k, v in best.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def table(key: str, result: dict[str, Any]) -> Table:
    t = Table(title=f"{key} ({result['parameters'] / 1e6:.2f} M parameters), 1 thread")
    for col in (
        "variant",
        "method",
        "size",
        "b1 ms",
        "b1 ×",
        "b32 ms",
        "b32 ×",
        "agree",
        "cosine",
        "gate",
    ):
        t.add_column(col, justify="left" if col in ("variant", "method", "gate") else "right")
    for name, r in result["variants"].items():
        t.add_row(
            name,
            r["method"],
            f"{r['size_ratio']:.2f}×",
            f"{r['latency_ms']['1']:.3f}",
            f"{r['speedup']['1']:.2f}",
            f"{r['latency_ms']['32']:.2f}",
            f"{r['speedup']['32']:.2f}",
            "-" if r["label_agreement"] is None else f"{r['label_agreement']:.3f}",
            "-" if r["cosine_mean"] is None else f"{r['cosine_mean']:.5f}",
            "ref" if name == "fp32" else ("pass" if r["gate_passed"] else "[red]reject[/]"),
        )
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and iterations")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless the best passing INT8 variant of each realistic model beats FP32 "
        "at batch 1 and 32",
    )
    parser.add_argument("--models", nargs="*", default=[p.key for p in PLANS])
    args = parser.parse_args(argv)

    info = machine()
    console.print(
        f"machine: {info['cpu']} ({info['architecture']}, {info['logical_cores']} logical cores), "
        f"flags: {', '.join(info['flags'])}; onnxruntime {info['onnxruntime']}"
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-qspeed-") as tmp:
        for plan in PLANS:
            if plan.key in args.models:
                results[plan.key] = run_model(plan, Path(tmp), args.quick)
                console.print(table(plan.key, results[plan.key]))
                for name, r in results[plan.key]["variants"].items():
                    if r.get("auto"):
                        console.print(f"  {name}: " + "; ".join(r["auto"][:3]))
                    if not r["gate_passed"] and name != "fp32":
                        console.print(f"  [red]✗[/] {name}: {r['gate_reason']}")

    ok = True
    console.print(
        "\n[bold]verdict[/] (ratio = FP32 time / INT8 time; the gate rejects variants that drift)"
    )
    for key, r in results.items():
        for batch in ("1", "32"):
            best = r["best_int8"][batch]
            ratio = r["variants"][best]["speedup"][batch]
            faster = r["int8_faster"][batch] and r["variants"][best]["gate_passed"]
            word = "faster" if faster else "[yellow]not faster[/]"
            expectation = "" if r["realistic"] else " (tiny model: no speed-up expected)"
            gate = "" if r["variants"][best]["gate_passed"] else " (rejected by the gate)"
            console.print(
                f"  {key} batch {batch}: best INT8 {best}{gate} {ratio:.2f}× → {word} than "
                f"FP32{expectation}"
            )
            if r["realistic"] and not faster:
                ok = False
    payload = {"machine": info, "quick": args.quick, "models": results, "expectation_met": ok}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"results → {args.json}")
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
