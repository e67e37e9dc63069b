"""Variants are unique by content: a quantization whose file is byte-identical to an existing
variant is reported and reused, not added; tune finds the reused settings without rebuilding
them, and measures byte-identical variants once."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.cli import app
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle
from edgekit.toolkit.targets import get_target
from edgekit.toolkit.tune import measure as measure_mod
from edgekit.toolkit.tune import sources
from edgekit.toolkit.tune.tuner import TuneRequest, tune
from edgekit.toolkit.tune.variants import matches
from tests.toolkit.quantize.bundles import mlp_bundle  # noqa: F401

RR = {"per_channel": False, "reduce_range": True, "weight_type": "int8"}


def test_a_byte_identical_variant_is_reused_not_added(copy_bundle, mlp_bundle):  # noqa: F811
    path = copy_bundle(mlp_bundle)
    first = quantize_bundle(path, QuantizeRequest(method="dynamic", options=RR, name="a"))
    assert first.duplicate_of is None
    again = quantize_bundle(path, QuantizeRequest(method="dynamic", options=RR, name="b"))
    assert again.duplicate_of == "a" and again.variant == "a"
    bundle = Bundle.open(path)
    assert "b" not in bundle.variants and not (path / "b.onnx").exists()
    same = bundle.variant("a")["quantization"]["same_bytes"]
    assert same[0]["name"] == "b" and same[0]["config"]["reduce_range"] is True
    # the CLI says so and exits 0
    result = CliRunner().invoke(
        app, ["quantize", str(path), "--method", "dynamic", "--reduce-range", "--name", "c"]
    )
    assert result.exit_code == 0, result.output
    assert "byte-identical to" in result.output and "reused" in result.output
    assert "c" not in Bundle.open(path).variants


def test_tune_does_not_rebuild_what_the_bundle_has(copy_bundle, mlp_bundle):  # noqa: F811
    """The AVX2 gateway asks for int8-dynamic U8S8 reduce_range: the bundle's reduce_range
    dynamic variant is that (its activations are uint8 at run time), so nothing is made."""
    path = copy_bundle(mlp_bundle)
    quantize_bundle(path, QuantizeRequest(method="dynamic", options=RR, name="int8-dynamic"))
    target = get_target("x86-avx2-gateway")
    recipe = next(r for r in target.prefer if r["kind"] == "int8-dynamic")
    bundle = Bundle.open(path)
    assert matches(recipe, "int8-dynamic", bundle.variant("int8-dynamic"))
    assert recipe not in sources.missing_recipes(bundle, target)


def test_tune_measures_byte_identical_variants_once(copy_bundle, mlp_bundle, monkeypatch):  # noqa: F811
    path = copy_bundle(mlp_bundle)
    quantize_bundle(path, QuantizeRequest(method="dynamic", options=RR, name="int8-dynamic"))
    # a bundle from before variants were unique by content: a copy under another name
    bundle = Bundle.open(path)
    copy = path.parent / "copy.onnx"
    shutil.copyfile(bundle.variant_path("int8-dynamic"), copy)
    record = {k: v for k, v in bundle.variant("int8-dynamic").items() if k in ("precision",)}
    bundle.add_variant(
        "int8-dynamic-copy",
        copy,
        {**record, "quantization": bundle.variant("int8-dynamic")["quantization"]},
    )
    bundle.save()
    seen = []
    real = measure_mod.LocalMeasurer.__call__

    def spy(self, candidate, effort):
        seen.append(candidate.variant)
        return real(self, candidate, effort)

    monkeypatch.setattr(measure_mod.LocalMeasurer, "__call__", spy)
    result = tune(
        TuneRequest(
            path, "local", graph_levels=("all",), base_duration_s=0.03, create_missing=False
        )
    )
    assert "int8-dynamic-copy" not in set(seen) and "int8-dynamic" in set(seen)
    assert result.variants["int8-dynamic-copy"].pruned.startswith("byte-identical to int8-dynamic")
    assert any("byte-identical" in n for n in result.notes)
