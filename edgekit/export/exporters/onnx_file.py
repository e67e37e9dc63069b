"""An existing .onnx file imported as a bundle: checked with onnx.checker and strict shape
inference; parity compares onnxruntime with all graph optimisations off (the reference) and on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edgekit.export import fixed_batch
from edgekit.export.data import SampleData
from edgekit.export.exporters import ExportOptions, ExportResult, register
from edgekit.export.onnx_types import numpy_dtype, tensor_spec
from edgekit.export.versions import library_versions
from edgekit.export.zipmap import Unzipped, remove_zipmaps


def _feeds(inputs: list[dict[str, Any]], data: SampleData) -> dict[str, np.ndarray]:
    names = [i["name"] for i in inputs]
    if data.tensors is not None:
        if len(names) == 1 and len(data.tensors) == 1:
            raw = {names[0]: next(iter(data.tensors.values()))}
        else:
            missing = [n for n in names if n not in data.tensors]
            if missing:
                raise BadInputError(
                    f"the model's inputs {missing} are not in the data (it has {list(data.tensors)})",
                    hint="save an NPZ keyed by the model's input names",
                )
            raw = {n: data.tensors[n] for n in names}
    else:
        frame: Any = data.frame
        if all(n in frame.columns for n in names):
            raw = {n: frame[n].to_numpy().reshape(-1, 1) for n in names}
        elif len(names) == 1:
            raw = {names[0]: frame.to_numpy()}
        else:
            raise BadInputError(f"the model's inputs {names} do not match the data's columns")
    feeds = {}
    for spec in inputs:
        arr = raw[spec["name"]]
        try:
            feeds[spec["name"]] = arr.astype(numpy_dtype(spec["dtype"]))
        except (ValueError, TypeError) as exc:
            raise BadInputError(
                f"data for input {spec['name']!r} cannot be {spec['dtype']}: {exc}"
            ) from exc
        fixed = spec["shape"][1:]
        actual = list(arr.shape[1:])
        if len(fixed) != len(actual) or any(
            isinstance(f, int) and f != a for f, a in zip(fixed, actual, strict=False)
        ):
            raise BadInputError(
                f"data for input {spec['name']!r} has row shape {actual}; the model wants {fixed}"
            )
    return feeds


class OnnxFileExporter:
    name = "onnx"

    def text_columns(self, obj: Any) -> list[str]:
        return []  # its inputs are typed tensors: nothing to reread as text

    def accepts(self, obj: Any) -> bool:
        try:
            import onnx
        except ImportError:
            return False
        return isinstance(obj, onnx.ModelProto)

    def export(
        self, obj: Any, data: SampleData, options: ExportOptions, workdir: Path
    ) -> ExportResult:
        import onnx
        import onnxruntime as ort

        for init in obj.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                raise BadInputError(
                    "the ONNX model keeps weights in external data files",
                    hint="re-save it as one file: onnx.save(onnx.load(path), out, save_as_external_data=False)",
                )
        unzipped = remove_zipmaps(obj)  # skl2onnx's default classifier ending
        inputs, outputs = _signature(_checked(obj))
        feeds = _feeds(inputs, data)
        obj, freed, batch_note = _free_fixed_batch(obj, feeds)
        if freed is not None:  # the checked model with a symbolic batch
            inputs, outputs = _signature(freed)
        path = workdir / "model.onnx"
        onnx.save(obj, str(path))

        options_ref = ort.SessionOptions()
        options_ref.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            ref = ort.InferenceSession(str(path), options_ref, providers=["CPUExecutionProvider"])
            values = ref.run(None, feeds)
        except Exception as exc:
            raise BadInputError(
                f"onnxruntime cannot run the model on the data: {str(exc)[:800]}"
            ) from exc
        task = options.task or ("classification" if unzipped.changed else "raw")
        labels = options.labels
        if unzipped.changed:
            labels = labels or unzipped.labels
            _classifier_roles(outputs, unzipped)
        elif task == "classification":
            for o in outputs:
                o["role"] = "logits"
        opset = next((o.version for o in obj.opset_import if o.domain in ("", "ai.onnx")), None)
        return ExportResult(
            onnx_path=path,
            framework="onnx",
            family="onnx",
            task=task,
            signature={
                "inputs": inputs,
                "outputs": outputs,
                "input_kind": "tensor",
                "labels": labels,
            },
            feeds=feeds,
            native_outputs={o["name"]: v for o, v in zip(outputs, values, strict=True)},
            versions=library_versions(),
            opset=opset,
            notes=[
                "parity reference: onnxruntime with graph optimisations disabled",
                *([batch_note] if batch_note else []),
                *(
                    [
                        f"ZipMap removed: {', '.join(unzipped.outputs)} now a float tensor "
                        "[N, classes] of class probabilities"
                    ]
                    if unzipped.changed
                    else []
                ),
            ],
        )


def _checked(model: Any) -> Any:
    """onnx.checker and strict shape inference; the inferred model."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=False)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise BadInputError(f"the ONNX model is invalid: {str(exc)[:800]}") from exc


def _signature(inferred: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    initializers = {i.name for i in inferred.graph.initializer}
    inputs = [
        {**tensor_spec(i), "role": "features"}
        for i in inferred.graph.input
        if i.name not in initializers
    ]
    return inputs, [{**tensor_spec(o), "role": "raw"} for o in inferred.graph.output]


def _free_fixed_batch(
    model: Any, feeds: dict[str, np.ndarray]
) -> tuple[Any, Any | None, str | None]:
    """(model, its checked inference, note): the model with a symbolic batch when its inputs
    fix it at 1 and the data has more rows (``fixed_batch``), else the model unchanged (None,
    None); refused with the reason when the graph cannot take more rows."""
    names = fixed_batch.fixed_inputs(model)
    if not names or max(len(v) for v in feeds.values()) < 2:
        return model, None, None
    candidate = fixed_batch.freed(model)
    inferred = None
    try:
        inferred = _checked(candidate)
        why = fixed_batch.batch_mismatch(model, candidate, feeds)
    except BadInputError as exc:
        why = f"its shapes do not allow it ({exc.message[:300]})"
    if why:
        raise BadInputError(
            f"the model's batch dimension is fixed at 1 (inputs {names}), and it cannot take "
            f"more rows: {why}",
            hint="export it again with a dynamic batch dimension (torch.onnx.export "
            "dynamic_axes / dynamic_shapes, tf2onnx without a fixed batch in the input "
            "signature)",
        )
    rows = min(fixed_batch.CHECK_ROWS, *(len(v) for v in feeds.values()))
    return (
        candidate,
        inferred,
        (
            f"batch dimension made symbolic (the model fixed it at 1); checked on {rows} rows at "
            "once against one at a time"
        ),
    )


def _classifier_roles(outputs: list[dict[str, Any]], unzipped: Unzipped) -> None:
    """skl2onnx's classifier outputs: the label (one value a row) and the probabilities."""
    for o in outputs:
        if o["name"] in unzipped.outputs:
            o["role"] = "probabilities"
        elif len(o["shape"]) == 1 and o["dtype"] in ("int64", "string"):
            o["role"] = "label"


register(OnnxFileExporter())
