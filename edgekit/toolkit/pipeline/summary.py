"""What a run made, in numbers that compare across runs: per variant its size, the gate metric and
its latency per target (from the final bundle's manifest), the selection per target, and the
component. `compare` lines two runs up row by row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.contracts.bundle import Bundle


def _p50(bench: dict[str, Any]) -> float | None:
    """Batch-1 single-stream p50 (ms) of one target's benchmark entry, else the first record."""
    records = (bench.get("scenarios") or {}).get("single-stream") or []
    for r in sorted(records, key=lambda r: (r.get("batch") or 0, r.get("threads") or 0)):
        lat = (r.get("latency_ms") or {}).get("p50")
        if lat is not None:
            return float(lat)
    return None


def summarize(bundle_dir: Path | None, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"variants": {}, "selection": {}, "component": None, "metric": None}
    if bundle_dir is not None and (Path(bundle_dir) / "manifest.json").is_file():
        manifest = Bundle.open(bundle_dir).manifest
        out["bundle"] = {"name": manifest.get("name"), "task": manifest.get("task")}
        for name, v in (manifest.get("variants") or {}).items():
            ev = v.get("evaluation") or {}
            metric = (ev.get("gate") or {}).get("metric")
            if metric:
                out["metric"] = metric
            out["variants"][name] = {
                "bytes": v.get("bytes"),
                "precision": v.get("precision"),
                "rejected": bool(v.get("rejected")),
                "metric": (ev.get("metrics") or {}).get(metric) if metric else None,
                "latency_p50_ms": {
                    t: _p50(b)
                    for t, b in (v.get("benchmarks") or {}).items()
                    if _p50(b) is not None
                },
            }
        out["selection"] = {
            t: s.get("variant") for t, s in (manifest.get("selection") or {}).items()
        }
    pkg = outputs.get("package")
    if pkg:
        out["component"] = {
            "name": pkg.get("component"),
            "version": pkg.get("version"),
            "platforms": pkg.get("platforms"),
        }
    dep = outputs.get("deploy")
    if dep:
        out["deployed"] = dep.get("deployed")
    train = outputs.get("train")
    if train and train.get("metrics"):
        out["train_metrics"] = train["metrics"]
    return out


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (section, item, a, b, change) for two runs (as RunStore.get returns them)."""
    rows: list[dict[str, Any]] = []

    def add(section: str, item: str, x: Any, y: Any, ratio: bool = False) -> None:
        nx, ny = _num(x), _num(y)
        change = None
        if nx is not None and ny is not None:
            change = (ny / nx - 1.0) if ratio and nx else ny - nx
        rows.append(
            {"section": section, "item": item, "a": x, "b": y, "change": change, "ratio": ratio}
        )

    sa, sb = a.get("summary") or {}, b.get("summary") or {}
    va, vb = sa.get("variants") or {}, sb.get("variants") or {}
    metric = sb.get("metric") or sa.get("metric") or "metric"
    for name in sorted(set(va) | set(vb)):
        x, y = va.get(name) or {}, vb.get(name) or {}
        add("metric", f"{name} {metric}", x.get("metric"), y.get("metric"))
    for name in sorted(set(va) | set(vb)):
        x, y = va.get(name) or {}, vb.get(name) or {}
        targets = sorted(set(x.get("latency_p50_ms") or {}) | set(y.get("latency_p50_ms") or {}))
        for t in targets:
            add(
                "latency",
                f"{name} p50 ms on {t}",
                (x.get("latency_p50_ms") or {}).get(t),
                (y.get("latency_p50_ms") or {}).get(t),
                ratio=True,
            )
    for name in sorted(set(va) | set(vb)):
        add(
            "size",
            f"{name} bytes",
            (va.get(name) or {}).get("bytes"),
            (vb.get(name) or {}).get("bytes"),
            ratio=True,
        )
    sel_a, sel_b = sa.get("selection") or {}, sb.get("selection") or {}
    for t in sorted(set(sel_a) | set(sel_b)):
        add("selection", t, sel_a.get(t), sel_b.get(t))
    ca, cb = sa.get("component") or {}, sb.get("component") or {}
    if ca or cb:
        add(
            "component",
            ca.get("name") or cb.get("name") or "-",
            ca.get("version"),
            cb.get("version"),
        )
    ta = {s["name"]: s for s in a.get("stages") or []}
    tb = {s["name"]: s for s in b.get("stages") or []}
    for name in [s["name"] for s in b.get("stages") or []] + [n for n in ta if n not in tb]:
        x, y = ta.get(name) or {}, tb.get(name) or {}
        add(
            "stage",
            name,
            f"{x.get('status', '-')} {x.get('seconds') or 0:.2f}s" if x else None,
            f"{y.get('status', '-')} {y.get('seconds') or 0:.2f}s" if y else None,
        )
        rows[-1]["change"] = "key changed" if x.get("key") != y.get("key") else "same key"
    return rows
