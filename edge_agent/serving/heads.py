"""What a v2 response carries beyond the ONNX outputs: a classifier's label and probabilities.

A scikit-learn classifier's ONNX graph returns ``label`` and ``probabilities`` itself. A PyTorch
classifier's returns only ``logits``, while its bundle declares the task (classification) and the
class labels: the agent then answers with ``label`` (the declared label of the top class) and
``probabilities`` (softmax of the logits) next to the logits, so both kinds of bundle answer
alike. Derived from the logits after the run, outside the model and the monitor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.serving.validation import TensorSpec

LABEL, PROBABILITIES = "label", "probabilities"


@dataclass(frozen=True)
class ClassifierHead:
    logits: str  # the model output the head reads
    labels: np.ndarray  # the declared labels, by class index
    specs: dict[str, TensorSpec]  # the outputs it adds

    def add(
        self, names: list[str], arrays: list[np.ndarray], wanted: list[str] | None
    ) -> tuple[list[str], list[np.ndarray]]:
        """The outputs to answer with: the model's, then label and probabilities (all of them
        by default; only those asked for when the request names its outputs)."""
        logits = arrays[names.index(self.logits)]
        z = logits.astype(np.float32, copy=False)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        derived = {
            LABEL: self.labels[np.argmax(logits, axis=-1)],
            PROBABILITIES: e / e.sum(axis=-1, keepdims=True),
        }
        if wanted is None:
            return [*names, LABEL, PROBABILITIES], [*arrays, derived[LABEL], derived[PROBABILITIES]]
        by_name = dict(zip(names, arrays, strict=True)) | derived
        return list(wanted), [by_name[n] for n in wanted]


def classifier_head(bundle: Any, outputs: dict[str, TensorSpec]) -> ClassifierHead | None:
    """The head a bundle declares: classification, one logits output, labels that match its
    width, and no label output of its own; else None."""
    if bundle.task != "classification" or LABEL in outputs or PROBABILITIES in outputs:
        return None
    roles = {o["name"]: o.get("role") for o in bundle.signature.get("outputs", [])}
    logits = [n for n, r in roles.items() if r == "logits" and n in outputs]
    labels = bundle.labels
    if len(logits) != 1 or not isinstance(labels, list) or not labels:
        return None
    width = outputs[logits[0]].shape[-1] if outputs[logits[0]].shape else None
    if width is not None and width != len(labels):
        return None
    if all(type(v) is int for v in labels):
        values, datatype = np.asarray(labels, dtype=np.int64), "INT64"
    else:
        values, datatype = np.asarray([str(v) for v in labels], dtype=str), "BYTES"
    specs = {
        LABEL: TensorSpec(LABEL, datatype, values.dtype, (None,)),
        PROBABILITIES: TensorSpec(PROBABILITIES, "FP32", np.dtype(np.float32), (None, len(labels))),
    }
    return ClassifierHead(logits[0], values, specs)
