"""Helpers for the fleet tests: encoded messages in the agent's format."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge_agent import telemetry
from edgekit.toolkit.fleet import synthetic as syn


def encoded(
    kind: str, thing: str, seq: int, body: dict[str, Any], end: float | None = None, **kw: Any
) -> tuple[str, bytes]:
    end = end if end is not None else time.time()
    msg = syn.message(kind, thing, seq, body, window=(end - 1.0, end), **kw)
    return telemetry.data_topic(thing, kind), telemetry.encode(msg)


def metrics(thing: str, seq: int, rng: np.random.Generator | None = None, **kw: Any):
    rng = rng if rng is not None else np.random.default_rng(seq)
    end = kw.pop("end", None)
    body = syn.metrics_body(rng, reference=kw.pop("reference", syn.feature_reference(3)), **kw)
    return encoded("metrics", thing, seq, body, end=end)
