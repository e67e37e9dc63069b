"""The Pareto front: the candidates no other candidate beats on every axis at once (the one
front of edgekit: tune's search and the bench report's accuracy-against-latency chart)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# axis name -> +1 to maximise, -1 to minimise
Axes = dict[str, int]
DEFAULT_AXES: Axes = {"accuracy": +1, "latency_ms": -1, "bytes": -1}


def dominates(a: dict[str, float], b: dict[str, float], axes: Axes) -> bool:
    """a is at least as good as b on every axis and strictly better on one."""
    better = False
    for axis, sign in axes.items():
        x, y = sign * a[axis], sign * b[axis]
        if x < y:
            return False
        if x > y:
            better = True
    return better


def pareto_front(
    items: Sequence[T], values: Callable[[T], dict[str, float]], axes: Axes = DEFAULT_AXES
) -> list[T]:
    """The non-dominated items, in input order. Items with equal values all stay."""
    vals = [values(item) for item in items]
    return [
        item
        for i, item in enumerate(items)
        if not any(dominates(vals[j], vals[i], axes) for j in range(len(items)) if j != i)
    ]
