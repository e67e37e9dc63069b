"""`edgekit export`: a framework model and sample data to a verified ONNX bundle."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, cast

import typer
from rich.table import Table

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import (
    JSON_OPTION,
    err,
    fmt_bytes,
    handle_errors,
    out,
    print_json,
    report_error,
)
from edgekit.toolkit.present.format import name_column, shorten_middle


def parse_dynamic_axes(specs: list[str]) -> dict[str, dict[int, str]]:
    """`image:2=height,3=width` -> {"image": {2: "height", 3: "width"}}; a part with its own
    `INPUT:` starts another input, so `tokens:1=seq,mask:1=seq` names two (as repeating the
    option does) instead of reading `mask:1` as an axis."""
    axes: dict[str, dict[int, str]] = {}
    for spec in specs:
        name = ""
        for part in spec.split(","):
            head, sep, rest = part.partition(":")
            if sep:
                name, part = head.strip(), rest
            if not name or not part.strip():
                raise BadInputError(
                    f"--dynamic-axes {spec!r} is not INPUT:AXIS=NAME[,AXIS=NAME]",
                    hint="e.g. image:2=height,3=width; several inputs: "
                    "tokens:1=sequence,mask:1=sequence (or repeat --dynamic-axes)",
                )
            axis, _, label = part.partition("=")
            if not axis.strip().isdigit():
                raise BadInputError(f"--dynamic-axes {spec!r}: axis {axis!r} is not a number")
            axes.setdefault(name, {})[int(axis)] = label.strip() or f"{name}_dim{axis.strip()}"
    return axes


def _command_line(source: str, **options: Any) -> str:
    """The command as a user would type it, rebuilt from the parsed options (sys.argv is
    not the command when the CLI runs in-process, from the demo or a test runner)."""
    words = ["edgekit", "export", source]
    for key, value in options.items():
        flag = "-o" if key == "output" else "--" + key.replace("_", "-")
        if value is None or value is False or value == []:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def parity_table(report: dict[str, Any]) -> Table:
    """Per output: the worst differences, the share of rows out of tolerance, label agreement.
    The tolerance is one per report, so it goes in the caption rather than every row."""
    tol = report["tolerance"]
    table = Table(
        title=f"parity on {report['rows']} rows ({report.get('reference', 'native')} vs onnxruntime)",
        caption=f"tolerance: |diff| ≤ {tol['atol']:g} + {tol['rtol']:g}·range of the output "
        "(1 for probabilities)\n"
        f"on ≥{1 - tol['max_mismatch_rate']:.0%} of rows; labels agree on ≥{tol['min_label_agreement']:.1%}",
    )
    # names up to 16 characters keep one line (`probabilities` folded to `probabilitie`/`s` at
    # 80 columns); the number headers take two lines instead
    longest = max((len(n) for n in report["outputs"]), default=6)
    name_column(table, "output", min_width=min(longest, 16))
    for col in ("max abs\ndiff", "of range", "rows out\nof tol", "label\nagreement"):
        table.add_column(col, justify="right")
    table.add_column("result")
    for name, r in report["outputs"].items():
        ok = "[green]pass[/]" if r["passed"] else "[red]FAIL[/]"
        name = shorten_middle(name, 32)
        if "error" in r:
            table.add_row(name, "-", "-", "-", "-", f"{ok} {r['error']}")
        elif r["kind"] == "label":
            table.add_row(name, "-", "-", "-", f"{r['label_agreement']:.2%}", ok)
        else:
            table.add_row(
                name,
                f"{r['max_abs_diff']:.3g}",
                f"{r['max_diff_of_scale']:.2%}",
                f"{r['mismatch_rate']:.2%}",
                "-",
                ok,
            )
    return table


@app.command("export")
@handle_errors
def export_command(
    source: str = typer.Argument(
        ...,
        help="Model file (.skops, .joblib/.pkl, .pt2, .onnx) or factory "
        "package.module:function / path/to/file.py:function.",
    ),
    data: Path = typer.Option(
        ..., "--data", help="Sample data: CSV, Parquet, NPY or NPZ (≥200 rows advised)."
    ),
    output: Path = options.output("the bundle folder to create.", ...),
    trust_pickle: bool = typer.Option(
        False,
        "--trust-pickle",
        "--trust-code",
        help="Allow loading .joblib/.pkl files. Unpickling "
        "runs any code in the file: only for files you made yourself. "
        "(--trust-code is the same consent that `edgekit bench` asks for.)",
    ),
    target_column: str | None = typer.Option(
        None,
        "--target-column",
        help="Label to drop from the data if present: a CSV/Parquet column, an NPZ key, "
        "or an NPY column index (-1 for the last).",
    ),
    opset: int | None = typer.Option(
        None, "--opset", min=7, help="ONNX opset (default: the exporter's)."
    ),
    dynamic_axes: list[str] = typer.Option(
        [],
        "--dynamic-axes",
        help="Extra dynamic axes, INPUT:AXIS=NAME[,...]; the batch axis is always dynamic.",
    ),
    weights: Path | None = typer.Option(
        None, "--weights", help="torch state dict, loaded with weights_only=True."
    ),
    legacy_exporter: bool = typer.Option(
        False,
        "--legacy-exporter",
        help="Use torch's TorchScript exporter when the dynamo exporter cannot trace the model.",
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="classification|regression|raw for torch/ONNX models (scikit-learn is detected).",
    ),
    labels: str | None = typer.Option(
        None, "--labels", help="Comma-separated class labels for a torch/ONNX classifier."
    ),
    outputs: str | None = typer.Option(
        None,
        "--outputs",
        help="torch: comma-separated outputs to keep when forward() returns a dict, tuple or "
        "ModelOutput (names like last_hidden_state, pooler_output, output_0; default: all).",
    ),
    pooling: str | None = typer.Option(
        None,
        "--pooling",
        help="torch encoders: how evaluate pools the token embeddings into one vector per "
        "sentence with the attention mask: mean|cls|none (default: detected).",
    ),
    atol: float | None = typer.Option(
        None, "--atol", help="Override the family's absolute parity tolerance."
    ),
    rtol: float | None = typer.Option(
        None, "--rtol", help="Override the family's relative parity tolerance."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Model name in the manifest (default: folder name)."
    ),
    overwrite: bool = options.overwrite("a bundle folder an earlier export made"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Export a scikit-learn or PyTorch model (or an ONNX file) to a verified ONNX bundle."""
    from edgekit.export.builder import ExportRequest, ParityError, export_bundle
    from edgekit.export.exporters import ExportOptions

    if task not in (None, "classification", "regression", "raw"):
        raise BadInputError(f"--task {task!r} is not classification, regression or raw")
    label_list = [s.strip() for s in labels.split(",")] if labels else None
    request = ExportRequest(
        source=source,
        data=data,
        output=output,
        trust_pickle=trust_pickle,
        target_column=target_column,
        options=ExportOptions(
            opset=opset,
            dynamic_axes=parse_dynamic_axes(dynamic_axes),
            legacy=legacy_exporter,
            weights=weights,
            task=task,
            labels=label_list,
            outputs=[o.strip() for o in outputs.split(",") if o.strip()] if outputs else None,
            pooling=pooling,
        ),
        atol=atol,
        rtol=rtol,
        name=name,
        overwrite=overwrite,
        command=_command_line(
            source,
            data=data,
            output=output,
            trust_pickle=trust_pickle,
            target_column=target_column,
            opset=opset,
            dynamic_axes=dynamic_axes,
            weights=weights,
            legacy_exporter=legacy_exporter,
            task=task,
            labels=labels,
            outputs=outputs,
            pooling=pooling,
            atol=atol,
            rtol=rtol,
            name=name,
            overwrite=overwrite,
        ),
    )
    try:
        with err.status("exporting and checking parity…"):
            bundle, report = export_bundle(request)
    except ParityError as exc:
        if not as_json:
            out.print(parity_table(cast("dict[str, Any]", exc.details)))  # the parity report
        report_error(exc, as_json)
        raise typer.Exit(exc.exit_code) from None
    variant = bundle.variant("fp32")
    if as_json:
        print_json(
            {
                "ok": True,
                "bundle": str(bundle.path),
                "name": bundle.manifest["name"],
                "task": bundle.task,
                "variant": "fp32",
                "bytes": variant["bytes"],
                "sha256": variant["sha256"],
                "parity": report,
            }
        )
        return
    out.print(parity_table(report))
    out.print(
        f"[green]✓[/] bundle [bold]{bundle.path}[/] ({bundle.manifest['lineage']['framework']}, "
        f"{bundle.task}, fp32 {fmt_bytes(variant['bytes'])})"
    )
