"""Transformer graph fusions (onnxruntime.transformers.optimizer): attention, skip-layernorm,
bias-gelu and friends fused into single contrib operators before quantizing.

Used by `--method auto` on attention models, and kept only when it fused something and the
fused graph measured faster here (for dynamic INT8: both graphs quantized, then timed); the
record says what was fused and what was timed.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any


def fuse(src: Path, out: Path) -> dict[str, Any]:
    """Write the fused model to `out`; returns {fused: {op: count}} or {error: ...}."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as exc:  # pragma: no cover - ships with onnxruntime
        return {"error": f"onnxruntime.transformers unavailable: {exc}"}
    logger = logging.getLogger("onnxruntime.transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = optimize_model(
                str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0
            )
            stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
            model.save_model_to_file(str(out), use_external_data_format=False)
    except Exception as exc:  # the fusion passes raise on graphs they do not expect
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        logger.setLevel(level)
    return {"fused": stats}
