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


class TinyEncoder(nn.Module):
    """A stand-in for a Hugging Face sentence encoder: token ids and an attention mask in
    (int64, [batch, sequence]), a dict of last_hidden_state and pooler_output out, optional
    parameters a user's data never holds (position_ids, inputs_embeds, use_cache), and the
    additive float-min attention mask that wrecks a MinMax calibration."""

    def __init__(self, vocab: int = 100, hidden: int = 32, heads: int = 2, layers: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.heads = heads
        self.embed = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(64, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "qkv": nn.Linear(hidden, 3 * hidden),
                    "out": nn.Linear(hidden, hidden),
                    "norm1": nn.LayerNorm(hidden),
                    "up": nn.Linear(hidden, 2 * hidden),
                    "down": nn.Linear(2 * hidden, hidden),
                    "norm2": nn.LayerNorm(hidden),
                }
            )
            for _ in range(layers)
        )
        self.pool = nn.Linear(hidden, hidden)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> dict[str, torch.Tensor]:
        h = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        batch, seq, width = h.shape
        if position_ids is None:
            position_ids = torch.arange(seq, device=h.device).unsqueeze(0)
        h = self.norm(h + self.position(position_ids))
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq, dtype=torch.int64)
        additive = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        d = width // self.heads
        for block in self.blocks:
            q, k, v = block["qkv"](h).split(width, dim=-1)
            q, k, v = (t.view(batch, seq, self.heads, d).transpose(1, 2) for t in (q, k, v))
            scores = q @ k.transpose(-1, -2) / d**0.5 + additive
            ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, width)
            h = block["norm1"](h + block["out"](ctx))
            h = block["norm2"](h + block["down"](torch.nn.functional.gelu(block["up"](h))))
        return {"last_hidden_state": h, "pooler_output": torch.tanh(self.pool(h[:, 0]))}


def tiny_encoder() -> nn.Module:
    return TinyEncoder()


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x), self.b(x)


def tuple_out() -> nn.Module:
    return TupleOut()


def tiny_bert() -> nn.Module:
    """A Hugging Face BertModel (random init, tiny config): forward() has ten optional
    parameters and returns a BaseModelOutputWithPoolingAndCrossAttentions."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertModel(config)


def scripted() -> nn.Module:
    """A TorchScript module, as torch.jit.load returns one."""
    return torch.jit.script(mlp())


class MaskedMean(nn.Module):
    """Float token features and a bool padding mask (True = padding), as
    nn.TransformerEncoder's src_key_padding_mask takes it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(4, 3)

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        keep = (~padding_mask).unsqueeze(-1).float()
        return self.proj((tokens * keep).sum(1) / keep.sum(1).clamp(min=1))


def masked_mean() -> nn.Module:
    return MaskedMean()


class Lookup(nn.Module):
    """Plain indexing of a table (`table[idx]`), which takes negative indices as torch does."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Parameter(torch.randn(10, 3))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx].sum(1)


def lookup() -> nn.Module:
    return Lookup()
