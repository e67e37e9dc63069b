"""PyTorch -> ONNX with torch.onnx.export (dynamo by default, the legacy TorchScript exporter
as a documented fallback). Weights go inside the ONNX file (external_data=False) so a variant
is one file with one digest.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from export.data import SampleData
from export.exporters import ExportOptions, ExportResult, register
from export.onnx_types import tensor_spec
from export.versions import library_versions

NATIVE_CHUNK = 256
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# torch.onnx logs a warning per missing torchvision op on every export; they say nothing about ours.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def _input_names(obj: Any, data: SampleData) -> list[str]:
    """ONNX input names: the forward() parameter names where the data lets us match them."""
    import torch

    given = list(data.tensors)
    if isinstance(obj, torch.nn.Module):
        params = [
            p.name
            for p in inspect.signature(obj.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(given) == 1 and params:
            return params[:1]
        missing = [p for p in params if p not in given]
        if missing:
            raise BadInputError(
                f"forward() takes {params} but the data holds {given}",
                hint="save the inputs in an NPZ keyed by forward()'s parameter names",
            )
        return params
    return given


class TorchExporter:
    name = "torch"

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

        if data.tensors is None:
            frame = data.frame
            if any(frame[c].dtype.kind not in "fiub" for c in frame.columns):
                raise BadInputError(
                    "a torch model takes numeric tensors; the data has text columns"
                )
            data = SampleData(
                data.path, tensors={"input": frame.to_numpy(dtype=np.float32)}, target=data.target
            )
        program = isinstance(obj, torch.export.ExportedProgram)
        module = obj
        if not program:
            if options.weights is not None:
                self._load_weights(obj, options.weights)
            module = obj.eval()

        if program:
            _check_program_batch(obj)
        names = _input_names(obj, data)
        if len(data.tensors) == 1:
            arrays = [next(iter(data.tensors.values()))]
        else:
            arrays = [data.tensors[n] for n in names]
        arrays = [a.astype(np.float32) if a.dtype == np.float64 else a for a in arrays]
        feeds = dict(zip(names, arrays, strict=True))

        native = self._run_native(module if not program else obj.module(), arrays)
        task = options.task or "raw"
        out_names = self._output_names(len(native), task)
        path = workdir / "model.onnx"
        # two rows: with one, torch.export would specialise the batch axis to 1
        example = tuple(torch.from_numpy(np.resize(a, (2, *a.shape[1:])).copy()) for a in arrays)
        self._export(obj if program else module, example, names, out_names, options, path)

        import onnx

        model = onnx.load(str(path))
        outputs = [tensor_spec(o) for o in model.graph.output]
        role = (
            "logits" if task == "classification" else ("value" if task == "regression" else "raw")
        )
        for o in outputs:
            o["role"] = role
        labels = options.labels
        if task == "classification" and labels is None:
            labels = list(range(int(native[0].shape[-1])))
        signature = {
            "inputs": [{**tensor_spec(i), "role": "features"} for i in model.graph.input],
            "outputs": outputs,
            "input_kind": "tensor",
            "labels": labels,
        }
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if options.opset and opset != options.opset:
            raise BadInputError(
                f"torch could not export at opset {options.opset} (the model came out at {opset})",
                hint="choose an opset the exporter supports (18 or later for the dynamo exporter), "
                "or try --legacy-exporter",
            )
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
            notes=["legacy TorchScript exporter"] if options.legacy else [],
        )

    @staticmethod
    def _output_names(count: int, task: str) -> list[str]:
        base = "logits" if task == "classification" else "output"
        return [base] if count == 1 else [f"{base}_{i}" for i in range(count)]

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
    def _run_native(module: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
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
                outs = list(out) if isinstance(out, tuple | list) else [out]
                chunks.append([o.detach().cpu().numpy() for o in outs])
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]

    @staticmethod
    def _export(
        model: Any,
        example: tuple,
        names: list[str],
        out_names: list[str],
        options: ExportOptions,
        path: Path,
    ) -> None:
        import torch

        axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
        for name, extra in options.dynamic_axes.items():
            if name not in axes:
                raise BadInputError(f"--dynamic-axes names input {name!r}; the inputs are {names}")
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
            hint = "try --legacy-exporter (TorchScript-based)" if not options.legacy else None
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
    example: tuple,
    path: Path,
    axes: dict[str, dict[int, str]],
    options: ExportOptions,
    kwargs: dict[str, Any],
) -> None:
    if options.legacy:
        torch.onnx.export(model, example, str(path), dynamo=False, dynamic_axes=axes, **kwargs)
    elif isinstance(model, torch.export.ExportedProgram):
        # the program carries its own dynamic shapes, fixed when it was exported
        torch.onnx.export(
            model, (), str(path), dynamo=True, external_data=False, verbose=False, **kwargs
        )
    else:
        dims: dict[str, Any] = {}
        made: dict[str, Any] = {}
        for n, a in axes.items():
            dims[n] = {
                ax: made.setdefault(label, torch.export.Dim(_dim_name(label)))
                for ax, label in a.items()
            }
        torch.onnx.export(
            model,
            example,
            str(path),
            dynamo=True,
            external_data=False,
            dynamic_shapes=dims,
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


def _dim_name(label: str) -> str:
    clean = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in label)
    return clean if clean and clean[0].isalpha() else f"d_{clean}"


register(TorchExporter())
