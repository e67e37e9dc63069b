"""An encoder is judged on its sentence embeddings: the token states pooled over the attention
mask (mean or CLS), per sentence, mean and minimum cosine, never the whole padded state."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.evaluate import EvaluateRequest, evaluate_bundle
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle
from edgekit.toolkit.scoring import pooling


def test_masked_mean_ignores_padding():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(3, 5, 4))
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    noisy = tokens.copy()
    noisy[mask == 0] += rng.normal(scale=50.0, size=noisy[mask == 0].shape)
    np.testing.assert_allclose(
        pooling.pool(tokens, mask, "mean"), pooling.pool(noisy, mask, "mean")
    )
    np.testing.assert_allclose(pooling.pool(tokens, mask, "mean")[0], tokens[0, :2].mean(axis=0))
    np.testing.assert_allclose(pooling.pool(tokens, mask, "cls"), tokens[:, 0])


def _run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def _cos(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("static", [False, True])
def test_encoder_gate_uses_pooled_sentence_cosine(
    copy_bundle, encoder_bundle, encoder_data, static
):
    path = copy_bundle(encoder_bundle)
    options = {"per_channel": True}
    method = "static" if static else "dynamic"
    if static:
        options.update(format="qdq", calibrate="minmax")
    quantize_bundle(path, QuantizeRequest(method=method, options=options, name="q"))
    report = evaluate_bundle(path, EvaluateRequest(data=encoder_data))
    bundle = Bundle.open(path)
    result = report["variants"]["q"]
    assert report["metric"] == "cosine_mean"
    assert result["read_from"] == (
        "mean pooling of last_hidden_state over attention_mask (detected)"
    )
    with np.load(encoder_data) as npz:
        feeds = {k: npz[k] for k in npz.files}
    ref = _run(bundle.variant_path("fp32"), feeds)["last_hidden_state"]
    got = _run(bundle.variant_path("q"), feeds)["last_hidden_state"]
    mask = feeds["attention_mask"][:, :, None]
    pooled = _cos((ref * mask).sum(1) / mask.sum(1), (got * mask).sum(1) / mask.sum(1))
    whole = _cos(ref.reshape(len(ref), -1), got.reshape(len(got), -1))
    assert result["vs_fp32"]["cosine_mean"] == pytest.approx(pooled.mean(), abs=1e-5)
    assert result["vs_fp32"]["cosine_min"] == pytest.approx(pooled.min(), abs=1e-5)
    if static:  # the padded state says something else: the gate must not read it
        assert abs(result["vs_fp32"]["cosine_mean"] - whole.mean()) > 1e-4
    gate = result["gate"]
    assert gate["passed"] == (pooled.mean() >= 0.99 - 1e-12)
    assert bool(bundle.variant("q").get("rejected")) == (not gate["passed"])
