"""What a bundle variant is, in the vocabulary of target profiles (fp32, fp16, int8-dynamic,
int8-static), and whether it matches a profile's recipe."""

from __future__ import annotations

from typing import Any

KINDS = ("fp32", "fp16", "int8-dynamic", "int8-static")
_TYPE_ALIASES = {
    "int8": "int8",
    "qint8": "int8",
    "s8": "int8",
    "uint8": "uint8",
    "quint8": "uint8",
    "u8": "uint8",
}
RECIPE_SETTINGS = ("format", "activation_type", "weight_type", "per_channel", "reduce_range")


def _norm_type(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        # "uint8 (computed at run time by DynamicQuantizeLinear)" is uint8
        key = value.lower().replace("quanttype.", "").split()[0]
        return _TYPE_ALIASES.get(key, key)
    return value


def quantization_settings(variant: dict[str, Any]) -> dict[str, Any]:
    """The variant's quantization record in recipe spelling (types as int8/uint8)."""
    q = variant.get("quantization") or {}
    flat = {**q, **(q.get("config") or {})}  # quantize records its method's config apart
    out = {k: _norm_type(v) for k, v in flat.items() if not isinstance(v, (dict, list))}
    fmt = out.get("format") or out.get("quant_format")
    if isinstance(fmt, str):
        out["format"] = "QDQ" if fmt.lower().endswith("qdq") else "QOperator"
    return out


def variant_kind(name: str, variant: dict[str, Any]) -> str:
    """fp32, fp16, int8-dynamic or int8-static (or 'other' for anything else)."""
    precision = variant.get("precision")
    if precision in ("fp32", "fp16"):
        return precision
    method = str(quantization_settings(variant).get("method", "")).lower()
    if "dynamic" in method:
        return "int8-dynamic"
    if "static" in method:
        return "int8-static"
    lowered = name.lower()
    for kind in ("int8-dynamic", "int8-static"):
        if kind.split("-")[1] in lowered:
            return kind
    return "other" if precision not in ("int8", "uint8", "mixed") else "int8-static"


def matches(recipe: dict[str, Any], name: str, variant: dict[str, Any]) -> bool:
    """Same kind, and every setting the recipe names and the variant records agrees; or the
    same for settings that produced byte-identical files (quantization["same_bytes"])."""
    if _matches_one(recipe, name, variant):
        return True
    q = variant.get("quantization") or {}
    return any(
        _matches_one(recipe, name, {**variant, "quantization": {**alt, "same_bytes": []}})
        for alt in q.get("same_bytes") or []
    )


def _matches_one(recipe: dict[str, Any], name: str, variant: dict[str, Any]) -> bool:
    if variant_kind(name, variant) != recipe["kind"]:
        return False
    settings = quantization_settings(variant)
    for key in RECIPE_SETTINGS:
        if key in recipe and key in settings and settings[key] != recipe[key]:
            return False
    return True


def describe_kind(name: str, variant: dict[str, Any]) -> str:
    """'int8-static (QDQ S8S8, per-channel)' style label for reasons and tables."""
    kind = variant_kind(name, variant)
    if not kind.startswith("int8"):
        return kind
    s = quantization_settings(variant)
    a, w = s.get("activation_type"), s.get("weight_type")
    parts = []
    if s.get("format"):
        parts.append(s["format"])
    if a and w:
        parts.append(("S8" if a == "int8" else "U8") + ("S8" if w == "int8" else "U8"))
    if s.get("reduce_range"):
        parts.append("reduce_range")
    return f"{kind} ({' '.join(parts)})" if parts else kind
