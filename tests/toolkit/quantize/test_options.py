"""The quantize options reach onnxruntime.quantization: read back from the model it wrote
(scale shapes, weight ranges, zero-point types, operator kinds), not from what was recorded.
Bad names and exclusions are refused before anything is written."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.cli import app
from edgekit.toolkit.quantize import QuantizeRequest, calibration, quantize_bundle
from tests.probe_cpu import hardware_defaults
from tests.toolkit.quantize.test_auto import NO_VNNI_X86, VNNI_X86

runner = CliRunner()


def _model(path, name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    model = onnx.load(str(Bundle.open(path).variant_path(name)))
    return model, {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _weights(inits: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The quantized weight tensors (conv/gemm kernels), not scales, zero points or biases."""
    return [a for a in inits.values() if a.dtype in (np.int8, np.uint8) and a.ndim >= 2]


def _activation_zero_point(name: str) -> bool:
    return name.endswith("zero_point") and "weight" not in name and "bias" not in name


def test_static_settings_show_in_the_written_model(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    options = {
        "format": "qoperator",
        "per_channel": True,
        "reduce_range": True,
        "activation_type": "uint8",
        "weight_type": "int8",
    }
    quantize_bundle(path, QuantizeRequest(method="static", options=options, name="all-on"))
    quantize_bundle(path, QuantizeRequest(method="static", name="plain"))

    model, inits = _model(path, "all-on")
    ops = {n.op_type for n in model.graph.node}
    assert "QLinearConv" in ops and "DequantizeLinear" in ops  # QOperator, not QDQ pairs
    weights = _weights(inits)
    assert weights and all(w.dtype == np.int8 for w in weights)
    # reduce_range: 7-bit weights
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    # per-channel: one scale per output channel of each conv kernel
    conv_scales = [a for n, a in inits.items() if n.endswith("weight_scale") and a.ndim == 1]
    assert conv_scales and all(a.size > 1 for a in conv_scales)
    # uint8 activations: the input's zero point
    act_zero = [a for n, a in inits.items() if _activation_zero_point(n)]
    assert act_zero and all(a.dtype == np.uint8 for a in act_zero)

    # "plain" leaves everything to the defaults: the probed CPU's (x86 without VNNI: 7-bit
    # weights and uint8 activations; with VNNI: full-range signed S8S8)
    defaults = {"reduce_range": False, "activation_type": "int8", **hardware_defaults("static")}
    model, inits = _model(path, "plain")
    assert "QLinearConv" not in {n.op_type for n in model.graph.node}  # QDQ by default
    limit = max(int(np.abs(w.astype(np.int32)).max()) for w in _weights(inits))
    assert (limit <= 64) == defaults["reduce_range"]
    assert all(
        a.size == 1 for n, a in inits.items() if n.endswith("scale")
    )  # per-tensor by default
    act_zero = [a for n, a in inits.items() if _activation_zero_point(n)]
    assert act_zero and all(a.dtype == np.dtype(defaults["activation_type"]) for a in act_zero)


def test_calibration_method_changes_the_activation_ranges(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    scales = {}
    for method in ("minmax", "percentile"):
        quantize_bundle(
            path, QuantizeRequest(method="static", options={"calibrate": method}, name=method)
        )
        _, inits = _model(path, method)
        scales[method] = {
            n: float(a.reshape(-1)[0])
            for n, a in inits.items()
            if n.endswith("_scale") and a.size == 1
        }
    shared = set(scales["minmax"]) & set(scales["percentile"])
    assert shared
    # percentile clips the tails MinMax keeps: some activation range must be narrower
    assert any(scales["percentile"][n] < scales["minmax"][n] * 0.999 for n in shared)


def test_dynamic_weight_type_and_per_channel_reach_the_model(copy_bundle, mlp_bundle):
    path = copy_bundle(mlp_bundle)
    quantize_bundle(
        path,
        QuantizeRequest(
            method="dynamic", options={"weight_type": "uint8", "per_channel": True}, name="u8pc"
        ),
    )
    _, inits = _model(path, "u8pc")
    weights = _weights(inits)
    assert weights and all(w.dtype == np.uint8 for w in weights)
    assert any(n.endswith("scale") and a.size > 1 for n, a in inits.items())


def test_fp16_keeps_float32_inputs_and_outputs(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    quantize_bundle(path, QuantizeRequest(method="fp16"))
    model, inits = _model(path, "fp16")
    f32 = onnx.TensorProto.FLOAT
    assert all(v.type.tensor_type.elem_type == f32 for v in model.graph.input)
    assert all(v.type.tensor_type.elem_type == f32 for v in model.graph.output)
    assert any(a.dtype == np.float16 for a in inits.values())


@pytest.mark.parametrize(
    ("hardware", "user", "expected"),
    [
        (NO_VNNI_X86, {}, {"reduce_range": True, "activation_type": "uint8"}),
        (NO_VNNI_X86, {"reduce_range": False}, {"reduce_range": False, "activation_type": "uint8"}),
        (VNNI_X86, {}, {"reduce_range": False, "activation_type": "int8"}),
    ],
)
def test_explicit_static_takes_hardware_defaults_for_what_the_user_left_out(
    copy_bundle, cnn_bundle, hardware, user, expected
):
    path = copy_bundle(cnn_bundle)
    result = quantize_bundle(
        path, QuantizeRequest(method="static", options=user, hardware=hardware)
    )
    q = result.entry["quantization"]
    for key, value in expected.items():
        assert q["config"][key] == value
    taken = q["hardware_defaults"]["options"]
    assert not set(user) & set(taken)  # the user's settings win
    assert "VNNI" in q["hardware_defaults"]["reason"]
    _, inits = _model(path, result.variant)
    limit = max(int(np.abs(w.astype(np.int32)).max()) for w in _weights(inits))
    assert (limit <= 64) == expected["reduce_range"]


def _quantize_cli(*args):
    return runner.invoke(app, ["quantize", *map(str, args)])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "static", "--name", "a b"], "not allowed"),
        (["--method", "static", "--name", "../up"], "not allowed"),
        (["--method", "fp16", "--name", "fp32", "--overwrite"], "fp32 variant cannot"),
        (["--method", "static", "--exclude-nodes", "node_conv2dd"], "close: node_conv2d"),
        (["--method", "dynamic", "--exclude-op-types", "Gemm,Bogus"], "'Bogus'"),
        (["--method", "fp16", "--exclude-op-types", "Bogus"], "'Bogus'"),
    ],
)
def test_bad_names_and_exclusions_exit_2_and_write_nothing(copy_bundle, cnn_bundle, args, message):
    path = copy_bundle(cnn_bundle)
    files = sorted(p.name for p in path.iterdir())
    manifest = (path / "manifest.json").read_bytes()
    result = _quantize_cli(path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(p.name for p in path.iterdir()) == files
    assert (path / "manifest.json").read_bytes() == manifest


def test_percentile_calibration_leaves_out_rows_with_missing_values(
    copy_bundle, tabular_bundle, tabular_data, tmp_path
):
    """onnxruntime's percentile calibrator cannot histogram NaN; minmax and entropy can."""
    import pandas as pd

    frame = pd.read_csv(tabular_data)
    frame.loc[::7, "mean_area"] = np.nan
    holes = tmp_path / "holes.csv"
    frame.to_csv(holes, index=False)
    path = copy_bundle(tabular_bundle)
    result = quantize_bundle(
        path,
        QuantizeRequest(
            method="static",
            options={"calibrate": "percentile"},
            calibration=holes,
            target_column="target",
        ),
    )
    calib = result.entry["quantization"]["calibration"]
    used = frame.drop(columns=["target"]).iloc[: calibration.MAX_ROWS]
    expected_dropped = int(used.isna().any(axis=1).sum())  # the data has holes of its own too
    assert expected_dropped > len(used) // 7
    assert calib["rows_dropped_missing_values"] == expected_dropped
    assert calib["rows"] == len(used) - expected_dropped


def test_too_few_complete_rows_is_refused():
    from edge_agent.errors import BadInputError

    x = np.ones((40, 3), np.float32)
    x[:10, 1] = np.nan
    calib = calibration.CalibrationSet({"x": x}, {"kind": "samples", "rows": 40})
    kept = calibration.complete_rows(calib, "why", min_rows=20)
    assert kept.rows == 30 and kept.source["rows_dropped_missing_values"] == 10
    assert not np.isnan(kept.feeds["x"]).any()
    with pytest.raises(BadInputError, match="30 complete rows"):
        calibration.complete_rows(calib, "why", min_rows=32)
    clean = calibration.CalibrationSet({"x": x[10:]}, {"kind": "samples"})
    assert calibration.complete_rows(clean, "why") is clean


def test_a_quantizer_crash_names_the_node_and_what_to_try():
    from onnx import helper

    from edgekit.toolkit.quantize.failures import quantizer_failure
    from edgekit.toolkit.quantize.static import StaticConfig

    def quantize_op(node):  # stands for an onnxruntime.quantization operator class
        raise AttributeError("'NoneType' object has no attribute 'extend'")

    try:
        quantize_op(helper.make_node("MatMul", ["a", "b"], ["c"], name="MatMul1"))
    except AttributeError as exc:
        error = quantizer_failure("static", StaticConfig(format="qoperator"), exc)
    assert "at node 'MatMul1' (MatMul)" in error.message and "AttributeError" in error.message
    assert "drop `format` qoperator" in error.hint
    assert "`exclude_nodes` MatMul1" in error.hint and "`exclude_op_types` MatMul" in error.hint
    assert error.exit_code == 2


def test_target_profile_sets_the_hardware_defaults(copy_bundle, cnn_bundle):
    import json

    path = copy_bundle(cnn_bundle)
    result = _quantize_cli(path, "--method", "static", "--target", "x86-avx2-gateway", "--json")
    assert result.exit_code == 0, result.output
    q = json.loads(result.stdout)["quantization"]
    assert q["hardware_defaults"]["hardware"]["vnni"] is False  # the profile, not this machine
    assert q["config"]["reduce_range"] and q["config"]["activation_type"] == "uint8"
    auto = _quantize_cli(path, "--method", "auto", "--target", "rpi4", "--name", "arm", "--json")
    assert auto.exit_code == 0, auto.output
    assert json.loads(auto.stdout)["quantization"]["auto"]["hardware"]["architecture"] == "aarch64"
    unknown = _quantize_cli(path, "--method", "auto", "--target", "toaster", "--name", "t")
    assert unknown.exit_code == 2 and "unknown target" in unknown.output


def test_a_histogram_calibrator_on_an_infinite_mask_names_the_tensor_and_the_way_out():
    """A -inf attention mask (nn.TransformerEncoder's bool key padding mask) crashed
    percentile/entropy calibration with numpy's "autodetected range of [x, inf] is not
    finite" and a hint to exclude nodes the error did not name."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    from edgekit.toolkit.quantize.failures import quantizer_failure
    from edgekit.toolkit.quantize.static import StaticConfig

    mask = np.array([[0.0, -np.inf, 0.5]], np.float32)
    collector = HistogramCollector("percentile", True, 2048, 128, 99.999, None)
    with pytest.raises(ValueError, match="not finite") as info:
        collector.collect({"masked_fill": [mask]})
    error = quantizer_failure("static", StaticConfig(calibrate="percentile"), info.value)
    assert "cannot calibrate tensor 'masked_fill'" in error.message
    assert "percentile" in error.message and "`calibrate` minmax" in error.hint
    assert error.exit_code == 2
