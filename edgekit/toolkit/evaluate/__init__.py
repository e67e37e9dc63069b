"""Evaluation of every variant of a bundle with sklearn.metrics, the accuracy gate against
FP32, and qdq_loss_debug reports for static INT8 variants that fail it.
"""

from edgekit.toolkit.evaluate.runner import EvaluateRequest, evaluate_bundle

__all__ = ["EvaluateRequest", "evaluate_bundle"]
