"""PyTorch export: factories with --weights, saved ExportedPrograms, dynamic axes, opsets and
the legacy exporter, each checked against eager torch with onnxruntime."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_helpers import run_export, run_onnx

from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.export.exporters import ExportOptions

MODELS = Path(__file__).parent / "torch_models.py"


def _models():
    """The factory module itself, for the eager reference."""
    spec = importlib.util.spec_from_file_location("edgekit_test_torch_models", MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ref(name: str) -> str:
    return f"{MODELS}:{name}"


def _eager(module: torch.nn.Module, *arrays: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module(*(torch.from_numpy(a) for a in arrays)).numpy()


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "table.npy"
    np.save(path, rng.normal(size=(240, 4)).astype(np.float32))
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "images.npz"
    np.savez(
        path,
        image=rng.random((30, 1, 8, 8), dtype=np.float32),
        target=rng.integers(0, 3, 30),
    )
    return path


def _dims(model_path: Path) -> dict[str, list]:
    model = onnx.load(str(model_path))
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output]
    }


def test_factory_with_weights_loads_them_safely(table: Path, tmp_path: Path):
    tm = _models()
    trained = tm.mlp()
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(-3.0).add_(0.1)  # weights the factory alone would not give
    weights = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), weights)

    bundle, report = run_export(
        ref("mlp"),
        table,
        tmp_path / "b",
        options=ExportOptions(weights=weights, task="classification"),
    )
    x = np.load(table)
    out = run_onnx(bundle.variant_path("fp32"), {"input": x})["logits"]
    np.testing.assert_allclose(out, _eager(trained.eval(), x), atol=1e-4, rtol=1e-3)
    assert np.abs(out - _eager(tm.mlp().eval(), x)).max() > 0.1  # the weights were used
    assert report["passed"] and report["rows"] == 240
    assert bundle.signature["labels"] == [0, 1, 2]
    assert bundle.signature["outputs"][0]["role"] == "logits"
    lineage = bundle.manifest["lineage"]
    assert lineage["framework"] == "torch"
    assert lineage["source"]["kind"] == "factory"
    assert lineage["source"]["sha256"] == _sha(MODELS)
    assert lineage["source"]["weights"] == {"path": str(weights), "sha256": _sha(weights)}
    assert lineage["versions"]["torch"] == metadata.version("torch")
    # the predicted class is watched for drift as well as the raw logits
    names = [p["name"] for p in bundle.baseline()["predictions"]]
    assert "logits:argmax" in names and "logits[0]" in names


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_weights_that_need_pickle_are_refused(table: Path, tmp_path: Path):
    tm = _models()
    whole = tmp_path / "whole_module.pt"
    torch.save(tm.mlp(), whole)  # a pickled module, not a state dict
    with pytest.raises(BadInputError, match="weights_only=True"):
        run_export(ref("mlp"), table, tmp_path / "b", options=ExportOptions(weights=whole))
    wrong = tmp_path / "wrong.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), wrong)
    with pytest.raises(BadInputError, match="do not fit the model"):
        run_export(ref("mlp"), table, tmp_path / "b", options=ExportOptions(weights=wrong))
    assert not (tmp_path / "b").exists()


def test_batch_axis_is_dynamic(images: Path, tmp_path: Path):
    bundle, _ = run_export(ref("pool_net"), images, tmp_path / "b", target_column="target")
    path = bundle.variant_path("fp32")
    assert _dims(path)["image"] == ["batch", 1, 8, 8]
    assert bundle.signature["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    tm = _models()
    rng = np.random.default_rng(2)
    for batch in (1, 7):
        x = rng.random((batch, 1, 8, 8), dtype=np.float32)
        out = run_onnx(path, {"image": x})["output"]
        assert out.shape == (batch, 3)
        np.testing.assert_allclose(out, _eager(tm.pool_net().eval(), x), atol=1e-5, rtol=1e-4)
    assert "__target__" in bundle.load_samples()  # --target-column taken out of the NPZ


def test_dynamic_axes_option_makes_more_axes_dynamic(images: Path, tmp_path: Path):
    bundle, _ = run_export(
        ref("pool_net"),
        images,
        tmp_path / "b",
        target_column="target",
        options=ExportOptions(dynamic_axes={"image": {2: "height", 3: "width"}}),
    )
    path = bundle.variant_path("fp32")
    assert _dims(path)["image"] == ["batch", 1, "height", "width"]
    tm = _models()
    x = np.random.default_rng(3).random((3, 1, 12, 10), dtype=np.float32)
    np.testing.assert_allclose(
        run_onnx(path, {"image": x})["output"], _eager(tm.pool_net().eval(), x), atol=1e-5
    )


def test_dynamic_axes_for_an_unknown_input_is_refused(images: Path, tmp_path: Path):
    with pytest.raises(BadInputError, match="names input 'pixels'"):
        run_export(
            ref("pool_net"),
            images,
            tmp_path / "b",
            target_column="target",
            options=ExportOptions(dynamic_axes={"pixels": {2: "h"}}),
        )


@pytest.mark.parametrize("opset", [17, 18])
def test_opset_option(opset: int, table: Path, tmp_path: Path):
    bundle, report = run_export(
        ref("mlp"), table, tmp_path / "b", options=ExportOptions(opset=opset)
    )
    model = onnx.load(str(bundle.variant_path("fp32")))
    assert {o.domain: o.version for o in model.opset_import}[""] == opset
    assert bundle.variant("fp32")["opset"] == opset
    assert report["passed"]


def test_legacy_exporter_fallback(table: Path, tmp_path: Path):
    bundle, report = run_export(
        ref("mlp"), table, tmp_path / "b", options=ExportOptions(legacy=True)
    )
    assert report["passed"]
    assert bundle.manifest["lineage"]["exporter"] == "legacy"
    assert "legacy TorchScript exporter" in bundle.manifest["lineage"]["notes"]
    ops = {n.op_type for n in onnx.load(str(bundle.variant_path("fp32"))).graph.node}
    assert "Gemm" in ops  # the TorchScript exporter's form of nn.Linear
    x = np.random.default_rng(4).normal(size=(7, 4)).astype(np.float32)
    assert run_onnx(bundle.variant_path("fp32"), {"input": x})["output"].shape == (7, 3)


@pytest.fixture
def sign_data(tmp_path: Path) -> Path:
    """The first rows (the tracing example) have a positive mean, the data a negative one."""
    rng = np.random.default_rng(5)
    x = rng.normal(-1.0, 1.0, size=(300, 4)).astype(np.float32)
    x[:2] = 5.0
    path = tmp_path / "sign.npy"
    np.save(path, x)
    return path


def test_data_dependent_branch_dynamo_refuses_with_a_hint(sign_data: Path, tmp_path: Path):
    with pytest.raises(BadInputError) as info:
        run_export(ref("sign_flip"), sign_data, tmp_path / "b")
    assert "torch.onnx.export failed" in info.value.message
    assert "\x1b[" not in info.value.message  # no terminal colour codes in the message
    assert "`legacy_exporter`" in info.value.hint  # the CLI shows --legacy-exporter
    assert not (tmp_path / "b").exists()


def test_data_dependent_branch_traced_fails_parity(sign_data: Path, tmp_path: Path):
    """The legacy exporter freezes the branch of the example rows: parity must catch it."""
    with pytest.raises(CheckFailedError) as info:
        run_export(ref("sign_flip"), sign_data, tmp_path / "b", options=ExportOptions(legacy=True))
    assert info.value.exit_code == 1
    report = info.value.details
    assert report["passed"] is False
    assert report["outputs"]["output"]["mismatch_rate"] > 0.9
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".b.*"))


def test_two_inputs_from_npz_keyed_by_forward_parameters(tmp_path: Path):
    rng = np.random.default_rng(6)
    data = tmp_path / "two.npz"
    np.savez(
        data,
        extra=rng.normal(size=(50, 3)).astype(np.float32),
        numbers=rng.normal(size=(50, 4)).astype(np.float32),
    )
    bundle, report = run_export(ref("two_inputs"), data, tmp_path / "b")
    assert [i["name"] for i in bundle.signature["inputs"]] == ["numbers", "extra"]
    assert report["passed"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=rng.normal(size=(5, 4)), b=rng.normal(size=(5, 3)))
    with pytest.raises(BadInputError, match=r"forward\(\) takes \['numbers', 'extra'\]"):
        run_export(ref("two_inputs"), bad, tmp_path / "c")


def _mlp_program(dynamic: bool) -> torch.export.ExportedProgram:
    tm = _models()
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    return torch.export.export(tm.mlp().eval(), (torch.zeros(2, 4),), dynamic_shapes=shapes)


def test_saved_exported_program(table: Path, tmp_path: Path):
    program = _mlp_program(dynamic=True)
    source = tmp_path / "model.pt2"
    torch.export.save(program, source)
    bundle, report = run_export(source, table, tmp_path / "b")
    assert report["passed"] and bundle.manifest["lineage"]["source"]["kind"] == "pt2"
    assert bundle.manifest["lineage"]["source"]["sha256"] == _sha(source)
    path = bundle.variant_path("fp32")
    # symbolic and named as every torch export names it (it was torch's symbol, `s77`)
    assert _dims(path)["input"][0] == "batch" and _dims(path)["output"][0] == "batch"
    assert bundle.signature["inputs"][0]["shape"][0] == "batch"
    with pytest.raises(BadInputError, match="cannot change a .pt2"):
        run_export(
            source, table, tmp_path / "c", options=ExportOptions(dynamic_axes={"input": {1: "w"}})
        )
    for batch in (1, 7):
        x = np.random.default_rng(batch).normal(size=(batch, 4)).astype(np.float32)
        out = run_onnx(path, {"input": x})["output"]
        np.testing.assert_allclose(out, _eager(program.module(), x), atol=1e-5, rtol=1e-4)


def test_exported_program_with_a_fixed_batch_is_refused_with_the_fix(table: Path, tmp_path: Path):
    source = tmp_path / "static.pt2"
    torch.export.save(_mlp_program(dynamic=False), source)
    with pytest.raises(BadInputError, match="fixed batch size") as info:
        run_export(source, table, tmp_path / "b")
    assert "Dim('batch')" in info.value.hint


def test_a_factory_that_returns_torchscript_is_refused_with_the_way_in(table, tmp_path):
    """torch.jit.load in a factory crashed with a traceback (inspect.signature of a
    ScriptMethod); it is a bad input with what to give instead."""
    with pytest.raises(BadInputError, match="TorchScript module") as info:
        run_export(ref("scripted"), table, tmp_path / "b")
    assert ".pt2" in info.value.hint
    assert not (tmp_path / "b").exists()


def test_a_factory_that_returns_no_model_is_refused(table: Path, tmp_path: Path):
    with pytest.raises(BadInputError, match="cannot export a builtins.dict"):
        run_export(ref("not_a_model"), table, tmp_path / "b")
