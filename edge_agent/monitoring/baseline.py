"""The drift baseline (contract 2): per feature, a reference distribution on fixed bins.

Bins are fixed here, once, from the export data, so that counts from any window on any
device can be added up and compared with the same reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent import atomic
from edge_agent.errors import BundleError
from edge_agent.monitoring.features import FeatureSpec, specs_for, values_for
from edge_agent.schemas import validation_errors

SCHEMA_VERSION = 1
DEFAULT_BINS = 10
MAX_CATEGORIES = 50
OTHER = "__other__"


def numeric_summary(values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    finite = values[~missing]
    out: dict[str, Any] = {
        "count": int(values.size),
        "missing_rate": float(missing.mean()) if values.size else 0.0,
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
        "bin_edges": [],
        "bin_shares": [],
    }
    if finite.size == 0:
        return out
    # Edges are observed values (inverted CDF, no interpolation): with right-closed bins each
    # bin then holds its share exactly, and a discrete feature gets one bin per value instead
    # of empty bins between values. Repeated quantiles collapse into one edge.
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    edges = np.unique(quantiles)
    counts = numeric_counts(finite, edges)
    out.update(
        mean=float(finite.mean()),
        std=float(finite.std()),
        min=float(finite.min()),
        max=float(finite.max()),
        bin_edges=[float(e) for e in edges],
        bin_shares=[float(c) for c in counts / counts.sum()],
    )
    return out


def numeric_counts(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Counts over len(edges)+1 bins: (-inf, e0], (e0, e1], ..., (e_last, inf). NaN is skipped."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)


def categorical_summary(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values).astype(str)
    missing = np.isin(values, ["", "nan", "None"])
    present = values[~missing]
    cats, counts = np.unique(present, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    total = max(int(present.size), 1)
    shares = {str(cats[i]): float(counts[i]) / total for i in order[:MAX_CATEGORIES]}
    rest = 1.0 - sum(shares.values())
    if len(order) > MAX_CATEGORIES and rest > 0:
        shares[OTHER] = rest
    return {
        "count": int(values.size),
        "missing_rate": float(missing.mean()) if values.size else 0.0,
        "categories": shares,
    }


def categorical_counts(values: np.ndarray, categories: list[str]) -> np.ndarray:
    """Counts per baseline category, in the baseline's order; unseen values count as OTHER."""
    values = np.asarray(values).astype(str)
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + (0 if OTHER in index else 1))
    other = index.get(OTHER, len(categories))
    for v in values:
        counts[index.get(v, other)] += 1
    return counts


def _describe(spec: FeatureSpec, values: np.ndarray, bins: int) -> dict[str, Any]:
    stats = numeric_summary(values, bins) if spec.kind == "numeric" else categorical_summary(values)
    return {"name": spec.name, "kind": spec.kind, "source": spec.source(), **stats}


def compute(
    signature: dict[str, Any],
    inputs: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    *,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Build the baseline document from sample inputs and the model's outputs on them."""
    rows = int(next(iter(inputs.values())).shape[0])
    feature_specs = specs_for(signature["inputs"], inputs)
    prediction_specs = specs_for(signature["outputs"], outputs, prediction=True)
    return {
        "schema_version": SCHEMA_VERSION,
        "rows": rows,
        "features": [_describe(s, values_for(s, inputs), bins) for s in feature_specs],
        "predictions": [_describe(s, values_for(s, outputs), bins) for s in prediction_specs],
    }


def validate(doc: dict[str, Any]) -> None:
    """Raise BundleError listing every way `doc` breaks baseline.schema.json."""
    problems = validation_errors(doc, "baseline")
    if problems:
        listed = "\n  ".join(problems[:20])
        raise BundleError(
            f"drift baseline does not match schema version {SCHEMA_VERSION}:\n  {listed}",
            hint="the baseline was edited by hand or made by an incompatible edgekit; re-export",
        )


def write(path: str | Path, doc: dict[str, Any]) -> None:
    """Validate, then write atomically: a baseline on disk always matches its schema."""
    validate(doc)
    atomic.write_json(path, doc)
