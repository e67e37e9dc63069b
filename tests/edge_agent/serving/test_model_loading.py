"""Loading a variant: digest on the bytes loaded, external data refused, tuned options, self-test."""

from __future__ import annotations

import json

import pytest

from edge_agent.contracts.bundle import Bundle, save_samples
from edge_agent.errors import BundleError, CheckFailedError, IntegrityError
from edge_agent.onnx_refs import external_data_locations
from edge_agent.serving import model as model_mod


def test_load_verifies_warms_and_self_tests(cnn_bundle):
    loaded = model_mod.load(cnn_bundle)
    assert loaded.variant == "fp32"
    assert loaded.sha256 == Bundle.open(cnn_bundle).variant("fp32")["sha256"]
    assert (
        loaded.self_test["passed"] and loaded.self_test["outputs"]["logits"]["mismatch_rate"] == 0
    )
    assert loaded.load_s < 5


def test_corrupted_model_is_refused(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    onnx_file = path / "fp32.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        model_mod.load(path)


def _add_external_tensor(model_bytes: bytes, location: str) -> bytes:
    """Append an initializer with external data `location` to the graph (via the onnx package)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(model_bytes)
    tensor = helper.make_tensor("ext_w", TensorProto.FLOAT, [1], [0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    model.graph.initializer.append(tensor)
    return model.SerializeToString()


def _rewrite_variant(bundle_dir, data: bytes) -> None:
    bundle = Bundle.open(bundle_dir)
    (bundle_dir / "fp32.onnx").write_bytes(data)
    from edge_agent.hashing import sha256_bytes

    bundle.variants["fp32"].update(sha256=sha256_bytes(data), bytes=len(data))
    bundle.save()


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "sub/dir.bin"])
def test_external_data_leaving_the_bundle_is_refused(copy_bundle, regression_bundle, location):
    path = copy_bundle(regression_bundle)
    data = _add_external_tensor((path / "fp32.onnx").read_bytes(), location)
    assert external_data_locations(data) == [location]
    _rewrite_variant(path, data)
    with pytest.raises(BundleError, match="outside the bundle"):
        model_mod.load(path)


def test_external_data_not_in_manifest_is_refused(copy_bundle, regression_bundle):
    path = copy_bundle(regression_bundle)
    (path / "weights.bin").write_bytes(b"\0" * 4)
    _rewrite_variant(path, _add_external_tensor((path / "fp32.onnx").read_bytes(), "weights.bin"))
    with pytest.raises(IntegrityError, match="not listed"):
        model_mod.load(path)


def test_plain_model_has_no_external_data(cnn_bundle):
    assert external_data_locations((cnn_bundle / "fp32.onnx").read_bytes()) == []


def test_selection_session_options_are_applied(copy_bundle, regression_bundle):
    path = copy_bundle(regression_bundle)
    bundle = Bundle.open(path)
    bundle.manifest["selection"] = {
        "edge-x86": {
            "variant": "fp32",
            "provider": "CPUExecutionProvider",
            "session_options": {
                "intra_op_num_threads": 1,
                "execution_mode": "sequential",
                "graph_optimization_level": "basic",
            },
        }
    }
    bundle.save()
    loaded = model_mod.load(path, target="edge-x86")
    assert loaded.choice.session_options["intra_op_num_threads"] == 1
    opts = loaded.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert "BASIC" in str(opts.graph_optimization_level)
    with pytest.raises(BundleError, match="no selection for target"):
        model_mod.load(path, target="nope")


def test_self_test_failure_refuses_the_model(copy_bundle, regression_bundle):
    path = copy_bundle(regression_bundle)
    bundle = Bundle.open(path)
    samples = bundle.load_samples()
    key = next(k for k in samples if k.startswith("__expected__/"))
    samples[key] = samples[key] + 100.0  # stored outputs no longer match the model
    save_samples(path / bundle.manifest["samples"], samples)
    bundle.register_file(bundle.manifest["samples"])
    bundle.save()
    with pytest.raises(CheckFailedError, match="self-test"):
        model_mod.load(path)


def test_rejected_variant_is_not_served(copy_bundle, regression_bundle):
    path = copy_bundle(regression_bundle)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["variants"]["fp32"].update(rejected=True, reject_reason="too slow")
    bundle = Bundle(path, manifest)
    bundle.save()
    with pytest.raises(BundleError, match="rejected"):
        model_mod.load(path, variant="fp32")
