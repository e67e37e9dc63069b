"""`edgekit evaluate`: every variant scored with sklearn.metrics, compared with FP32 and gated."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from edge_agent.errors import CheckFailedError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import (
    JSON_OPTION,
    err,
    handle_errors,
    out,
    print_json,
    report_error,
    split_csv,
)
from edgekit.toolkit.present.evaluate import print_report


@app.command("evaluate")
@handle_errors
def evaluate_command(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    data: Path = typer.Option(..., "--data", help="Evaluation data: CSV, Parquet, NPY or NPZ."),
    target_column: str | None = typer.Option(
        None, "--target-column", help="Label column (CSV/Parquet) or array (NPZ)."
    ),
    max_drop: float = typer.Option(
        0.01, "--max-drop", help="Largest allowed drop of the gate metric against FP32."
    ),
    metric: str | None = typer.Option(
        None, "--metric", help="Gate metric (default: accuracy, r2, or agreement without labels)."
    ),
    require_pass: bool = typer.Option(
        False, "--require-pass", help="Exit 1 unless at least one quantized variant passes."
    ),
    auto_exclude: int = typer.Option(
        0,
        "--auto-exclude",
        min=0,
        help="Re-quantize a failing static variant without its K worst nodes.",
    ),
    variant: list[str] = options.variant(": only these (repeat or comma-separate)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Score every variant (sklearn.metrics), compare with FP32, and gate the quantized ones."""
    from edgekit.toolkit.evaluate import EvaluateRequest, evaluate_bundle

    request = EvaluateRequest(
        data=data,
        target_column=target_column,
        max_drop=max_drop,
        metric=metric,
        auto_exclude=auto_exclude,
        variants=split_csv(variant) or None,
        command=shlex.join(["edgekit", *sys.argv[1:]]),
    )
    with err.status("evaluating variants…"):
        report = evaluate_bundle(bundle, request)
    failure = None
    if require_pass and not report["passed"]:
        failure = CheckFailedError(
            "no quantized variant passed the accuracy gate"
            if report["quantized"]
            else "the bundle has no quantized variant to pass the gate",
            hint="loosen --max-drop, try another method, or --auto-exclude K for static INT8",
        )
    if as_json:
        print_json({"ok": failure is None, **report})
    else:
        print_report(out, report)
    if failure is not None:
        if not as_json:
            report_error(failure)
        raise typer.Exit(failure.exit_code)
