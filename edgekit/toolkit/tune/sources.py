"""Variants the target prefers but the bundle lacks are made with the quantize package, and
variants without an evaluation are evaluated with the evaluate package, so the gate always
judges real figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.targets import TargetProfile
from edgekit.toolkit.tune.variants import matches


def missing_recipes(bundle: Bundle, target: TargetProfile) -> list[dict[str, Any]]:
    """The target's recipes (other than fp32) that no variant of the bundle matches."""
    out = []
    for recipe in target.prefer:
        if recipe["kind"] == "fp32":
            continue
        if not any(matches(recipe, n, v) for n, v in bundle.variants.items()):
            out.append(recipe)
    return out


METHOD = {"int8-static": "static", "int8-dynamic": "dynamic", "fp16": "fp16"}


def quantize_options(recipe: dict[str, Any]) -> dict[str, Any]:
    """The quantize package's config fields for a profile recipe."""
    kind = recipe["kind"]
    if kind == "int8-static":
        opts = {
            "format": recipe.get("format", "QDQ").lower(),
            "per_channel": recipe.get("per_channel"),
            "reduce_range": recipe.get("reduce_range"),
            "activation_type": recipe.get("activation_type"),
            "weight_type": recipe.get("weight_type"),
        }
    elif kind == "int8-dynamic":
        opts = {
            "per_channel": recipe.get("per_channel"),
            "reduce_range": recipe.get("reduce_range"),
            "weight_type": recipe.get("weight_type"),
        }
    else:
        opts = {}
    return {k: v for k, v in opts.items() if v is not None}


def variant_name(recipe: dict[str, Any], taken: set[str]) -> str:
    """`int8-static`, or a name that spells the settings when that one is taken
    (`int8-static-u8s8-rr`)."""
    base = recipe["kind"]
    if base not in taken:
        return base
    parts = [base]
    if recipe.get("activation_type") and recipe.get("weight_type"):
        a = "s8" if recipe["activation_type"] == "int8" else "u8"
        w = "s8" if recipe["weight_type"] == "int8" else "u8"
        parts.append(a + w)
    if recipe.get("format") == "QOperator":
        parts.append("qop")
    if recipe.get("per_channel"):
        parts.append("pc")
    if recipe.get("reduce_range"):
        parts.append("rr")
    name = "-".join(parts)
    n = 2
    while name in taken:
        name = f"{'-'.join(parts)}-{n}"
        n += 1
    return name


def ensure_preferred(bundle: Bundle, target: TargetProfile, notes: list[str]) -> list[str]:
    """Create the missing preferred variants with the quantize package; returns their names.

    A recipe the quantizer refuses (a tree ensemble, nothing to quantize, outputs unusable)
    becomes a note, not a failure: tune goes on with the variants that exist.
    """
    from edge_agent.errors import EdgekitError
    from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle

    created = []
    for recipe in missing_recipes(bundle, target):
        fresh = Bundle.open(bundle.path)
        if any(matches(recipe, n, v) for n, v in fresh.variants.items()):
            continue
        name = variant_name(recipe, set(fresh.variants))
        request = QuantizeRequest(
            method=METHOD[recipe["kind"]],
            options=quantize_options(recipe),
            name=name,
            hardware=target.as_hardware(),
            command=f"edgekit tune {bundle.path} --target {target.name} (creates {name})",
        )
        try:
            made = quantize_bundle(bundle.path, request)
        except EdgekitError as exc:
            notes.append(f"could not create {name} for {target.name}: {exc.message}")
            continue
        if made.duplicate_of:
            notes.append(
                f"{name} would be byte-identical to {made.duplicate_of} (same sha256): "
                f"reused {made.duplicate_of}, nothing added"
            )
            continue
        created.append(name)
        notes.append(f"created {name}, which {target.name} prefers")
        if recipe.get("symmetric"):
            notes.append(
                f"{name}: the quantizer has no symmetric-activation option; TensorRT may "
                "need a re-quantization with symmetric scales"
            )
    return created


def _reference_data(bundle: Bundle) -> tuple[Path, str | None] | None:
    """The data fp32 was evaluated on, if that file is still there unchanged."""
    from edge_agent.hashing import sha256_file

    data = ((bundle.variants.get("fp32") or {}).get("evaluation") or {}).get("data") or {}
    path = Path(data["path"]) if data.get("path") else None
    if path is None or not path.is_file() or sha256_file(path) != data.get("sha256"):
        return None
    return path, data.get("target_column")


def evaluate_missing(bundle: Bundle, max_drop: float | None, notes: list[str]) -> list[str]:
    """Evaluate the variants that have no evaluation yet, with the evaluate package.

    On the data fp32 was evaluated on when that file is unchanged (so every drop is measured
    on the same rows); otherwise every variant on the bundle's stored samples (labelled by
    their `__target__` rows when export had labels). Returns the variants evaluated.
    """
    from edge_agent.errors import EdgekitError
    from edgekit.toolkit.evaluate import EvaluateRequest, evaluate_bundle
    from edgekit.toolkit.evaluate.gate import DEFAULT_MAX_DROP

    missing = [n for n, v in bundle.variants.items() if not v.get("evaluation")]
    if not missing or missing == ["fp32"] and len(bundle.variants) == 1:
        return []  # nothing to judge: fp32 alone is its own reference
    ref = _reference_data(bundle)
    if ref is not None:
        data, column, names = ref[0], ref[1], [n for n in missing if n != "fp32"]
        if not names:
            return []
    else:
        samples = bundle.manifest.get("samples")
        if not samples:
            notes.append(f"cannot evaluate {', '.join(missing)}: the bundle stores no samples")
            return []
        bundle.verify(only=[samples])
        data = bundle.file_path(samples)
        with np.load(data, allow_pickle=False) as npz:
            column = "__target__" if "__target__" in npz.files else None
        names = None  # all of them, against fp32 on the same rows
    try:
        evaluate_bundle(
            bundle.path,
            EvaluateRequest(
                data=data,
                target_column=column,
                max_drop=DEFAULT_MAX_DROP if max_drop is None else max_drop,
                variants=names,
                command=f"edgekit tune {bundle.path} (evaluates {', '.join(missing)})",
            ),
        )
    except EdgekitError as exc:
        notes.append(f"could not evaluate {', '.join(missing)}: {exc.message}")
        return []
    where = "the stored samples" if ref is None else str(data)
    notes.append(f"evaluated {', '.join(missing)} on {where}")
    return missing


def prune_duplicates(bundle: Bundle, infos: dict[str, Any], notes: list[str]) -> list[str]:
    """Variants whose files are byte-identical to an earlier one are measured once: the
    copies leave the candidate list with the twin named. Returns the pruned names."""
    first: dict[str, str] = {}
    pruned = []
    for name, info in infos.items():
        digest = bundle.variant(name).get("sha256")
        if not info.passed or not digest:
            continue
        if digest in first:
            info.pruned = f"byte-identical to {first[digest]} (same sha256): measured once"
            pruned.append(name)
        else:
            first[digest] = name
    if pruned:
        notes.append(
            "not measured, byte-identical to another variant: "
            + ", ".join(f"{n} ({infos[n].pruned.split(' (')[0]})" for n in pruned)
        )
    return pruned
