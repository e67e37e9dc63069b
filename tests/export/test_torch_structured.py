"""Real-world torch signatures: optional forward() parameters, dict / tuple / ModelOutput
results, token inputs with a dynamic sequence axis, and the embedding spec evaluate pools by."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_helpers import run_export, run_onnx

from edge_agent.errors import BadInputError
from edgekit.export.exporters import ExportOptions

MODELS = Path(__file__).parent / "torch_models.py"


def ref(name: str) -> str:
    return f"{MODELS}:{name}"


def _models():
    spec = importlib.util.spec_from_file_location("edgekit_test_torch_models_s", MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tokens(rows: int = 40, seq: int = 16, seed: int = 0, segments: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 100, (rows, seq)).astype(np.int64)
    lengths = rng.integers(3, seq + 1, rows)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = 0
    out = {"input_ids": ids, "attention_mask": mask}
    if segments:
        out["token_type_ids"] = np.zeros_like(ids)
    return out


@pytest.fixture
def token_data(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.npz"
    np.savez(path, **tokens())
    return path


def _dims(path: Path) -> dict[str, list]:
    model = onnx.load(str(path))
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output]
    }


def test_optional_parameters_keep_defaults_and_dict_outputs_are_named(
    token_data: Path, tmp_path: Path
):
    bundle, report = run_export(ref("tiny_encoder"), token_data, tmp_path / "b")
    assert report["passed"]
    sig = bundle.signature
    assert [i["name"] for i in sig["inputs"]] == ["input_ids", "attention_mask"]
    assert [o["name"] for o in sig["outputs"]] == ["last_hidden_state", "pooler_output"]
    dims = _dims(bundle.variant_path("fp32"))
    # the sequence axis of token inputs is dynamic without --dynamic-axes
    assert dims["input_ids"] == ["batch", "sequence"]
    assert dims["attention_mask"] == ["batch", "sequence"]
    assert dims["last_hidden_state"] == ["batch", "sequence", 32]
    # and serves another length, matching eager torch
    feeds = tokens(rows=3, seq=9, seed=4)
    got = run_onnx(bundle.variant_path("fp32"), feeds)
    with torch.inference_mode():
        want = _models().tiny_encoder().eval()(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    for name in ("last_hidden_state", "pooler_output"):
        np.testing.assert_allclose(got[name], want[name].numpy(), atol=1e-4, rtol=1e-3)
    assert sig["embedding"] == {
        "output": "last_hidden_state",
        "mask": "attention_mask",
        "pooling": "mean",
        "source": "detected",
    }


def test_outputs_option_keeps_the_named_outputs(token_data: Path, tmp_path: Path):
    bundle, _ = run_export(
        ref("tiny_encoder"),
        token_data,
        tmp_path / "b",
        options=ExportOptions(outputs=["pooler_output"]),
    )
    assert [o["name"] for o in bundle.signature["outputs"]] == ["pooler_output"]
    assert "embedding" not in bundle.signature  # nothing left to pool
    with pytest.raises(BadInputError, match="`outputs` names") as info:
        run_export(
            ref("tiny_encoder"),
            token_data,
            tmp_path / "c",
            options=ExportOptions(outputs=["sentence_embedding"]),
        )
    assert "last_hidden_state, pooler_output" in info.value.hint
    assert not (tmp_path / "c").exists()


def test_tuple_outputs_are_numbered(tmp_path: Path):
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32))
    bundle, report = run_export(ref("tuple_out"), data, tmp_path / "b")
    assert report["passed"]
    assert [o["name"] for o in bundle.signature["outputs"]] == ["output_0", "output_1"]


def test_a_classifier_with_a_second_output_keeps_its_head(tmp_path: Path):
    """`--task classification` on a model returning (logits, score) marked both outputs as
    logits, so the agent added no label/probabilities (it needs exactly one) while evaluate
    read the first: only the first is the logits now, the others raw."""
    from edge_agent.config import AgentConfig
    from edge_agent.serving import model as model_mod
    from edge_agent.serving.engine import Engine

    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32))
    options = ExportOptions(task="classification")
    bundle, _ = run_export(ref("tuple_out"), data, tmp_path / "b", options=options)
    assert [o["role"] for o in bundle.signature["outputs"]] == ["logits", "raw"]
    assert bundle.signature["labels"] == [0, 1, 2]
    cfg = AgentConfig(bundle=str(tmp_path / "b"), port=-1, outbox=str(tmp_path / "o.sqlite"))
    engine = Engine(cfg, model_mod.load(tmp_path / "b"))
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0.0] * 8}]}
    try:
        response = engine.infer_json(body)
    finally:
        engine.close()
    outputs = {o["name"]: o for o in response["outputs"]}
    assert list(outputs) == ["output_0", "output_1", "label", "probabilities"]
    assert outputs["probabilities"]["shape"] == [2, 3]


def test_pooling_declared_or_refused(token_data: Path, tmp_path: Path):
    bundle, _ = run_export(
        ref("tiny_encoder"), token_data, tmp_path / "b", options=ExportOptions(pooling="cls")
    )
    assert bundle.signature["embedding"]["pooling"] == "cls"
    assert bundle.signature["embedding"]["source"] == "declared"
    bundle, _ = run_export(
        ref("tiny_encoder"), token_data, tmp_path / "n", options=ExportOptions(pooling="none")
    )
    assert "embedding" not in bundle.signature
    with pytest.raises(BadInputError, match="no \\[batch, sequence, hidden\\] output"):
        run_export(
            ref("tiny_encoder"),
            token_data,
            tmp_path / "c",
            options=ExportOptions(outputs=["pooler_output"], pooling="mean"),
        )


def test_required_parameters_still_named_when_missing(tmp_path: Path):
    data = tmp_path / "one.npz"
    rng = np.random.default_rng(1)
    np.savez(data, numbers=rng.normal(size=(5, 4)), stray=rng.normal(size=(5, 3)))
    with pytest.raises(BadInputError) as info:
        run_export(ref("two_inputs"), data, tmp_path / "b")
    assert "it needs ['extra']" in info.value.message
    assert "['stray'] match no parameter" in info.value.message


def test_hugging_face_model_output(tmp_path: Path):
    pytest.importorskip("transformers")
    data = tmp_path / "tokens.npz"
    np.savez(data, **tokens(segments=True))
    bundle, report = run_export(ref("tiny_bert"), data, tmp_path / "b")
    assert report["passed"], report
    assert [i["name"] for i in bundle.signature["inputs"]] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
    ]
    assert [o["name"] for o in bundle.signature["outputs"]] == [
        "last_hidden_state",
        "pooler_output",
    ]
    assert _dims(bundle.variant_path("fp32"))["token_type_ids"] == ["batch", "sequence"]
    assert bundle.signature["embedding"]["output"] == "last_hidden_state"


def test_token_ids_carry_the_embedding_range_and_the_agent_refuses_others(
    token_data: Path, tmp_path: Path
):
    """An out-of-vocabulary id reached onnxruntime's Gather and came back as a 500 ("the
    model failed on a validated request"); the export records the ids the embedding table
    has and the agent refuses others as a bad request."""
    from edge_agent.config import AgentConfig
    from edge_agent.serving import model as model_mod
    from edge_agent.serving.engine import Engine
    from edge_agent.serving.validation import RequestError

    bundle, _ = run_export(ref("tiny_encoder"), token_data, tmp_path / "b")
    inputs = {i["name"]: i for i in bundle.signature["inputs"]}
    assert inputs["input_ids"]["range"] == [0, 99]  # nn.Embedding(100, ...)
    assert "range" not in inputs["attention_mask"]
    cfg = AgentConfig(bundle=str(tmp_path / "b"), port=-1, outbox=str(tmp_path / "o.sqlite"))
    engine = Engine(cfg, model_mod.load(tmp_path / "b"))
    try:
        feeds = tokens(rows=2, seq=5, seed=1)
        feeds["input_ids"][0, 0] = 99
        engine.infer(feeds)
        feeds["input_ids"][1, 1] = 100
        with pytest.raises(RequestError, match=r"\[100\] outside \[0, 99\]") as info:
            engine.infer(feeds)
        assert info.value.status == 400
        # another length: the monitor groups by shape (it died joining 5 and 7 tokens)
        assert engine.active.monitor.ragged
        engine.infer(tokens(rows=1, seq=7, seed=2))
        engine.active.monitor.drain()
        assert engine.active.monitor.close_window()[2]["requests"]["count"] == 3
    finally:
        engine.close()


def test_a_mask_axis_torch_fixes_is_noted_and_dynamic_axes_free_it(tmp_path: Path):
    """A bool padding mask next to float token features: the mask's sequence axis was asked
    dynamic, torch fixed it (the features' length is fixed) and the lineage said nothing."""
    rng = np.random.default_rng(0)
    data = tmp_path / "masked.npz"
    mask = np.arange(6)[None, :] >= rng.integers(1, 7, 40)[:, None]
    np.savez(data, tokens=rng.normal(size=(40, 6, 4)).astype(np.float32), padding_mask=mask)
    bundle, _ = run_export(ref("masked_mean"), data, tmp_path / "a")
    assert _dims(bundle.variant_path("fp32"))["padding_mask"] == ["batch", 6]
    notes = bundle.manifest["lineage"]["notes"]
    assert any("padding_mask is fixed at 6: torch specialised it" in n for n in notes)
    axes = {"tokens": {1: "sequence"}, "padding_mask": {1: "sequence"}}
    bundle, _ = run_export(
        ref("masked_mean"), data, tmp_path / "b", options=ExportOptions(dynamic_axes=axes)
    )
    assert _dims(bundle.variant_path("fp32"))["padding_mask"] == ["batch", "sequence"]
    assert not bundle.manifest["lineage"]["notes"]


def test_an_index_range_never_refuses_what_torch_takes(tmp_path: Path):
    """`table[idx]` takes -1 as torch does (the exporter wraps negative indices before its
    Gather): no range that would refuse them is recorded."""
    data = np.random.default_rng(0).integers(-10, 10, (40, 4)).astype(np.int64)
    np.save(tmp_path / "idx.npy", data)
    bundle, report = run_export(ref("lookup"), tmp_path / "idx.npy", tmp_path / "b")
    assert report["passed"]
    low, high = bundle.signature["inputs"][0].get("range", [-10, 9])
    assert low <= data.min() and high >= data.max()


def test_index_ranges_read_the_gather_and_the_data():
    """A Gather of an initializer by an integer input: [0, rows - 1], or from -rows where the
    export data indexes from the end."""
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.export.exporters.torch_io import index_ranges

    table = numpy_helper.from_array(np.zeros((10, 3), np.float32), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["out"])],
        "g",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4, 3])],
        [table],
    )
    model = helper.make_model(graph)
    assert index_ranges(model, {"idx": np.array([[0, 9]])}) == {"idx": [0, 9]}
    assert index_ranges(model, {"idx": np.array([[-1, 9]])}) == {"idx": [-10, 9]}
