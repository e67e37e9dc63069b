"""export_bundle: the whole export stage, from SOURCE and sample data to a verified bundle.

Everything is built in a staging folder beside the target and renamed into place only when
parity passed, so a failed or interrupted export leaves nothing behind.
"""

from __future__ import annotations

import platform
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent import atomic, owned
from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import FP32, Bundle, save_samples
from edge_agent.errors import CheckFailedError
from edge_agent.hashing import sha256_file
from edge_agent.monitoring import baseline
from edgekit.export import data as data_io
from edgekit.export import parity
from edgekit.export.exporters import ExportOptions, ExportResult, exporter_for
from edgekit.export.sources import load_source
from edgekit.export.tolerances import for_family

PARITY_MAX_ROWS = 2000
STORED_SAMPLE_ROWS = 200
SAMPLES_FILE = "samples.npz"
BASELINE_FILE = "baseline.json"


@dataclass
class ExportRequest:
    source: str
    data: Path
    output: Path
    trust_pickle: bool = False
    target_column: str | None = None
    options: ExportOptions = field(default_factory=ExportOptions)
    atol: float | None = None
    rtol: float | None = None
    name: str | None = None
    overwrite: bool = False
    command: str | None = None


class ParityError(CheckFailedError):
    """ONNX outputs differ from the native model's beyond tolerance."""


def _run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, feeds), strict=True))
    except Exception as exc:
        raise CheckFailedError(
            f"onnxruntime cannot run the exported model: {str(exc)[:800]}"
        ) from exc


def _bundle_name(request: ExportRequest) -> str:
    import re

    raw = request.name or Path(request.output).name or "model"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", raw).strip("-.") or "model"
    return name[:128]


def input_paths(request: ExportRequest) -> list[Path]:
    """The files this export reads: the output may never be, or hold, one of them."""
    paths = [Path(request.data)]
    source = request.source
    if Path(source).exists():
        paths.append(Path(source))
    elif ":" in source and source.rsplit(":", 1)[0].endswith(".py"):
        paths.append(Path(source.rsplit(":", 1)[0]))  # path/to/file.py:function
    if request.options.weights is not None:
        paths.append(Path(request.options.weights))
    return paths


def export_bundle(request: ExportRequest) -> tuple[Bundle, dict[str, Any]]:
    """Export, verify and write the bundle. Returns the bundle and the parity report."""
    output = Path(request.output)
    replacing = owned.check_replace(
        output,
        [owned.BUNDLE],
        input_paths(request),
        flag="--overwrite",
        flag_given=request.overwrite,
    )
    sample = data_io.load(request.data, request.target_column)
    loaded = load_source(request.source, trust_pickle=request.trust_pickle)
    exporter = exporter_for(loaded.obj)
    sample = sample.with_text_columns(exporter.text_columns(loaded.obj))

    with tempfile.TemporaryDirectory(prefix="edgekit-export-") as work:
        result = exporter.export(
            loaded.obj, sample.head(PARITY_MAX_ROWS), request.options, Path(work)
        )
        onnx_out = _run_onnx(result.onnx_path, result.feeds)
        tol = for_family(result.family).override(request.atol, request.rtol)
        report = parity.compare(result.signature["outputs"], result.native_outputs, onnx_out, tol)
        report["reference"] = (
            "onnxruntime (optimisations off)" if result.framework == "onnx" else result.framework
        )
        if not report["passed"]:
            raise ParityError(
                f"ONNX outputs differ from the native model: {parity.failure_summary(report)}",
                hint=result.parity_hint
                or "inspect the per-output table; loosen with `atol` only if the difference is understood",
                details=report,
            )
        with atomic.staging_dir(output, replace=replacing) as stage:
            bundle = _write_bundle(stage, request, loaded.info, sample, result, onnx_out, report)
    return Bundle.open(output), bundle.manifest["variants"][FP32]["parity"]


def _source_lineage(source_info: dict[str, Any], request: ExportRequest) -> dict[str, Any]:
    info = dict(source_info)
    weights = request.options.weights
    if weights is not None:
        info["weights"] = {"path": str(weights), "sha256": sha256_file(weights)}
    return info


def _write_bundle(
    stage: Path,
    request: ExportRequest,
    source_info: dict[str, Any],
    sample: data_io.SampleData,
    result: ExportResult,
    onnx_out: dict[str, np.ndarray],
    report: dict[str, Any],
) -> Bundle:
    manifest: dict[str, Any] = {
        "schema_version": manifest_io.SCHEMA_VERSION,
        "name": _bundle_name(request),
        "created": manifest_io.utc_now(),
        "task": result.task,
        "signature": result.signature,
        "variants": {},
        "files": {},
        "baseline": BASELINE_FILE,
        "samples": SAMPLES_FILE,
        "selection": {},
        "lineage": {
            "framework": result.framework,
            "exporter": "legacy" if request.options.legacy else "default",
            "versions": result.versions,
            "source": _source_lineage(source_info, request),
            "data": sample.fingerprint(),
            "command": request.command or shlex.join(sys.argv),
            "host": {
                "machine": platform.machine(),
                "system": platform.system(),
                "node": platform.node(),
            },
            "notes": result.notes,
        },
    }
    if result.signature.get("columns") is None:
        result.signature.pop("columns", None)
    bundle = Bundle(stage, manifest)
    bundle.add_variant(
        FP32,
        result.onnx_path,
        {
            "precision": "fp32",
            "opset": result.opset,
            "source_variant": None,
            "quantization": None,
            "parity": report,
            "evaluation": None,
        },
    )

    stored = {k: v[:STORED_SAMPLE_ROWS] for k, v in result.feeds.items()}
    expected = {f"__expected__/{k}": v[:STORED_SAMPLE_ROWS] for k, v in onnx_out.items()}
    if sample.target is not None:
        expected["__target__"] = np.asarray(sample.target[:STORED_SAMPLE_ROWS])
    save_samples(bundle.file_path(SAMPLES_FILE), {**stored, **expected})
    bundle.register_file(SAMPLES_FILE)

    doc = baseline.compute(result.signature, result.feeds, onnx_out)
    baseline.write(bundle.file_path(BASELINE_FILE), doc)
    bundle.register_file(BASELINE_FILE)
    manifest_io.append_history(manifest, "export", manifest["lineage"]["command"], variant=FP32)
    bundle.save()
    return bundle
