"""An existing .onnx file imported as a bundle: checked with onnx.checker and strict shape
inference; parity compares onnxruntime with all graph optimisations off (the reference) and on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edgekit.export.data import SampleData
from edgekit.export.exporters import ExportOptions, ExportResult, register
from edgekit.export.onnx_types import numpy_dtype, tensor_spec
from edgekit.export.versions import library_versions


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
        try:
            onnx.checker.check_model(obj, full_check=False)
            inferred = onnx.shape_inference.infer_shapes(obj, check_type=True, strict_mode=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise BadInputError(f"the ONNX model is invalid: {str(exc)[:800]}") from exc
        path = workdir / "model.onnx"
        onnx.save(obj, str(path))

        initializers = {i.name for i in inferred.graph.initializer}
        inputs = [
            {**tensor_spec(i), "role": "features"}
            for i in inferred.graph.input
            if i.name not in initializers
        ]
        outputs = [{**tensor_spec(o), "role": "raw"} for o in inferred.graph.output]
        feeds = _feeds(inputs, data)

        options_ref = ort.SessionOptions()
        options_ref.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            ref = ort.InferenceSession(str(path), options_ref, providers=["CPUExecutionProvider"])
            values = ref.run(None, feeds)
        except Exception as exc:
            raise BadInputError(
                f"onnxruntime cannot run the model on the data: {str(exc)[:800]}"
            ) from exc
        task = options.task or "raw"
        if task == "classification":
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
                "labels": options.labels,
            },
            feeds=feeds,
            native_outputs={o["name"]: v for o, v in zip(outputs, values, strict=True)},
            versions=library_versions(),
            opset=opset,
            notes=["parity reference: onnxruntime with graph optimisations disabled"],
        )


register(OnnxFileExporter())
