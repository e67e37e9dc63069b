"""Where results go: the bundle manifest (per variant, per target), JSON and CSV files."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from edge_agent import atomic, owned
from edge_agent.benchmark.record import record_problems
from edge_agent.benchmark.stats import PERCENTILES
from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError
from edgekit.toolkit.bench.engine import BenchRun, config_key

CSV_COLUMNS = [
    "scenario", "system", "variant", "provider", "threads", "batch", "stable",
    "latency_min_ms", "latency_mean_ms", *[f"latency_{k}_ms" for k, _ in PERCENTILES], "latency_max_ms",
    "queries_per_s", "samples_per_s", "headline", "headline_value", "headline_unit",
    "session_create_ms", "cold_first_ms", "peak_rss_bytes", "peak_rss_increase_bytes", "cpu_percent", "model_bytes",
    "p50_speedup_vs_native", "cost_per_million", "cost_per_user_month", "measured_at",
]  # fmt: skip


def _environment_summary(env: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "cpu_model",
        "isa",
        "physical_cores",
        "logical_cores",
        "usable_cores",
        "memory_bytes",
        "os",
        "python",
        "onnxruntime",
        "providers",
        "load_average",
    )
    return {k: env.get(k) for k in keys}


def save_to_manifest(run: BenchRun, target: str, command: str | None = None) -> list[str]:
    """Merge this run's records into variant["benchmarks"][target]["scenarios"][scenario].

    A record replaces an earlier one of the same configuration; other configurations and other
    scenarios stay. Returns the variants updated.
    """
    with Bundle.updating(run.bundle_path) as bundle:  # what others stored meanwhile stays
        by_variant: dict[str, list[dict[str, Any]]] = {}
        for r in run.records:
            if r["system"] == "onnxruntime" and r["variant"] in bundle.variants:
                by_variant.setdefault(r["variant"], []).append(r)
        for name, records in by_variant.items():
            benchmarks = bundle.variants[name].setdefault("benchmarks", {})
            entry = benchmarks.setdefault(target, {})
            entry["updated"] = run.created
            entry["environment"] = _environment_summary(run.environment)
            scenarios = entry.setdefault("scenarios", {})
            existing = {config_key(r): r for r in scenarios.get(run.plan["scenario"], [])}
            for r in records:
                existing[config_key(r)] = r
            scenarios[run.plan["scenario"]] = sorted(
                existing.values(), key=lambda r: (r["provider"], r["threads"] or 0, r["batch"])
            )
        if by_variant:
            manifest_io.append_history(
                bundle.manifest,
                "bench",
                command or shlex.join(["edgekit", *sys.argv[1:]]),
                target=target,
                scenario=run.plan["scenario"],
                variants=sorted(by_variant),
            )
    return sorted(by_variant)


def csv_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        lat = r["latency_ms"]
        row = {
            "scenario": r["scenario"],
            "system": r["system"],
            "variant": r["variant"],
            "provider": r["provider"],
            "threads": r["threads"],
            "batch": r["batch"],
            "stable": r["stability"]["stable"],
            "latency_min_ms": lat["min"],
            "latency_mean_ms": lat["mean"],
            "latency_max_ms": lat["max"],
            "queries_per_s": r["throughput"]["queries_per_s"],
            "samples_per_s": r["throughput"]["samples_per_s"],
            "headline": r["headline"]["name"],
            "headline_value": r["headline"]["value"],
            "headline_unit": r["headline"]["unit"],
            "session_create_ms": r["session"]["create_ms"],
            "cold_first_ms": r["session"]["cold_first_ms"],
            "peak_rss_bytes": r["resources"].get("peak_rss_bytes"),
            "peak_rss_increase_bytes": r["resources"].get("peak_rss_increase_bytes"),
            "cpu_percent": r["resources"].get("cpu_percent"),
            "model_bytes": r.get("model_bytes"),
            "p50_speedup_vs_native": (r.get("vs_native") or {}).get("p50_speedup"),
            "cost_per_million": (r.get("cost") or {}).get("cost_per_million"),
            "cost_per_user_month": (r.get("cost") or {}).get("cost_per_user_month"),
            "measured_at": r["measured_at"],
        }
        for k, _ in PERCENTILES:
            row[f"latency_{k}_ms"] = lat[k]
        rows.append(row)
    return rows


def csv_text(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(records):
        writer.writerow(row)
    return buf.getvalue()


REPORT_KIND = "bench-report"


def prepare_output(out_dir: Path, bundle_dir: Path | None = None) -> Path:
    """Check the report folder before measuring, so a bad -o fails in a second, not after the
    whole run (and before anything is stored in the manifest). It may be new, empty, or a bench
    report edgekit wrote (which is replaced); never the user's folder or one holding the bundle."""
    out_dir = Path(out_dir)
    owned.check_replace(out_dir, [REPORT_KIND], [bundle_dir] if bundle_dir else [])
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"cannot create the report folder {out_dir}: {exc.strerror or exc}",
            hint="give -o a folder you can write to",
        ) from None
    if not os.access(parent, os.W_OK):
        raise BadInputError(
            f"cannot write to the report folder {out_dir}", hint="give -o a folder you can write to"
        )
    return out_dir


def write_results(run: BenchRun, out_dir: Path, manifest: dict[str, Any] | None) -> dict[str, Path]:
    """results.json, results.csv and report.html (accuracy from the manifest's evaluations),
    built in a staging folder with edgekit's marker and swapped in whole."""
    from edgekit.toolkit.bench.report import write_report

    out_dir = Path(out_dir)
    replacing = owned.check_replace(out_dir, [REPORT_KIND], [run.bundle_path])
    with atomic.staging_dir(out_dir, replace=replacing) as stage:
        paths = write_outputs(run, stage)
        paths["html"] = write_report(run.to_dict(), manifest, stage / "report.html")
        owned.write_marker(stage, REPORT_KIND)
    return {key: out_dir / path.name for key, path in paths.items()}


def write_outputs(run: BenchRun, out_dir: Path) -> dict[str, Path]:
    """results.json and results.csv in `out_dir` (the report is written by report.py)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv"}
    atomic.write_json(paths["json"], run.to_dict())
    atomic.write_text(paths["csv"], csv_text(run.records))
    return paths


def load_run(path: str | Path) -> dict[str, Any]:
    """A results file written by `edgekit bench` (results.json or its --json output)."""
    p = Path(path)
    if p.is_dir() and (p / "results.json").is_file():
        p = p / "results.json"  # the report folder of `edgekit bench -o DIR`
    if not p.is_file():
        raise BadInputError(
            f"{p} {'holds no results.json' if p.is_dir() else 'does not exist'}",
            hint="pass results.json from `edgekit bench -o DIR`",
        )
    try:
        doc = json.loads(p.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{p} is not valid JSON: {exc}") from exc
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != "edgekit-bench"
        or not isinstance(doc.get("records"), list)
    ):
        raise BadInputError(
            f"{p} is not an edgekit bench result",
            hint="pass results.json from `edgekit bench -o DIR` or the output of `edgekit bench --json`",
        )
    for i, record in enumerate(doc["records"]):
        problems = record_problems(record) if isinstance(record, dict) else ["$: not an object"]
        if problems:
            raise BadInputError(
                f"{p}: record {i} is not a valid benchmark record: {'; '.join(problems[:3])}",
                hint="pass the results.json that `edgekit bench` wrote, unedited",
            )
    return doc
