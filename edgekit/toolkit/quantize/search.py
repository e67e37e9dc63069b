"""`--method auto`, measured: the few settings that matter are tried against the accuracy gate
on the bundle's samples, and the fastest that passes is kept.

The rule-based choice (auto.choose: method and hardware defaults from the probe) is the
starting point; the candidates after it differ in what decides quality on real models:
per-channel weight scales, activation smoothing (edgekit.toolkit.quantize.smoothing: outlier features
moved into the weights, a few strengths), the embedding Gather left in float, and the MatMuls
that lose most (measured by edgekit.toolkit.quantize.sensitivity) kept in float. Candidates are tried in order of
expected speed (each keeps more in float than the last), so the search stops at the first that
passes. Attention models also try onnxruntime's transformer fusions first, kept only when the
fused graph, quantized as the first candidate will be, measures faster here. Every try is recorded with its quality and latency.

Quality is judged as `edgekit evaluate` judges it, on the stored samples: agreement of
labels for classifiers, otherwise per-row cosine to FP32 (pooled sentence embeddings for an
encoder), with the same --max-drop.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edgekit.toolkit.quantize import fusion, registry, runtime, sensitivity, smoothing
from edgekit.toolkit.quantize.graph import GraphInfo

SEARCH_ROWS = 64
LATENCY_BUDGET_S = 0.8
FUSION_MIN_GAIN = 0.03  # fused FP32 must be this much faster to be kept
# activation smoothing strengths tried, weakest first (SmoothQuant's default is 0.5)
SMOOTH_ALPHAS = (0.5, 0.6, 0.7, 0.8)
FUSED_KINDS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu", "FastGelu")


@dataclass
class Candidate:
    label: str
    method: str
    options: dict[str, Any]
    smooth: float | None = None  # activation smoothing alpha applied to the source first


@dataclass
class Outcome:
    method: registry.Method
    config: Any
    path: Path
    details: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)


def latency_ms(path: Path, feeds: dict[str, np.ndarray], budget_s: float = LATENCY_BUDGET_S):
    """Median single-thread latency of one row: a relative figure to rank candidates."""
    session = runtime.session(path, threads=1)
    row = {k: v[:1] for k, v in feeds.items()}
    for _ in range(2):
        session.run(None, row)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 200):
        t = time.perf_counter()
        session.run(None, row)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


class Judge:
    """The gate of `edgekit evaluate`, applied to a candidate file on the stored samples."""

    def __init__(self, bundle: Any, fp32: Path, max_drop: float) -> None:
        from edgekit.toolkit.scoring import predictions as P

        samples = bundle.sample_inputs()
        rows = min(SEARCH_ROWS, len(next(iter(samples.values()))))
        self.feeds = {k: v[:rows] for k, v in samples.items()}
        self.bundle, self.max_drop, self.rows = bundle, max_drop, rows
        self.reference = self._predict(fp32)
        self.metric = "label_agreement" if self.reference.classes is not None else "cosine_mean"
        self.read_from = self.reference.source
        self._P = P

    def _predict(self, path: Path) -> Any:
        from edgekit.toolkit.scoring import predictions as P

        outputs = runtime.run(path, self.feeds, self.bundle.signature, f"candidate {path.name}")
        return P.read(self.bundle.signature, self.bundle.task, outputs, self.feeds)

    def __call__(self, path: Path) -> dict[str, Any]:
        from edgekit.toolkit.scoring import metrics as M

        pred = self._predict(path)
        if self.metric == "label_agreement":
            value = M.label_agreement(self.reference.classes, pred.classes)
            extra: dict[str, Any] = {}
        else:
            cmp = M.versus_reference(self.reference.scores, pred.scores)
            value, extra = cmp["cosine_mean"], {"cosine_min": round(cmp["cosine_min"], 6)}
        drop = 1.0 - value
        passed = math.isfinite(value) and drop <= self.max_drop + 1e-12
        return {self.metric: round(value, 6), **extra, "drop": round(drop, 6), "passed": passed}


def _gathers_on_weights(model_path: Path) -> bool:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer if len(i.dims) == 2}
    return any(n.op_type == "Gather" and n.input[0] in weights for n in model.graph.node)


def candidates(
    method: str,
    base: dict[str, Any],
    info: GraphInfo,
    source: Path,
    ranked: list[str],
    hw: dict[str, Any],
) -> list[Candidate]:
    """The settings to try, in order of expected speed (fastest first)."""
    if method != "dynamic":
        # static (convolutional): the rule's QDQ choice, then dynamic per-channel, which
        # needs no calibration range and so cannot be wrecked by one
        return [
            Candidate("rule: " + method, method, dict(base)),
            Candidate("dynamic, per-channel weights", "dynamic", {"per_channel": True}),
        ]
    out: list[Candidate] = []
    if info.kind == "dense":
        out.append(Candidate("per-tensor weights", "dynamic", dict(base)))
    pc = {**base, "per_channel": True}
    out.append(Candidate("per-channel weights", "dynamic", pc))
    if hw.get("x86") and not hw.get("vnni") and base.get("reduce_range"):
        pc = {**pc, "reduce_range": False}
        out.append(Candidate("per-channel, full-range weights", "dynamic", dict(pc)))
    if ranked:  # smoothing costs one Mul per activation: about as fast as plain per-channel
        for alpha in SMOOTH_ALPHAS:
            out.append(
                Candidate(
                    f"per-channel, activations smoothed (alpha {alpha:g})",
                    "dynamic",
                    dict(pc),
                    smooth=alpha,
                )
            )
    if _gathers_on_weights(source):
        pc = {**pc, "op_types_to_exclude": ["Gather"]}
        out.append(Candidate("per-channel, embedding Gather in float", "dynamic", dict(pc)))
    n = len(ranked)
    if n >= 4:
        sizes = sorted({math.ceil(n / 6), math.ceil(n / 3)})
        for k in sizes:  # 8-bit blocks cost less than float for the same layers
            out.append(
                Candidate(
                    f"per-channel, the {k} most sensitive MatMuls 8-bit blockwise",
                    "dynamic",
                    {**pc, "blockwise_nodes": ranked[:k]},
                )
            )
        for k in sizes:
            out.append(
                Candidate(
                    f"per-channel, the {k} most sensitive MatMuls in float",
                    "dynamic",
                    {**pc, "nodes_to_exclude": ranked[:k]},
                )
            )
    return out


def _with_user(cands: list[Candidate], user: dict[str, Any]) -> list[Candidate]:
    """The user's options over every candidate; candidates that become the same go once."""
    out: list[Candidate] = []
    seen: list[tuple[str, dict[str, Any], float | None]] = []
    for c in cands:
        merged = {**c.options, **user}
        key = (c.method, merged, c.smooth)
        if key in seen:
            continue
        seen.append(key)
        label = c.label + (" (with your options)" if user else "")
        out.append(Candidate(label, c.method, merged, c.smooth))
    return out


def _maybe_fuse(
    info: GraphInfo,
    source: Path,
    work: Path,
    feeds: dict[str, np.ndarray],
    measure: bool,
    quantize: Any = None,
) -> tuple[Path, dict[str, Any]]:
    """Fuse, and keep the fused graph only when it measures faster here. With `quantize`
    (src, out) the comparison is between the two graphs quantized as the first candidate
    will be: a fusion that speeds up FP32 need not speed up the INT8 graph (on MiniLM fusion
    made FP32 11 % faster in one run, while fused INT8 measured 4 % slower to 3 % faster)."""
    if info.kind != "attention":
        return source, {"applied": False, "reason": f"not an attention model ({info.kind})"}
    if not measure:
        return source, {
            "applied": False,
            "reason": "the target is not this machine: fusions are kept only when measured faster",
        }
    fused_path = work / "fused.onnx"
    result = fusion.fuse(source, fused_path)
    fused = {k: v for k, v in (result.get("fused") or {}).items() if k in FUSED_KINDS}
    record: dict[str, Any] = {"tool": "onnxruntime.transformers.optimizer", **result}
    if not fused:
        record.update(applied=False, reason=result.get("error") or "nothing fused")
        return source, record
    plain, candidate, kind = source, fused_path, "fp32"
    try:
        if quantize is not None:
            plain, candidate, kind = (
                work / "fusion-int8-plain.onnx",
                work / "fusion-int8.onnx",
                "int8",
            )
            quantize(source, plain)
            quantize(fused_path, candidate)
        # alternate the two twice and keep each one's best median: a busy moment hits both
        runs = [(latency_ms(plain, feeds), latency_ms(candidate, feeds)) for _ in range(2)]
        before, after = min(r[0] for r in runs), min(r[1] for r in runs)
    except Exception as exc:  # a fused graph this onnxruntime cannot run or quantize
        record.update(applied=False, reason=f"fused graph does not run: {str(exc)[:200]}")
        return source, record
    gain = 1.0 - after / before
    record.update(
        compared=kind, **{f"{kind}_ms": round(before, 3), f"fused_{kind}_ms": round(after, 3)}
    )
    record.update(gain=round(gain, 4))
    if gain >= FUSION_MIN_GAIN:
        record.update(applied=True)
        return fused_path, record
    record.update(applied=False, reason=f"fused {kind.upper()} not faster here ({gain:+.1%})")
    return source, record


Made = tuple[Candidate, Path, Any, dict[str, Any], dict[str, Any]]
Smoothed = dict[float, tuple[Path, dict[str, Any]]]


def run(
    *,
    bundle: Any,
    fp32: Path,
    source: Path,
    work: Path,
    method: registry.Method,
    options: dict[str, Any],
    user: dict[str, Any],
    info: GraphInfo,
    hw: dict[str, Any],
    max_drop: float,
    measure: bool,
    context: Any,
) -> Outcome:
    """Try the candidates; `context(source, output)` makes a MethodContext. Options the user
    set (`user`) hold in every candidate."""
    judge = Judge(bundle, fp32, max_drop)
    quantize = _fusion_quantizer(method, options, user, context)
    source, fused = _maybe_fuse(info, source, work, judge.feeds, measure, quantize)
    mask_name = (bundle.signature.get("embedding") or {}).get("mask")
    mask = judge.feeds.get(mask_name) if mask_name else None
    ranked, sens = _sensitivity(method, source, judge, options, mask)
    cands = _with_user(candidates(method.name, options, info, source, ranked, hw), user)
    tried, smoothed, made = _try_candidates(cands, source, work, judge, mask, measure, context)
    chosen, why = _choose(made, tried, judge, max_drop, measure)
    cand, path, config, details, _ = chosen
    record = {
        "gate": {
            "metric": judge.metric,
            "max_drop": max_drop,
            "rows": judge.rows,
            "read_from": judge.read_from,
        },
        "graph_fusion": fused,
        "sensitivity": sens,
        "tried": tried,
        "chosen": cand.label,
        "why": why,
        "latency": "median single-thread ms for one row, on this machine"
        if measure
        else "not measured: the target is not this machine",
    }
    if fused.get("applied"):
        details = {**details, "graph_fusion": fused.get("fused")}
    if cand.smooth is not None:
        details = {**details, "smoothing": smoothed[cand.smooth][1]}
    return Outcome(registry.get(cand.method), config, path, details, record)


def _fusion_quantizer(
    method: registry.Method, options: dict[str, Any], user: dict[str, Any], context: Any
) -> Any:
    """For dynamic quantization, the quantizer the fusion is judged with (the graph the
    variant will be); None otherwise (the fusion is judged on FP32)."""
    if method.name != "dynamic":
        return None

    def quantize(src: Path, out: Path) -> None:
        m = registry.get("dynamic")
        m.run(
            registry.build_config(m, {**options, "per_channel": True, **user}),
            context(src, out),
        )

    return quantize


def _sensitivity(
    method: registry.Method,
    source: Path,
    judge: Judge,
    options: dict[str, Any],
    mask: np.ndarray | None,
) -> tuple[list[str], dict[str, Any]]:
    """The MatMuls ranked by how much they lose when quantized (dynamic only), and the
    record of it; best effort: without it the other candidates still run."""
    if method.name != "dynamic":
        return [], {}
    try:
        errors = sensitivity.rank(
            source,
            judge.feeds,
            per_channel=True,
            reduce_range=bool(options.get("reduce_range")),
            mask=mask,
        )
    except Exception as exc:  # best effort: without it the other candidates still run
        return [], {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    ranked = [n for n, _ in errors]
    return ranked, {"worst": [[n, round(e, 5)] for n, e in errors[:8]], "nodes": len(errors)}


def _try_candidates(
    cands: list[Candidate],
    source: Path,
    work: Path,
    judge: Judge,
    mask: np.ndarray | None,
    measure: bool,
    context: Any,
) -> tuple[list[dict[str, Any]], Smoothed, list[Made]]:
    """Quantize and judge each candidate in order, stopping at the first that passes (the
    rest keep more in float: not faster). Returns every try's record, the smoothed sources
    made on the way and the candidates that produced a graph."""
    tried: list[dict[str, Any]] = []
    smoothed: Smoothed = {}
    made: list[Made] = []
    for i, cand in enumerate(cands):
        entry: dict[str, Any] = {"label": cand.label, "method": cand.method}
        tried.append(entry)
        out = work / f"auto-{i}.onnx"
        try:
            src = source
            if cand.smooth is not None:
                if cand.smooth not in smoothed:
                    path = work / f"smoothed-{cand.smooth:g}.onnx"
                    done = smoothing.smooth(source, path, judge.feeds, cand.smooth, mask)
                    smoothed[cand.smooth] = (path, done)
                src = smoothed[cand.smooth][0]
                entry["smooth_alpha"] = cand.smooth
            m = registry.get(cand.method)
            config = registry.build_config(m, cand.options)
            details = m.run(config, context(src, out))
            verdict = judge(out)
        except BadInputError as exc:
            entry["error"] = exc.message[:300]
            continue
        except Exception as exc:  # a quantizer crash on this candidate: try the next
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            continue
        entry.update(verdict)
        entry["excluded_nodes"] = len(cand.options.get("nodes_to_exclude") or [])
        entry["blockwise_nodes"] = len(cand.options.get("blockwise_nodes") or [])
        if measure:
            entry["latency_ms"] = round(latency_ms(out, judge.feeds), 3)
        made.append((cand, out, config, details, entry))
        if verdict["passed"]:
            break  # the rest keep more in float: not faster
    return tried, smoothed, made


def _choose(
    made: list[Made], tried: list[dict[str, Any]], judge: Judge, max_drop: float, measure: bool
) -> tuple[Made, str]:
    """The fastest candidate that passes the gate, else the most accurate, and why."""
    if not made:
        raise BadInputError(
            "every candidate of --method auto failed: "
            + "; ".join(f"{t['label']}: {t.get('error')}" for t in tried),
            hint="choose a `method` and its options by hand",
        )
    passing = [m for m in made if m[4]["passed"]]
    if passing:
        key = (lambda m: m[4]["latency_ms"]) if measure else (lambda m: 0)
        chosen = min(passing, key=key)
        why = (
            f"{chosen[0].label}: the fastest that passes the gate "
            f"({judge.metric} {chosen[4][judge.metric]} ≥ {1 - max_drop:g})"
        )
    else:
        chosen = max(made, key=lambda m: m[4][judge.metric])
        why = (
            f"no candidate passes the gate ({judge.metric} ≥ {1 - max_drop:g}); kept the most "
            f"accurate, {chosen[0].label} ({chosen[4][judge.metric]}): `edgekit evaluate` "
            "will reject it unless --max-drop allows it"
        )
    return chosen, why
