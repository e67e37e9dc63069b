"""The accuracy gate, applied before anything is timed: a variant that was rejected by
evaluate, or whose main metric dropped more than --max-drop against FP32, never reaches the
benchmark. Memory is the second gate: the model plus its arena must fit the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.contracts.evaluation import gate_figures, read_evaluation
from edgekit.toolkit.tune.variants import describe_kind, variant_kind

RUNTIME_OVERHEAD_BYTES = 32 * 1024 * 1024  # onnxruntime itself, when memory was not measured
POINT_METRICS = {"accuracy", "balanced_accuracy", "f1", "f1_macro", "f1_weighted", "roc_auc"}


@dataclass
class VariantInfo:
    name: str
    kind: str
    label: str
    bytes: int
    metric: str | None = None
    value: float | None = None  # the main metric on the evaluation data
    drop: float | None = None  # fp32's value minus this one's (higher-is-better metrics)
    pruned: str | None = None  # why the gate removed it; None when it passed
    memory_bytes: int | None = None
    memory_source: str = "estimated"

    @property
    def passed(self) -> bool:
        return self.pruned is None

    def delta_text(self) -> str:
        """'-0.2 accuracy points' or 'r2 -0.003'; '' when nothing was evaluated."""
        if self.drop is None or self.metric is None:
            return ""
        if self.metric in POINT_METRICS:
            points = -self.drop * 100
            return f"{'±0.0' if abs(points) < 0.05 else f'{points:+.1f}'} {self.metric} points"
        return f"{self.metric} {-self.drop:+.3g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.name,
            "kind": self.kind,
            "label": self.label,
            "bytes": self.bytes,
            "metric": self.metric,
            "value": self.value,
            "drop": self.drop,
            "pruned": self.pruned,
            "memory_bytes": self.memory_bytes,
            "memory_source": self.memory_source,
        }


def _label(name: str, kind_label: str) -> str:
    """'int8-static (QDQ S8S8)', or 'int8-static-excl2: int8-static (QDQ S8S8)' when the
    variant's name is not its kind."""
    return kind_label if kind_label.split(" ")[0] == name else f"{name}: {kind_label}"


def evaluation_summary(variant: dict[str, Any]) -> tuple[str | None, float | None, float | None]:
    """(main metric, value, drop vs fp32) from the evaluate stage's record (EvaluationRecord,
    read by its one reader); all None when the variant was not evaluated."""
    ev = read_evaluation(variant)
    if ev is None:
        return None, None, None
    return gate_figures(ev)


def estimate_memory(size_bytes: int) -> int:
    """Weights are held twice while onnxruntime prepacks them, plus the runtime itself."""
    return 2 * size_bytes + RUNTIME_OVERHEAD_BYTES


def apply_gate(
    variants: dict[str, dict[str, Any]], max_drop: float | None, memory_budget: int | None = None
) -> dict[str, VariantInfo]:
    """VariantInfo per variant, pruned ones carrying the reason."""
    infos = {}
    for name, v in variants.items():
        metric, value, drop = evaluation_summary(v)
        if v.get("precision") == "fp32" and drop is None and value is not None:
            drop = 0.0  # the reference
        memory_bytes = estimate_memory(int(v["bytes"]))
        info = VariantInfo(
            name=name,
            kind=variant_kind(name, v),
            label=_label(name, describe_kind(name, v)),
            bytes=int(v["bytes"]),
            metric=metric,
            value=value,
            drop=drop,
            memory_bytes=memory_bytes,
        )
        if v.get("rejected"):
            info.pruned = f"rejected by evaluate: {v.get('reject_reason') or 'no reason given'}"
        elif max_drop is not None and drop is not None and drop > max_drop:
            info.pruned = f"{metric} drop {_fmt_drop(drop, metric)} > --max-drop {max_drop:g}"
        elif max_drop is not None and drop is None and info.kind != "fp32":
            info.pruned = "not evaluated: its accuracy is unknown (run `edgekit evaluate`)"
        elif memory_budget is not None and memory_bytes > memory_budget:
            info.pruned = _memory_reason(info, memory_budget)
        infos[name] = info
    return infos


def _fmt_drop(drop: float, metric: str | None) -> str:
    return f"{drop * 100:.1f} points" if metric in POINT_METRICS else f"{drop:.3g}"


def _memory_reason(info: VariantInfo, budget: int) -> str:
    mib = 1024 * 1024
    assert info.memory_bytes is not None  # set by apply_gate, raised by the measured figure
    return (
        f"needs {info.memory_bytes / mib:.0f} MiB ({info.memory_source}) but the target allows "
        f"{budget / mib:.0f} MiB for the model"
    )


def recheck_memory(info: VariantInfo, measured: int | None, budget: int | None) -> None:
    """Replace the estimate with a measured need and prune if it no longer fits."""
    if measured is None:
        return
    info.memory_bytes = max(measured, info.bytes)
    info.memory_source = "measured"
    if budget is not None and info.passed and info.memory_bytes > budget:
        info.pruned = _memory_reason(info, budget)
