"""Small torch models for the export tests, loaded as `tests/export/torch_models.py:NAME`."""

from __future__ import annotations

import torch
from torch import nn


def mlp() -> nn.Module:
    """4 features in, 3 logits out; fixed seed so every call builds the same weights."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


class GlobalPoolNet(nn.Module):
    """A conv net that takes any image size: global average pooling before the head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(image)).mean(dim=(2, 3)))


def pool_net() -> nn.Module:
    return GlobalPoolNet()


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.left = nn.Linear(4, 2)
        self.right = nn.Linear(3, 2)

    def forward(self, numbers: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.left(numbers) + self.right(extra)


def two_inputs() -> nn.Module:
    return TwoInputs()


class SignFlip(nn.Module):
    """Branches on the data: eager torch decides per call, a trace freezes the branch it saw.

    A real-world bug class (Python control flow on tensor values). The dynamo exporter refuses
    it; the legacy exporter traces it on the example rows and gets the other rows wrong, which
    the parity check must catch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.mean()) > 0:
            return x.sum(dim=1, keepdim=True)
        return -x.sum(dim=1, keepdim=True)


def sign_flip() -> nn.Module:
    return SignFlip()


def not_a_model():
    return {"weights": [1, 2, 3]}
