"""The realistic models behind benchmarks/quantize_speed.py have the size issue 3 asks for
(a CNN of about a million parameters or more, an encoder of 4+ layers and hidden 256+), seeded
weights, and an encoder that really ignores padding."""

from __future__ import annotations

import numpy as np
import torch

from edgekit.toolkit.zoo import realistic as zoo


def _params(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_image_cnn_size_shape_and_seed() -> None:
    model = zoo.image_cnn()
    assert zoo.parameter_count(model) >= 1_000_000
    x = torch.from_numpy(zoo.image_inputs(2)["input"])
    with torch.inference_mode():
        assert tuple(model(x).shape) == (2, zoo.IMAGE_CLASSES)
    again, other = _params(zoo.image_cnn()), _params(zoo.image_cnn(seed=1))
    first = _params(model)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_text_encoder_size_and_padding_is_masked() -> None:
    model = zoo.text_encoder()
    assert zoo.TEXT_LAYERS >= 4 and zoo.TEXT_HIDDEN >= 256 and len(model.layers) == zoo.TEXT_LAYERS
    feeds = zoo.text_inputs(3)
    ids, mask = (torch.from_numpy(feeds[k]) for k in ("input_ids", "attention_mask"))
    assert (mask.sum(1) < zoo.TEXT_SEQ).any()  # some rows are padded
    changed = ids.clone()
    changed[mask == 0] = 7  # other tokens where the mask says padding
    with torch.inference_mode():
        out, out_changed = model(ids, mask), model(changed, mask)
    assert tuple(out.shape) == (3, zoo.TEXT_CLASSES)
    torch.testing.assert_close(out, out_changed)  # padded positions do not count
    assert float(out.std()) > 0
