"""PyTorch -> ONNX with torch.onnx.export (dynamo by default, the legacy TorchScript exporter
as a documented fallback). Weights go inside the ONNX file (external_data=False) so a variant
is one file with one digest.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edgekit.export.data import SampleData
from edgekit.export.exporters import ExportOptions, ExportResult, register, torch_io
from edgekit.export.onnx_types import tensor_spec
from edgekit.export.versions import library_versions

NATIVE_CHUNK = 256
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# torch.onnx logs a warning per missing torchvision op on every export; they say nothing about ours.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def _input_names(obj: Any, data: SampleData) -> list[str]:
    """ONNX input names: the forward() parameter names where the data lets us match them."""
    import torch

    given = list(data.named)
    if isinstance(obj, torch.nn.Module):
        return torch_io.match_inputs(obj, given)
    return given


def _flat_module(torch: Any) -> type:
    class FlatModule(torch.nn.Module):
        """forward(*tensors) -> tuple of tensors: the user's module called by keyword with the
        inputs the data holds (the rest keep their defaults), its structured output reduced
        to the named leaves being exported."""

        def __init__(
            self,
            inner: Any,
            names: list[str],
            leaves: list[torch_io.OutputLeaf],
            by_keyword: bool,
        ):
            super().__init__()
            self.inner = inner
            self.names = list(names)
            self.paths = [leaf.path for leaf in leaves]
            self.by_keyword = by_keyword

        def forward(self, *args: Any) -> tuple[Any, ...]:
            if self.by_keyword:
                out = self.inner(**dict(zip(self.names, args, strict=True)))
            else:
                out = self.inner(*args)
            return tuple(torch_io.pick(out, path) for path in self.paths)

    return FlatModule


def _as_tensors(data: SampleData) -> SampleData:
    """A table becomes one float32 `input` tensor: a torch model takes numeric tensors."""
    if data.tensors is not None:
        return data
    frame: Any = data.frame
    if any(frame[c].dtype.kind not in "fiub" for c in frame.columns):
        raise BadInputError("a torch model takes numeric tensors; the data has text columns")
    return SampleData(
        data.path, tensors={"input": frame.to_numpy(dtype=np.float32)}, target=data.target
    )


def _feeds(obj: Any, data: SampleData) -> tuple[list[str], list[np.ndarray], dict[str, np.ndarray]]:
    """The ONNX input names, their arrays (float64 narrowed to float32) and the two as feeds."""
    names = _input_names(obj, data)
    tensors = data.named
    arrays = [next(iter(tensors.values()))] if len(tensors) == 1 else [tensors[n] for n in names]
    arrays = [a.astype(np.float32) if a.dtype == np.float64 else a for a in arrays]
    return names, arrays, dict(zip(names, arrays, strict=True))


def _signature(
    path: Path,
    options: ExportOptions,
    task: str,
    native: list[np.ndarray],
    feeds: dict[str, np.ndarray],
) -> tuple[dict[str, Any], int | None]:
    """The bundle signature read back from the exported graph, and its opset (refused when
    it is not the opset asked for)."""
    import onnx

    model = onnx.load(str(path))
    outputs = [tensor_spec(o) for o in model.graph.output]
    role = "logits" if task == "classification" else ("value" if task == "regression" else "raw")
    for i, o in enumerate(outputs):
        # a classifier's first output is its logits (the labels are its width); the others of a
        # tuple or dict (a score, an embedding) are raw, so the agent adds label/probabilities
        o["role"] = "raw" if role == "logits" and i else role
    labels = options.labels
    if task == "classification" and labels is None:
        labels = list(range(int(native[0].shape[-1])))
    ranges = torch_io.index_ranges(model, feeds)
    signature: dict[str, Any] = {
        "inputs": [
            {**tensor_spec(i), "role": "features"}
            | ({"range": ranges[i.name]} if i.name in ranges else {})
            for i in model.graph.input
        ],
        "outputs": outputs,
        "input_kind": "tensor",
        "labels": labels,
    }
    embedding = torch_io.embedding_spec(signature["inputs"], outputs, options.pooling)
    if embedding is not None:
        signature["embedding"] = embedding
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if options.opset and opset != options.opset:
        raise BadInputError(
            f"torch could not export at opset {options.opset} (the model came out at {opset})",
            hint="choose an opset the exporter supports (18 or later for the dynamo exporter), "
            "or try `legacy_exporter`",
        )
    return signature, opset


class TorchExporter:
    name = "torch"

    def text_columns(self, obj: Any) -> list[str]:
        return []  # its inputs are typed tensors: nothing to reread as text

    def accepts(self, obj: Any) -> bool:
        try:
            import torch
        except ImportError:
            return False
        return isinstance(obj, torch.nn.Module | torch.export.ExportedProgram)

    def export(
        self, obj: Any, data: SampleData, options: ExportOptions, workdir: Path
    ) -> ExportResult:
        import torch

        if isinstance(obj, torch.jit.ScriptModule):
            raise BadInputError(
                "the factory returned a TorchScript module (torch.jit); edgekit exports an "
                "nn.Module or a torch.export program, not TorchScript",
                hint="return the nn.Module it was scripted from (load its state_dict, or use "
                "--weights), or save a torch.export program as .pt2",
            )
        data = _as_tensors(data)
        program = isinstance(obj, torch.export.ExportedProgram)
        module = obj
        if not program:
            if options.weights is not None:
                self._load_weights(obj, options.weights)
            module = obj.eval()

        if program:
            _check_program_batch(obj)
        names, arrays, feeds = _feeds(obj, data)

        task = options.task or "raw"
        base = "logits" if task == "classification" else "output"
        call = obj.module() if program else module
        kwargs_call = not program and torch_io.takes_keywords(module)
        leaves = self._output_leaves(call, names, arrays, base, kwargs_call)
        leaves = torch_io.select(leaves, options.outputs)
        runnable = None if program else _flat_module(torch)(module, names, leaves, kwargs_call)
        native = self._run_native(runnable or call, arrays, None if runnable else leaves)
        out_names = [leaf.name for leaf in leaves]
        path = workdir / "model.onnx"
        target = obj if program else runnable
        notes = self._export_or_fix_length(
            target, program, names, arrays, feeds, out_names, options, path
        )
        signature, opset = _signature(path, options, task, native, feeds)
        return ExportResult(
            onnx_path=path,
            framework="torch",
            family="torch",
            task=task,
            signature=signature,
            feeds=feeds,
            native_outputs=dict(zip(out_names, native, strict=True)),
            versions=library_versions(),
            opset=opset,
            notes=notes,
        )

    def _export_or_fix_length(
        self,
        target: Any,
        program: bool,
        names: list[str],
        arrays: list[np.ndarray],
        feeds: dict[str, np.ndarray],
        out_names: list[str],
        options: ExportOptions,
        path: Path,
    ) -> list[str]:
        """Export with the sequence axes dynamic; a model that needs a fixed length (a reshape
        by it, a fixed position table) is exported again with them fixed, and a note says so."""
        import torch

        # two rows: with one, torch.export would specialise the batch axis to 1
        example = tuple(torch.from_numpy(np.resize(a, (2, *a.shape[1:])).copy()) for a in arrays)
        notes = ["legacy TorchScript exporter"] if options.legacy else []
        seq_inputs = [
            n for n in torch_io.token_inputs(feeds) if 1 not in options.dynamic_axes.get(n, {})
        ]
        try:
            self._export(target, example, names, out_names, options, path, seq_inputs)
            fixed = _static_axis(path, seq_inputs, 1)
            if fixed:
                # torch specialised the axis without failing (another input fixes the length)
                notes.append(
                    f"the sequence axis of {', '.join(fixed)} is fixed at "
                    f"{feeds[fixed[0]].shape[1]}: torch specialised it (another input of the "
                    "same length is fixed; --dynamic-axes INPUT:1=sequence for each makes them "
                    "dynamic together)"
                )
        except BadInputError as exc:
            if not seq_inputs or program:
                raise
            # a model that needs a fixed length (a reshape by it, a fixed position table)
            self._export(target, example, names, out_names, options, path, [])
            notes.append(
                f"the sequence axis of {', '.join(seq_inputs)} is fixed at "
                f"{feeds[seq_inputs[0]].shape[1]}: the model did not export with it dynamic "
                f"({exc.message[:200]})"
            )
        return notes

    @staticmethod
    def _output_leaves(
        call: Any, names: list[str], arrays: list[np.ndarray], base: str, by_keyword: bool
    ) -> list[torch_io.OutputLeaf]:
        """The named tensors forward() returns, from a run on the first rows."""
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(a[:2])) for a in arrays]
        with torch.inference_mode():
            try:
                out = call(**dict(zip(names, args, strict=True))) if by_keyword else call(*args)
            except Exception as exc:
                raise BadInputError(
                    f"the model failed on the sample data: {type(exc).__name__}: {exc}",
                    hint="check the data's keys, shape and dtype against what forward() expects",
                ) from exc
        return torch_io.flatten(out, base)

    @staticmethod
    def _load_weights(module: Any, weights: Path) -> None:
        import torch

        if not Path(weights).is_file():
            raise BadInputError(f"weights file {weights} does not exist")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise BadInputError(
                f"cannot load {weights} as a state dict with weights_only=True: {exc}",
                hint="save it with torch.save(model.state_dict(), path)",
            ) from exc
        try:
            module.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise BadInputError(f"weights in {weights} do not fit the model: {exc}") from exc

    @staticmethod
    def _run_native(
        module: Any, arrays: list[np.ndarray], leaves: list[torch_io.OutputLeaf] | None
    ) -> list[np.ndarray]:
        """Eager outputs on every row, in chunks; `leaves` picks them out of a structured
        result (None: the module already returns the tuple being exported)."""
        import torch

        chunks: list[list[np.ndarray]] = []
        rows = len(arrays[0])
        with torch.inference_mode():
            for start in range(0, rows, NATIVE_CHUNK):
                args = [
                    torch.from_numpy(np.ascontiguousarray(a[start : start + NATIVE_CHUNK]))
                    for a in arrays
                ]
                try:
                    out = module(*args)
                except Exception as exc:
                    raise BadInputError(
                        f"the model failed on the sample data: {type(exc).__name__}: {exc}",
                        hint="check the data's shape and dtype against what forward() expects",
                    ) from exc
                if leaves is not None:
                    outs = [torch_io.pick(out, leaf.path) for leaf in leaves]
                else:
                    outs = list(out) if isinstance(out, tuple | list) else [out]
                chunks.append([o.detach().cpu().numpy() for o in outs])
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]

    @staticmethod
    def _export(
        model: Any,
        example: tuple[Any, ...],
        names: list[str],
        out_names: list[str],
        options: ExportOptions,
        path: Path,
        sequence_inputs: list[str],
    ) -> None:
        import torch

        axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
        for n in sequence_inputs:
            axes[n][1] = torch_io.SEQUENCE_AXIS
        for name, extra in options.dynamic_axes.items():
            if name not in axes:
                raise BadInputError(f"`dynamic_axes` names input {name!r}; the inputs are {names}")
            axes[name].update(extra)
        kwargs: dict[str, Any] = {"input_names": names, "output_names": out_names}
        if options.opset:
            kwargs["opset_version"] = options.opset
        try:
            # the exporter prints progress on stdout, which belongs to --json output
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _call_export(torch, model, example, path, axes, options, kwargs)
        except BadInputError:
            raise
        except Exception as exc:
            hint = "try `legacy_exporter` (TorchScript-based)" if not options.legacy else None
            message = _ANSI.sub("", str(exc)).strip()
            raise BadInputError(
                f"torch.onnx.export failed: {type(exc).__name__}: {message[:800]}", hint=hint
            ) from exc
        for leftover in path.parent.glob("*.onnx.data"):
            raise BadInputError(
                f"torch wrote external data {leftover.name}; edgekit needs a single-file model"
            )


def _call_export(
    torch: Any,
    model: Any,
    example: tuple[Any, ...],
    path: Path,
    axes: dict[str, dict[int, str]],
    options: ExportOptions,
    kwargs: dict[str, Any],
) -> None:
    if options.legacy:
        torch.onnx.export(model, example, str(path), dynamo=False, dynamic_axes=axes, **kwargs)
    elif isinstance(model, torch.export.ExportedProgram):
        # the program carries its own dynamic shapes, fixed when it was exported
        if any(set(a) - {0} for a in axes.values()):
            raise BadInputError(
                "--dynamic-axes cannot change a .pt2: torch.export fixed its dynamic shapes "
                "when the program was made",
                hint="export it again with those axes in dynamic_shapes (torch.export.Dim), "
                "or give the model as a factory (file.py:function) with --dynamic-axes",
            )
        torch.onnx.export(
            model, (), str(path), dynamo=True, external_data=False, verbose=False, **kwargs
        )
        _name_batch_axis(path)
    else:
        made: dict[str, Any] = {}
        dims = tuple(
            {
                ax: made.setdefault(label, torch.export.Dim(_dim_name(label)))
                for ax, label in a.items()
            }
            for a in axes.values()
        )
        torch.onnx.export(
            model,
            example,
            str(path),
            dynamo=True,
            external_data=False,
            # the flat wrapper takes *args: one entry, the tuple of per-input specs
            dynamic_shapes=(dims,),
            verbose=False,
            **kwargs,
        )


def _check_program_batch(program: Any) -> None:
    """An ExportedProgram saved with a fixed batch size cannot serve other batch sizes:
    say so before running it, with the fix, instead of torch's guard failure."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        val = node.meta.get("val")
        shape = getattr(val, "shape", None)
        if shape is not None and len(shape) and isinstance(shape[0], int):
            raise BadInputError(
                f"the ExportedProgram's input {node.name!r} has a fixed batch size "
                f"({list(shape)}); edgekit bundles take any batch size",
                hint="export it with a dynamic batch: torch.export.export(model, args, "
                "dynamic_shapes={'x': {0: torch.export.Dim('batch')}}), then torch.export.save",
            )


def _static_axis(path: Path, inputs: list[str], axis: int) -> list[str]:
    """The inputs among `inputs` whose `axis` came out of the export with a fixed size."""
    import onnx

    if not inputs:
        return []
    graph = onnx.load(str(path), load_external_data=False).graph
    return [
        i.name
        for i in graph.input
        if i.name in inputs
        and len(dims := i.type.tensor_type.shape.dim) > axis
        and not dims[axis].dim_param
    ]


def _name_batch_axis(path: Path) -> None:
    """A saved program's batch Dim comes out of the exporter as torch's symbol (`s48`): call
    it `batch`, as every other torch export names it, in the inputs, outputs and value_info."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    symbols = {
        dims[0].dim_param
        for value in graph.input
        if (dims := value.type.tensor_type.shape.dim) and dims[0].dim_param
    }
    if not symbols or symbols == {"batch"}:
        return
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = "batch"
    onnx.save(model, str(path))


def _dim_name(label: str) -> str:
    clean = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in label)
    return clean if clean and clean[0].isalpha() else f"d_{clean}"


register(TorchExporter())
