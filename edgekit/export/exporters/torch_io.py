"""How a torch module's forward() meets edgekit's named tensors: which data keys feed which
parameters, how structured outputs (Hugging Face ModelOutput, dicts, tuples) become named ONNX
outputs, which axes are dynamic, and which output is a sentence embedding to pool.

Kept apart from the exporter so each rule is one small function that tests can call.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError

SEQUENCE_AXIS = "sequence"
POOLINGS = ("mean", "cls")
_MASK_HINTS = ("attention_mask", "mask")
_HIDDEN_HINTS = ("last_hidden_state", "token_embeddings", "hidden_state")


@dataclass(frozen=True)
class OutputLeaf:
    """One tensor of a structured output: its ONNX name and the keys that reach it."""

    name: str
    path: tuple[Any, ...]


def _params(module: Any) -> tuple[list[inspect.Parameter], bool]:
    """forward()'s named parameters and whether it takes **kwargs."""
    sig = inspect.signature(module.forward)
    named = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return named, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def takes_keywords(module: Any) -> bool:
    """Whether forward() names its parameters (so inputs go by keyword, defaults kept)."""
    try:
        return bool(_params(module)[0])
    except (TypeError, ValueError):  # a builtin or C-implemented forward
        return False


def match_inputs(module: Any, given: list[str]) -> list[str]:
    """The data keys that feed forward(), in forward()'s order.

    A parameter with a default that the data does not hold keeps its default (position_ids,
    inputs_embeds, use_cache, ...); only parameters without one must be in the data. One array
    feeds the first parameter whatever its key, as it always has."""
    params, var_kw = _params(module)
    if not params:  # forward(*tensors): positional, in the data's order
        return given
    if len(given) == 1 and params and given[0] not in {p.name for p in params}:
        return [params[0].name]
    names = [p.name for p in params]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    missing = [n for n in required if n not in given]
    unknown = [g for g in given if g not in names]
    if missing or (unknown and not var_kw):
        optional = [p.name for p in params if p.default is not inspect.Parameter.empty]
        problem = []
        if missing:
            problem.append(f"it needs {missing}, which the data lacks")
        if unknown and not var_kw:
            problem.append(f"the data's {unknown} match no parameter")
        raise BadInputError(
            f"forward() takes {required}"
            + (
                f" (and optionally {optional[:8]}{' …' if len(optional) > 8 else ''})"
                if optional
                else ""
            )
            + f" but the data holds {given}: {'; '.join(problem)}",
            hint="save the inputs in an NPZ keyed by forward()'s parameter names; parameters "
            "with a default may be left out",
        )
    return [n for n in names if n in given] + [g for g in given if g not in names]


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "detach") and hasattr(value, "shape")


def flatten(out: Any, base: str) -> list[OutputLeaf]:
    """Name every tensor of a forward() result.

    A tensor alone is `base`; a Mapping (a Hugging Face ModelOutput is one) gives its keys
    (None values skipped); a tuple or list gives `output_0`, `output_1`, ...; nesting joins
    names with '.'."""
    if _is_tensor(out):
        return [OutputLeaf(base, ())]
    leaves: list[OutputLeaf] = []

    def walk(value: Any, name: str, path: tuple[Any, ...]) -> None:
        if _is_tensor(value):
            leaves.append(OutputLeaf(name, path))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if item is not None:
                    walk(item, f"{name}.{key}" if name else str(key), (*path, key))
        elif isinstance(value, tuple | list):
            for i, item in enumerate(value):
                if item is not None:
                    walk(item, f"{name}.{i}" if name else f"output_{i}", (*path, i))
        elif value is not None:
            raise BadInputError(
                f"forward() returned a {type(value).__name__} at {name or 'the top'}; edgekit "
                "exports tensors, and dicts, tuples or ModelOutputs of tensors",
                hint="return tensors from forward() (wrap the model in a module that does)",
            )

    walk(out, "", ())
    if not leaves:
        raise BadInputError("forward() returned no tensor", hint="return the model's outputs")
    return leaves


def select(leaves: list[OutputLeaf], wanted: list[str] | None) -> list[OutputLeaf]:
    """The outputs --outputs keeps, in the order the user named them."""
    if not wanted:
        return leaves
    by_name = {leaf.name: leaf for leaf in leaves}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise BadInputError(
            f"`outputs` names {unknown}, which forward() does not return",
            hint=f"the model's outputs are: {', '.join(by_name)}",
        )
    return [by_name[w] for w in dict.fromkeys(wanted)]


def pick(out: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        out = out[key]
    return out


def token_inputs(arrays: dict[str, np.ndarray]) -> list[str]:
    """Integer inputs with a second axis: token ids, masks, segment ids. Their axis 1 is the
    sequence, dynamic without --dynamic-axes."""
    return [n for n, a in arrays.items() if a.dtype.kind in "iub" and a.ndim >= 2]


def embedding_spec(
    inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], pooling: str | None
) -> dict[str, Any] | None:
    """Which output is a token embedding to pool with which mask (signature["embedding"]).

    Declared with --pooling, or detected: an integer mask input of shape [batch, sequence]
    and a [batch, sequence, hidden] float output are a sentence encoder, pooled by the mean
    over the mask (what sentence-transformers does by default)."""
    if pooling == "none":
        return None
    masks = [
        i["name"]
        for i in inputs
        if any(h in i["name"].lower() for h in _MASK_HINTS)
        and len(i.get("shape") or []) == 2
        and i["dtype"] in ("int64", "int32", "bool", "float32")
    ]
    seq_outputs = [
        o
        for o in outputs
        if len(o.get("shape") or []) == 3
        and o["dtype"] in ("float32", "float16")
        and (o["shape"][1] == SEQUENCE_AXIS or masks)
    ]
    ranked = sorted(
        seq_outputs,
        key=lambda o: next((i for i, h in enumerate(_HIDDEN_HINTS) if h in o["name"]), 99),
    )
    if pooling is not None and pooling not in POOLINGS:
        raise BadInputError(f"`pooling` {pooling!r} is not one of mean, cls, none")
    if not ranked or (not masks and pooling != "cls"):
        if pooling is not None:
            raise BadInputError(
                f"`pooling` {pooling}: the model has no [batch, sequence, hidden] output"
                + ("" if masks or pooling == "cls" else " and no attention-mask input")
                + " to pool",
                hint="export the token embeddings (`outputs`) with the attention mask as an input",
            )
        return None
    return {
        "output": ranked[0]["name"],
        "mask": masks[0] if masks else None,
        "pooling": pooling or "mean",
        "source": "declared" if pooling else "detected",
    }


def index_ranges(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    """{integer input: [0, rows - 1]} for inputs that index an embedding table (the indices
    of a Gather on axis 0 of a weight initializer), so the agent can refuse an out-of-vocabulary
    id as a bad request instead of onnxruntime failing on it. torch's nn.Embedding takes no
    negative ids; plain indexing (`table[idx]`) does, so where the export data holds a negative
    index the range starts at -rows."""
    graph = model.graph
    tables = {t.name: list(t.dims) for t in graph.initializer}
    inputs = {i.name for i in graph.input if i.type.tensor_type.elem_type in _INT_ELEM_TYPES} - set(
        tables
    )
    casts = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast" and n.input}
    ranges: dict[str, list[int]] = {}
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        index = casts.get(node.input[1], node.input[1])
        dims = tables.get(node.input[0])
        if axis != 0 or index not in inputs or not dims:
            continue
        top = dims[0] - 1
        values = feeds.get(index)
        low = -dims[0] if values is not None and values.size and values.min() < 0 else 0
        before = ranges.get(index, [low, top])
        ranges[index] = [max(low, before[0]), min(top, before[1])]
    return ranges


_INT_ELEM_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)  # onnx uint8, int8, uint16, int16, int32, int64, ...
