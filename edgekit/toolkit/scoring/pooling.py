"""Sentence embeddings from token embeddings: how an encoder is judged.

Cosine over a whole [sequence, hidden] state counts the padding positions, which carry no
meaning and differ most after quantization; the embedding a user keeps is one vector per
sentence, pooled over the real tokens. The manifest's signature["embedding"] (declared with
`export --pooling` or detected) says which output, which mask and which pooling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.errors import BadInputError


def pool(tokens: np.ndarray, mask: np.ndarray | None, how: str) -> np.ndarray:
    """(rows, sequence, hidden) -> (rows, hidden): the masked mean, or the first token."""
    tokens = np.asarray(tokens, dtype=np.float64)
    if tokens.ndim != 3:
        raise BadInputError(
            f"the embedding output has shape {tokens.shape}; pooling needs (rows, sequence, hidden)"
        )
    if how == "cls":
        return tokens[:, 0, :]
    if mask is None:
        return tokens.mean(axis=1)
    weights = (np.asarray(mask) != 0).astype(np.float64)[:, : tokens.shape[1], None]
    if weights.shape[:2] != tokens.shape[:2]:
        raise BadInputError(
            f"the attention mask has shape {np.shape(mask)} for token embeddings of shape "
            f"{tokens.shape}"
        )
    counts = np.clip(weights.sum(axis=1), 1e-9, None)  # as sentence-transformers clamps
    return (tokens * weights).sum(axis=1) / counts


def pooled(
    signature: dict[str, Any], outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray]
) -> tuple[np.ndarray, str] | None:
    """The pooled sentence embeddings and how they were read, or None for other models."""
    spec = signature.get("embedding")
    if not spec or spec["output"] not in outputs:
        return None
    mask_name = spec.get("mask")
    mask = feeds.get(mask_name) if mask_name else None
    if mask_name and mask is None and spec["pooling"] == "mean":
        raise BadInputError(f"the data has no {mask_name!r} to pool {spec['output']} with")
    how = (
        f"{spec['pooling']} pooling of {spec['output']}"
        + (f" over {mask_name}" if mask is not None and spec["pooling"] == "mean" else "")
        + f" ({spec.get('source', 'declared')})"
    )
    return pool(outputs[spec["output"]], mask, spec["pooling"]), how
