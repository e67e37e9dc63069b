"""Quantization of a bundle's FP32 variant through onnxruntime.quantization (dynamic, static
QDQ/QOperator) and onnxconverter-common (FP16), with `auto` choosing from the model and the
hardware. Each method is a module that registers itself (registry.py).
"""

import logging


class _PreprocessAdvice(logging.Filter):
    """onnxruntime advises pre-processing through the root logger on every call; edgekit has
    already run quant_pre_process (or recorded why it could not), so the advice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")


logging.getLogger().addFilter(_PreprocessAdvice())

# the built-in methods register themselves on import (registry.py imports none of them)
from edgekit.toolkit.quantize import dynamic, fp16, static  # noqa: E402, F401
from edgekit.toolkit.quantize.pipeline import QuantizeRequest, QuantizeResult, quantize_bundle  # noqa: E402

__all__ = ["QuantizeRequest", "QuantizeResult", "quantize_bundle"]
