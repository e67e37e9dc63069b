"""Business figures from measured throughput: what a million predictions cost at an hourly
price, and what one user costs per month given how many predictions they make.

Prices come from --price-per-hour or the editable table shipped beside this module
(prices.yaml), or a table of the user's own (--prices FILE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Price:
    name: str
    per_hour: float
    kind: str = "custom"
    note: str = ""


def load_prices(path: str | Path | None = None) -> dict[str, Price]:
    import yaml

    try:
        text = (
            Path(path).read_text("utf-8")
            if path
            else resources.files("edgekit.toolkit.bench").joinpath("prices.yaml").read_text("utf-8")
        )
        doc = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"cannot read the price table {path}: {exc}") from exc
    table = doc.get("prices") if isinstance(doc, dict) else None
    if not isinstance(table, dict) or not table:
        raise BadInputError(
            f"price table {path or 'prices.yaml'} has no `prices:` mapping",
            hint="write `prices: {name: {per_hour: 0.08, kind: instance}}`",
        )
    out = {}
    for name, row in table.items():
        try:
            per_hour = float(row["per_hour"])
        except (TypeError, KeyError, ValueError) as exc:
            raise BadInputError(f"price {name!r} needs a numeric per_hour") from exc
        if not math.isfinite(per_hour) or per_hour < 0:
            raise BadInputError(f"price {name!r} must be a number >= 0, got {per_hour}")
        out[str(name)] = Price(
            str(name), per_hour, str(row.get("kind", "custom")), str(row.get("note", ""))
        )
    return out


def choose_price(
    price_per_hour: float | None, instance: str | None, table_path: str | Path | None = None
) -> Price | None:
    if price_per_hour is not None:
        if not math.isfinite(price_per_hour) or price_per_hour < 0:
            raise BadInputError(f"`price_per_hour` must be a number >= 0, got {price_per_hour}")
        if instance is not None:
            raise BadInputError("give `price_per_hour` or `instance`, not both")
        return Price("--price-per-hour", float(price_per_hour))
    if instance is None:
        return None
    table = load_prices(table_path)
    if instance not in table:
        raise BadInputError(
            f"no price named {instance!r} in the price table",
            hint="known: " + ", ".join(table) + " (or give `price_per_hour`)",
        )
    return table[instance]


def cost_figures(
    samples_per_s: float, price: Price, predictions_per_user: float | None = None
) -> dict[str, Any]:
    """Cost of one million predictions (and of one user per month) at full utilisation."""
    per_million = (
        price.per_hour / (samples_per_s * 3600.0) * 1e6 if samples_per_s > 0 else float("inf")
    )
    out: dict[str, Any] = {
        "price": price.name,
        "per_hour": price.per_hour,
        "cost_per_million": per_million,
        "predictions_per_hour": samples_per_s * 3600.0,
    }
    if predictions_per_user is not None:
        out["predictions_per_user_month"] = predictions_per_user
        out["cost_per_user_month"] = per_million * predictions_per_user / 1e6
        out["users_per_machine"] = (
            samples_per_s * 3600.0 * HOURS_PER_MONTH / predictions_per_user
            if predictions_per_user > 0
            else None
        )
    return out
