"""quant_pre_process (shape inference + graph optimisation) before quantizing, with fallbacks.

onnxruntime advises it before every quantization. Symbolic shape inference fails on torch
dynamo exports ("Incomplete symbolic shape inference"), so those start with it skipped; any
other failure falls back one step at a time, and the record says what was actually done.
It runs with a folder of our work area as working and temp directory, so its scratch files
never land in the user's folder or the system's temp folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Attempts, most complete first: (label, keyword arguments for quant_pre_process).
ATTEMPTS: list[tuple[str, dict[str, bool]]] = [
    ("symbolic shape inference + optimisation + onnx shape inference", {}),
    ("optimisation + onnx shape inference", {"skip_symbolic_shape": True}),
    ("onnx shape inference only", {"skip_symbolic_shape": True, "skip_optimization": True}),
]


@dataclass
class Preprocessed:
    path: Path
    record: dict[str, Any] = field(default_factory=dict)


class _Capture(logging.Handler):
    """quant_pre_process logs (not raises) an optimiser failure; keep those lines."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().splitlines()[0][:300])


@contextlib.contextmanager
def contained(path: Path) -> Iterator[None]:
    """Run onnxruntime's quantization tools with `path` as both the working folder and the
    temp folder: quant_pre_process and the calibrators make scratch files in each, and they
    must land (and be removed) inside our own work folder, never the user's or the system's."""
    old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
    os.chdir(path)
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = old_tmp
        os.chdir(old_cwd)


def is_dynamo_export(lineage: dict[str, Any] | None) -> bool:
    lineage = lineage or {}
    return lineage.get("framework") == "torch" and lineage.get("exporter", "default") != "legacy"


def preprocess(
    src: Path, workdir: Path, *, lineage: dict[str, Any] | None = None, enabled: bool = True
) -> Preprocessed:
    """Write the pre-processed model into `workdir`; on total failure use the model as it is."""
    src, workdir = Path(src).resolve(), Path(workdir).resolve()  # it runs in another folder
    if not enabled:
        return Preprocessed(src, {"applied": False, "reason": "disabled (--no-preprocess)"})
    from onnxruntime.quantization import quant_pre_process

    attempts = ATTEMPTS[1:] if is_dynamo_export(lineage) else ATTEMPTS
    tried: list[dict[str, Any]] = []
    if is_dynamo_export(lineage):
        tried.append(
            {
                "steps": ATTEMPTS[0][0],
                "skipped": "torch dynamo exports fail symbolic shape inference",
            }
        )
    logger = logging.getLogger("onnxruntime.quantization.shape_inference")
    for i, (label, kwargs) in enumerate(attempts):
        out = workdir / f"preprocessed-{i}.onnx"
        scratch = Path(tempfile.mkdtemp(prefix="pre-", dir=workdir))
        capture = _Capture()
        logger.addHandler(capture)
        try:
            with contained(scratch):
                quant_pre_process(str(src), str(out), **kwargs)
        except Exception as exc:  # it raises whatever its inner tools raise
            tried.append({"steps": label, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            continue
        finally:
            logger.removeHandler(capture)
        if capture.lines:
            tried.append({"steps": label, "warnings": capture.lines[:5]})
        return Preprocessed(
            out,
            {
                "applied": True,
                "tool": "onnxruntime.quantization.quant_pre_process",
                "steps": label,
                "options": kwargs,
                "attempts": tried,
            },
        )
    return Preprocessed(
        src,
        {
            "applied": False,
            "reason": "every quant_pre_process attempt failed; quantized the model as exported",
            "attempts": tried,
        },
    )


def options_from_record(record: dict[str, Any] | None) -> dict[str, bool] | None:
    """The quant_pre_process options a recorded run used (to rebuild its node names)."""
    if not record or not record.get("applied"):
        return None
    return dict(record.get("options", {}))


def replay(src: Path, workdir: Path, record: dict[str, Any] | None) -> Path:
    """Pre-process exactly as a recorded run did, so node and tensor names line up again."""
    options = options_from_record(record)
    if options is None:
        return src
    src, workdir = Path(src).resolve(), Path(workdir).resolve()
    from onnxruntime.quantization import quant_pre_process

    out = workdir / "preprocessed-replay.onnx"
    scratch = Path(tempfile.mkdtemp(prefix="pre-", dir=workdir))
    with contained(scratch):
        quant_pre_process(str(src), str(out), **options)
    return out
