"""Stages that make the model and the bundle: the user's own `train` step, then `export`."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.export.modules import module_from_file
from edgekit.toolkit.pipeline.keys import file_digest
from edgekit.toolkit.pipeline.spec import PipelineSpec
from edgekit.toolkit.pipeline.stages import Runtime, Stage, StageContext, register


@contextlib.contextmanager
def importable_from(folder: Path) -> Iterator[None]:
    """The pipeline's folder on sys.path while a user's module loads (train.py beside the file)."""
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(folder))


def resolve_function(ref: str, base: Path, where: str) -> Any:
    """`module:function`. A module file beside the pipeline is loaded afresh each time, so a
    long-lived process (the closed loop) runs the training code as it is now on disk."""
    module_name, _, attr = ref.partition(":")
    local = base / (module_name.replace(".", "/") + ".py")
    with importable_from(base):
        try:
            if local.is_file():
                module = module_from_file(module_name, local)
            else:
                module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BadInputError(
                f"{where}: cannot import {module_name!r}: {exc}",
                hint="the module must be importable from the pipeline file's folder or installed",
            ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BadInputError(f"{where}: {module_name} has no function {attr!r}")
    return fn


def module_file(ref: str, base: Path) -> Path | None:
    """The source file of `module:function` (its content goes into the cache key)."""
    module_name = ref.partition(":")[0]
    local = base / (module_name.replace(".", "/") + ".py")
    if local.is_file():
        return local
    with importable_from(base):
        try:
            found = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            return None
    origin = getattr(found, "origin", None)
    return Path(origin) if origin and Path(origin).is_file() else None


@dataclass
class TrainConfig:
    data: str
    output: str
    function: str | None = None
    command: str | list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    timeout_s: float = 3600.0


@register("train", 10)
class Train(Stage):
    """Run the user's training (a `module:function` or a command) on a data set; it must write the
    model file named by `output` (a fitted estimator, or a PyTorch state dict for model.factory)."""

    Config = TrainConfig
    path_keys = ("model",)

    def inputs(self, spec: PipelineSpec, runtime: Runtime) -> dict[str, Any]:
        c: TrainConfig = self.cfg
        sources = {s: file_digest(spec.resolve(s)) for s in c.sources}
        if c.function:
            src = module_file(c.function, spec.base)
            if src is not None:
                sources["<function module>"] = file_digest(src)
        return {
            "function": c.function,
            "command": c.command,
            "params": c.params,
            "output": c.output,
            "data": file_digest(spec.resolve(c.data)),
            "sources": sources,
        }

    def run(self, ctx: StageContext) -> dict[str, Any]:
        c: TrainConfig = self.cfg
        data = ctx.spec.resolve(c.data)
        output = ctx.work / c.output
        metrics: Any = None
        if c.function:
            fn = resolve_function(c.function, ctx.spec.base, "stages.train.function")
            ctx.say(f"calling {c.function}(data={data.name}, output={output.name})")
            with importable_from(ctx.spec.base):
                metrics = fn(data=data, output=output, **c.params)
        else:
            args = shlex.split(c.command) if isinstance(c.command, str) else list(c.command or [])
            fields = {"data": str(data), "output": str(output), "workdir": str(ctx.work)}
            fields.update({k: str(v) for k, v in c.params.items()})
            args = [a.format(**fields) for a in args]
            ctx.say(f"running {shlex.join(args)}")
            try:
                done = subprocess.run(
                    args,
                    cwd=ctx.spec.base,
                    capture_output=True,
                    text=True,
                    timeout=c.timeout_s,
                    check=False,
                )
            except FileNotFoundError:
                raise BadInputError(f"train command not found: {args[0]}") from None
            except subprocess.TimeoutExpired:
                raise CheckFailedError(f"train command timed out after {c.timeout_s:g} s") from None
            (ctx.work / "train.log").write_text(done.stdout + done.stderr)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip()[-800:]
                raise CheckFailedError(f"train command exited {done.returncode}: {tail}")
        if not output.is_file():
            raise CheckFailedError(
                f"the train step finished but did not write {c.output}",
                hint="it must write the model to the path its 'output' argument names",
            )
        return {
            "model": output,
            "model_sha256": file_digest(output),
            "metrics": metrics if isinstance(metrics, dict) else None,
        }


@dataclass
class ExportConfig:
    task: str | None = None
    opset: int | None = None
    atol: float | None = None
    rtol: float | None = None
    labels: list[Any] | None = None


@register("export", 20)
class Export(Stage):
    """The model (trained above, a file, or a factory with weights) to a verified bundle."""

    Config = ExportConfig
    changes_bundle = True
    path_keys = ("bundle",)

    def inputs(self, spec: PipelineSpec, runtime: Runtime) -> dict[str, Any]:
        model = spec.model
        trained = spec.stage_options("train") is not None
        return {
            "options": vars(self.cfg),
            "name": spec.name,
            "factory": model.get("factory"),
            "file": None
            if trained or "file" not in model
            else file_digest(spec.resolve(model["file"])),
            "weights": file_digest(spec.resolve(model["weights"]))
            if model.get("weights")
            else None,
            "trust_pickle": bool(model.get("trust_pickle")),
            "sample": file_digest(spec.required_data("sample")),
            "target_column": spec.target_column,
        }

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgekit.export.builder import ExportRequest, export_bundle
        from edgekit.export.exporters import ExportOptions

        spec, c = ctx.spec, self.cfg
        model = spec.model
        trained = ctx.outputs.get("train", {}).get("model")
        weights = spec.resolve(model.get("weights"))
        if model.get("factory"):
            source = model["factory"]
            weights = Path(trained) if trained else weights
        else:
            source = str(trained or spec.resolve(model["file"]))
        request = ExportRequest(
            source=source,
            data=spec.required_data("sample"),
            output=ctx.work / "bundle",
            trust_pickle=bool(model.get("trust_pickle")),
            target_column=spec.target_column,
            options=ExportOptions(opset=c.opset, weights=weights, task=c.task, labels=c.labels),
            atol=c.atol,
            rtol=c.rtol,
            name=spec.name,
            overwrite=True,
            command=f"edgekit run {spec.path} (stage export)",
        )
        ctx.say(f"exporting {Path(source).name if '/' in source else source}")
        with contextlib.ExitStack() as stack:
            if model.get("factory"):  # a factory module beside the pipeline file
                stack.enter_context(importable_from(spec.base))
            bundle, report = export_bundle(request)
        fp32 = bundle.variant("fp32")
        return {
            "bundle": bundle.path,
            "name": bundle.manifest["name"],
            "task": bundle.task,
            "inputs": {t["name"]: t["shape"] for t in bundle.signature["inputs"]},
            "outputs": {t["name"]: t["shape"] for t in bundle.signature["outputs"]},
            "labels": bundle.labels,
            "parity_passed": report["passed"],
            "parity_rows": report["rows"],
            "parity": {
                name: r.get("label_agreement", r.get("max_abs_diff"))
                for name, r in report["outputs"].items()
            },
            "bytes": fp32["bytes"],
            "sha256": fp32["sha256"],
        }
