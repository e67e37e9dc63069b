"""Two models of realistic size with seeded weights, for speed and quality measurements.

`image_cnn` is a small ResNet-style network (about 1.2 M parameters, 3x32x32 in, 10 logits
out); `text_encoder` is a BERT-style encoder (4 layers, hidden 256, 4 heads) whose padding
mask becomes an additive float-min mask, the pattern that ruins MinMax static calibration.
Both are importable factories (`edgekit.toolkit.zoo.realistic:image_cnn`) so `edgekit export` and the
benchmarks build them the same way, and so do later stages (target tuning).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SEED = 0
IMAGE_SHAPE = (3, 32, 32)
IMAGE_CLASSES = 10
TEXT_VOCAB = 8000
TEXT_SEQ = 64
TEXT_HIDDEN = 256
TEXT_LAYERS = 4
TEXT_HEADS = 4
TEXT_CLASSES = 4
QK_GAIN = 4.0


def _nn():
    import torch
    from torch import nn

    return torch, nn


def image_cnn(seed: int = SEED):
    """ResNet-style CNN: stem + three residual stages (64, 128, 256 channels), BN, GAP, linear."""
    torch, nn = _nn()

    class Block(nn.Module):  # type: ignore[name-defined]  # torch is imported late (_nn)
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
            self.act = nn.ReLU()

        def forward(self, x):
            y = self.act(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.act(y + self.skip(x))

    class ImageCNN(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()
            )
            self.stages = nn.Sequential(Block(32, 64, 2), Block(64, 128, 2), Block(128, 256, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(256, IMAGE_CLASSES)

        def forward(self, input):  # noqa: A002 - the ONNX input name
            x = self.stages(self.stem(input))
            return self.head(torch.flatten(self.pool(x), 1))

    torch.manual_seed(seed)
    model = ImageCNN()
    _seed_batchnorm(model, seed)
    return model.eval()


def _seed_batchnorm(model: Any, seed: int) -> None:
    """Give BatchNorm layers non-trivial running statistics, as a trained network has."""
    torch, nn = _nn()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.05)


def text_encoder(seed: int = SEED):
    """BERT-style encoder classifier taking token ids and a 0/1 padding mask."""
    torch, nn = _nn()

    class Layer(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.q = nn.Linear(TEXT_HIDDEN, TEXT_HIDDEN)
            self.k = nn.Linear(TEXT_HIDDEN, TEXT_HIDDEN)
            self.v = nn.Linear(TEXT_HIDDEN, TEXT_HIDDEN)
            self.o = nn.Linear(TEXT_HIDDEN, TEXT_HIDDEN)
            self.ln1 = nn.LayerNorm(TEXT_HIDDEN)
            self.ff1 = nn.Linear(TEXT_HIDDEN, 4 * TEXT_HIDDEN)
            self.ff2 = nn.Linear(4 * TEXT_HIDDEN, TEXT_HIDDEN)
            self.ln2 = nn.LayerNorm(TEXT_HIDDEN)
            self.act = nn.GELU()

        def _heads(self, x):
            b, s, _ = x.shape
            return x.view(b, s, TEXT_HEADS, TEXT_HIDDEN // TEXT_HEADS).transpose(1, 2)

        def forward(self, x, additive_mask):
            b, s, _ = x.shape
            q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(TEXT_HIDDEN // TEXT_HEADS)
            attn = torch.softmax(scores + additive_mask, dim=-1)
            ctx = (attn @ v).transpose(1, 2).reshape(b, s, TEXT_HIDDEN)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.ff2(self.act(self.ff1(x))))

    class TextEncoder(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(TEXT_VOCAB, TEXT_HIDDEN)
            self.positions = nn.Embedding(TEXT_SEQ, TEXT_HIDDEN)
            self.ln = nn.LayerNorm(TEXT_HIDDEN)
            self.layers = nn.ModuleList(Layer() for _ in range(TEXT_LAYERS))
            self.head = nn.Linear(TEXT_HIDDEN, TEXT_CLASSES)

        def forward(self, input_ids, attention_mask):
            seq = input_ids.shape[1]
            pos = torch.arange(seq, device=input_ids.device)
            x = self.ln(self.tokens(input_ids) + self.positions(pos)[None])
            # The usual additive mask: 0 where attended, float32 min where padded.
            additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(
                x.dtype
            ).min
            for layer in self.layers:
                x = layer(x, additive)
            return self.head(x[:, 0])

    torch.manual_seed(seed)
    model = TextEncoder()
    # Trained attention is peaked, not uniform: larger query/key weights give scores with a
    # spread of a few units, as in a trained encoder, so attention errors show in the output.
    with torch.no_grad():
        for layer in model.layers:
            layer.q.weight.mul_(QK_GAIN)
            layer.k.weight.mul_(QK_GAIN)
    return model.eval()


def tiny_mlp(seed: int = SEED):
    """A model so small that quantize/dequantize overhead outweighs integer arithmetic."""
    torch, nn = _nn()
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def image_inputs(rows: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Smooth random images (blurred noise) rather than white noise, closer to real pixels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, *IMAGE_SHAPE)).astype(np.float32)
    for axis in (2, 3):
        x = (x + np.roll(x, 1, axis) + np.roll(x, -1, axis)) / 3.0
    return {"input": x.astype(np.float32)}


def text_inputs(rows: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Token ids with per-row lengths between a quarter and all of TEXT_SEQ (rest is padding)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, TEXT_VOCAB, size=(rows, TEXT_SEQ), dtype=np.int64)
    lengths = rng.integers(TEXT_SEQ // 4, TEXT_SEQ + 1, size=rows)
    mask = (np.arange(TEXT_SEQ)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask}


def tiny_inputs(rows: int, seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input": rng.normal(size=(rows, 16)).astype(np.float32)}


def parameter_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))
