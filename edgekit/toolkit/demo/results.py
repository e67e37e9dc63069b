"""The demo's --json: the pipeline runs' stage results in the shape `edgekit demo --json` has
always had (per model key: tabular, cnn), with the paths of what was published to the demo's
folder rather than of the runner's cache entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.toolkit.demo import DemoRun

PACKAGED = "tabular"  # the model the package and simulate stages ship


def _stage(demo: DemoRun, stage: str) -> dict[str, dict[str, Any]]:
    return {key: r[stage] for key, r in demo.results.items() if stage in r}


def _train(demo: DemoRun) -> dict[str, Any]:
    out = {}
    for key, r in _stage(demo, "train").items():
        out[f"{key}_accuracy"] = (r.get("metrics") or {}).get("test_accuracy")
    return out


def _export(demo: DemoRun) -> dict[str, Any]:
    keep = (
        "name", "task", "inputs", "outputs", "labels", "parity_passed", "parity_rows", "parity",
        "bytes", "sha256",
    )  # fmt: skip
    out = {}
    for key, r in _stage(demo, "export").items():
        published = demo.outputs.get(key, {}).get("bundle")
        out[key] = {"bundle": published or str(r["bundle"]), **{k: r.get(k) for k in keep}}
    return out


def _quantize(demo: DemoRun) -> dict[str, Any]:
    out: dict[str, list[dict[str, Any]]] = {}
    for key, r in _stage(demo, "quantize").items():
        rows = out.setdefault(key, [])
        for method, v in (r.get("variants") or {}).items():
            rows.append(
                {
                    "method": method,
                    "variant": v["variant"],
                    "chosen": v["method"],
                    "size_ratio": v["size_ratio"],
                    "label_agreement": v.get("label_agreement"),
                }
            )
        rows += [{"method": m, "error": why} for m, why in (r.get("refused") or {}).items()]
    return out


def _evaluate(demo: DemoRun) -> dict[str, Any]:
    keep = ("metric", "passed", "rejected", "values")
    return {key: {k: r.get(k) for k in keep} for key, r in _stage(demo, "evaluate").items()}


def _bench(demo: DemoRun) -> dict[str, Any]:
    keep = ("report", "results", "variants", "configurations", "p50_ms")
    return {key: {k: r.get(k) for k in keep} for key, r in _stage(demo, "bench").items()}


def _tune(demo: DemoRun) -> dict[str, Any]:
    keep = ("variant", "provider", "session_options", "mode", "measured_on", "reason", "trials")
    return {
        key: {t: {k: sel.get(k) for k in keep} for t, sel in r["selection"].items()}
        for key, r in _stage(demo, "tune").items()
    }


def _package(demo: DemoRun) -> dict[str, Any] | None:
    r = demo.results.get(PACKAGED, {}).get("package")
    if r is None:
        return None
    built = Path(r["build_dir"])
    published = demo.outputs.get(PACKAGED, {}).get("greengrass-build")
    root = Path(published) if published else built
    recipe = root / Path(r["recipe"]).relative_to(built)
    return {
        "model": PACKAGED,
        "component": r["component"],
        "version": r["version"],
        "recipe": str(recipe),
        "valid": (r.get("validation") or {}).get("ok"),
        "platforms": r.get("plans"),
        "artifacts": r.get("artifacts"),
        "local_deploy_command": _local_deploy_command(r, recipe),
        "signed_by": r.get("signed_by"),
    }


def _local_deploy_command(r: dict[str, Any], recipe: Path) -> str:
    """`greengrass-cli deployment create` for the published folder, as `edgekit package` says."""
    from edgekit.toolkit.greengrass.package import PackageResult
    from edgekit.toolkit.greengrass.validate import Report

    root = recipe.parent.parent
    return PackageResult(
        r["component"], r["version"], recipe, root / "artifacts", [], {},
        Report(str(recipe), None, 0, []), recipe,
    ).local_deploy_command()  # fmt: skip


def _simulate(demo: DemoRun) -> dict[str, Any] | None:
    r = demo.results.get(PACKAGED, {}).get("simulate")
    if r is None:
        return None
    keep = (
        "wall_s", "deployment_s", "drifted", "alerts_fired", "messages", "load", "fleet", "report",
    )  # fmt: skip
    fired = r.get("alerts_fired") or {}
    silent = [t for t in r.get("drifted") or [] if "drift" not in fired.get(t, [])]
    return {"ok": not silent, "run_dir": str(r["run_dir"]), **{k: r.get(k) for k in keep}}


def demo_json(demo: DemoRun, output: Path) -> dict[str, Any]:
    statuses = demo.statuses()
    failed = [s for s in statuses if s.status == "failed"]
    doc: dict[str, Any] = {
        "ok": not failed,
        "output": str(output),
        "failed": [s.name for s in failed],
        "stages": {s.name: s.to_dict() for s in statuses},
        "timings_s": {s.name: s.seconds for s in statuses},
        "train": _train(demo),
        "export": _export(demo),
        "quantize": _quantize(demo),
        "evaluate": _evaluate(demo),
        "bench": _bench(demo),
        "tune": _tune(demo),
        "package": _package(demo),
        "simulate": _simulate(demo),
        "pipeline": demo.loop,
        "outputs": demo.outputs,
    }
    if demo.errors:
        doc["errors"] = demo.errors
    return doc
