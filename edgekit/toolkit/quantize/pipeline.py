"""quantize_bundle: the whole quantize stage, from a bundle's FP32 variant to a new checked
variant recorded in the same bundle.

All work happens in a temp folder; the bundle is touched only once the new variant has loaded,
run and been compared with FP32, so a failure leaves the bundle as it was.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import FP32, Bundle
from edge_agent.errors import BadInputError, BundleError, CheckFailedError
from edgekit.toolkit.quantize import (
    auto,
    calibration,
    check,
    graph,
    logs,
    preprocess,
    registry,
    runtime,
)
from edgekit.toolkit.quantize.failures import quantizer_failure

QUANT_OP = re.compile(r"^(QLinear.*|Q[A-Z].*|.*Quantize.*|.*Integer)$")


@dataclass
class QuantizeRequest:
    method: str  # a registered method or "auto"
    options: dict[str, Any] = field(default_factory=dict)  # config fields; None = default
    calibration: Path | None = None
    target_column: str | None = None
    name: str | None = None
    replace: bool = False
    hardware: dict[str, Any] | None = None  # a profile like edge_agent.hardware.probe()
    preprocess: bool = True
    command: str | None = None
    derived_from: str | None = None  # the variant this retry replaces (evaluate --auto-exclude)
    max_drop: float = 0.01  # auto: the gate its candidates must pass on the samples
    search: bool = True  # auto: try candidates against the gate (False: the rule's choice only)


@dataclass
class QuantizeResult:
    bundle: Path
    variant: str
    entry: dict[str, Any]
    # the variant this run's file is byte-identical to (then nothing was added: it is reused)
    duplicate_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        q = self.entry["quantization"] or {}
        return {
            "bundle": str(self.bundle),
            "variant": self.variant,
            "duplicate_of": self.duplicate_of,
            "method": q.get("method"),
            "precision": self.entry["precision"],
            "bytes": self.entry["bytes"],
            "size_ratio": q.get("size_ratio", 1.0),
            "quantization": q,
            "parity": self.entry["parity"],
        }


def tree_refusal(method: registry.Method) -> BadInputError:
    return BadInputError(
        f"cannot quantize a tree ensemble with the {method.name} method: {method.trees}",
        hint="keep the FP32 variant (tree ensembles are already fast on CPU) or export a "
        "neural/linear model if a smaller variant is needed",
    )


# The manifest's rule for variant names (edge_agent/schemas/manifest.schema.json).
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> None:
    """Refuse a variant name before any work, so a bad one never leaves a file behind."""
    if name == FP32:
        raise BadInputError(
            "the fp32 variant cannot be replaced by a quantized one", hint="choose another `name`"
        )
    if not VARIANT_NAME.match(name):
        raise BadInputError(
            f"variant name {name!r} is not allowed",
            hint="use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def check_exclusions(config: Any, model_path: Path) -> None:
    """--exclude-nodes / --exclude-op-types must name what the model (as the quantizer sees
    it, after pre-processing) has; a typo would otherwise quantize everything silently."""
    import difflib

    import onnx

    nodes_wanted = list(getattr(config, "nodes_to_exclude", None) or [])
    ops_wanted = list(getattr(config, "op_types_to_exclude", None) or [])
    if not nodes_wanted and not ops_wanted:
        return
    model = onnx.load(str(model_path), load_external_data=False)
    nodes = [n.name for n in model.graph.node if n.name]
    ops = sorted({n.op_type for n in model.graph.node})
    for option, wanted, known in (
        ("`exclude_nodes`", nodes_wanted, nodes),
        ("`exclude_op_types`", ops_wanted, ops),
    ):
        unknown = [w for w in wanted if w not in set(known)]
        if not unknown:
            continue
        close = sorted({c for u in unknown for c in difflib.get_close_matches(u, known, n=3)})
        listed = close or known[:12]
        raise BadInputError(
            f"{option}: the model has no {'node' if option.endswith('nodes') else 'operator type'}"
            f" {', '.join(map(repr, unknown))}",
            hint=f"{'close' if close else 'it has'}: {', '.join(listed)}"
            + (" …" if not close and len(known) > 12 else "")
            + (
                " (names after quant_pre_process; `edgekit evaluate` lists the worst nodes)"
                if option.endswith("nodes")
                else ""
            ),
        )


def same_content(bundle: Bundle, path: Path, exclude: str | None = None) -> str | None:
    """The variant whose file has the same sha256 as `path`, if any (not `exclude`)."""
    from edge_agent.hashing import sha256_file

    digest = sha256_file(path)
    return next(
        (n for n, v in bundle.variants.items() if n != exclude and v.get("sha256") == digest),
        None,
    )


def _fp32_path(bundle: Bundle) -> Path:
    if FP32 not in bundle.variants:
        known = ", ".join(bundle.variants) or "none"
        raise BundleError(
            f"bundle {bundle.path} has no fp32 variant (it has: {known}); quantization starts "
            "from the FP32 model",
            hint="re-export the model with `edgekit export` to get an fp32 variant",
        )
    return bundle.verify_variant(FP32)


def _hardware(request: QuantizeRequest) -> dict[str, Any]:
    from edge_agent.hardware import probe

    return request.hardware or probe()


def resolve(
    request: QuantizeRequest, info: graph.GraphInfo
) -> tuple[registry.Method, Any, dict[str, Any] | None, dict[str, Any] | None]:
    """The method, its config, auto's recorded choice, and the hardware defaults an explicit
    INT8 method took for the options the user left out."""
    choice = defaults_taken = None
    options = {k: v for k, v in request.options.items() if v not in (None, [], ())}
    if request.method == "auto":
        made = auto.choose(info, _hardware(request))
        choice = made.as_dict()
        user = dict(options)
        options = {**made.options, **user}
        if user:
            choice["overridden_by_user"] = user
        method = registry.get(made.method)
    else:
        method = registry.get(request.method)
        if info.has_trees:
            raise tree_refusal(method)
        if method.integer and not info.compute_ops:
            raise BadInputError(
                f"{method.name} quantization has nothing to quantize in this model: it has no "
                f"MatMul, Gemm, Conv, attention or recurrent operator "
                f"(its operators: {', '.join(sorted(info.ops))})",
                hint="keep the FP32 variant",
            )
        if method.integer:
            hw = auto.hardware_summary(_hardware(request))
            defaults, reason = auto.hardware_options(method.name, hw)
            taken = {k: v for k, v in defaults.items() if k not in options}
            options = {**taken, **options}
            defaults_taken = {"options": taken, "reason": reason, "hardware": hw}
    return method, registry.build_config(method, options), choice, defaults_taken


def _quant_ops(path: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return dict(Counter(n.op_type for n in model.graph.node if QUANT_OP.match(n.op_type)))


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in ("onnxruntime", "onnx", "onnxconverter-common"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _search(
    request: QuantizeRequest,
    bundle: Bundle,
    fp32_path: Path,
    source: Path,
    work: Path,
    method: registry.Method,
    config: Any,
    choice: dict[str, Any],
    info: graph.GraphInfo,
    ctx: registry.MethodContext,
    out_path: Path,
) -> tuple[registry.Method, Any, dict[str, Any]]:
    """auto's measured search (edgekit.toolkit.quantize.search); the chosen file lands at out_path."""
    import dataclasses
    import shutil

    from edgekit.toolkit.quantize import search

    options = {k: v for k, v in registry.config_dict(config).items() if v not in (None, [], ())}
    found = search.run(
        bundle=bundle,
        fp32=fp32_path,
        source=source,
        work=work,
        method=method,
        options=options,
        user=choice.get("overridden_by_user") or {},
        info=info,
        hw=choice["hardware"],
        max_drop=request.max_drop,
        measure=request.hardware is None,
        context=lambda src, out: dataclasses.replace(ctx, source=src, output=out),
    )
    shutil.copyfile(found.path, out_path)
    choice["search"] = found.record
    return found.method, found.config, found.details


def quantize_bundle(bundle_dir: str | Path, request: QuantizeRequest) -> QuantizeResult:
    """Make one new variant: resolve the method, calibrate and pre-process as it asks, run it,
    check that it changed something and still answers like FP32, then store it (or reuse the
    variant with the same bytes)."""
    _check_max_drop(request)
    # absolute: the quantizers (and auto's search, which reads the samples) run with their own
    # work folder as the current folder, where a relative bundle path names nothing
    bundle = Bundle.open(Path(bundle_dir).absolute())
    fp32_path = _fp32_path(bundle).resolve()
    info = graph.analyse(fp32_path)
    method, config, choice, hw_defaults = resolve(request, info)
    name = request.name or method.default_name(config)
    check_name(name)
    _check_free(bundle, name, request.replace)
    calib = _calibration(bundle, request, method, config, choice)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-quantize-") as tmp:
        work = Path(tmp)
        pre = _preprocessed(bundle, request, method, fp32_path, work)
        check_exclusions(config, pre.path)
        out_path = work / f"{name}.onnx"
        ctx = registry.MethodContext(
            source=pre.path,
            output=out_path,
            signature=bundle.signature,
            calibration=(
                (lambda: calibration.reader_for(bundle.signature, calib.feeds)) if calib else None
            ),
            workdir=work,
        )
        method, config, details = _run_method(
            request, bundle, fp32_path, pre.path, work, method, config, choice, info, ctx, out_path
        )
        duration = time.perf_counter() - started
        if request.name is None and method.default_name(config) != name:
            name = method.default_name(config)  # auto's search settled on another method
            if name in bundle.variants and not request.replace:
                raise BundleError(
                    f"bundle already has a variant {name!r} (auto chose {method.name})",
                    hint="choose another `name` or pass `replace`",
                )

        quant_ops = _check_changed(method, info, out_path)
        parity = _parity(bundle, fp32_path, out_path, name)
        twin = same_content(bundle, out_path, exclude=name if request.replace else None)
        if twin is not None:
            return _reuse_twin(bundle, twin, request, method, config, name)
        fp32_bytes = bundle.variant(FP32)["bytes"]
        record: dict[str, Any] = {
            "method": method.name,
            "requested": request.method,
            "derived_from": request.derived_from,
            "config": registry.config_dict(config),
            **details,
            "auto": choice,
            "hardware_defaults": hw_defaults,
            "preprocess": pre.record,
            "calibration": calib.source if calib else None,
            "graph": info.as_dict(),
            "quantized_ops": quant_ops,
            "size_ratio": round(out_path.stat().st_size / fp32_bytes, 4),
            "duration_s": round(duration, 3),
            "versions": _versions(),
        }
        entry = _store(bundle, request, method, config, name, out_path, record, parity)
    return QuantizeResult(bundle.path, name, entry)


def _run_method(
    request: QuantizeRequest,
    bundle: Bundle,
    fp32_path: Path,
    source: Path,
    work: Path,
    method: registry.Method,
    config: Any,
    choice: dict[str, Any] | None,
    info: graph.GraphInfo,
    ctx: registry.MethodContext,
    out_path: Path,
) -> tuple[registry.Method, Any, dict[str, Any]]:
    """Run the method (or auto's accuracy search over methods); a quantizer crash becomes an
    error that names the node. Returns the method and config that made the output."""
    try:
        # The calibrators print their progress ("Collecting tensor data ..."): keep it
        # off stdout (--json) and off the terminal, where a spinner already runs.
        with (
            logs.kept_root_logs(below=logging.ERROR) as warned,
            contextlib.redirect_stdout(io.StringIO()),
            preprocess.contained(work),
        ):
            if choice is not None and request.search and method.integer:
                method, config, details = _search(
                    request, bundle, fp32_path, source, work, method, config, choice, info,
                    ctx, out_path,
                )  # fmt: skip
            else:
                details = method.run(config, ctx)
        if warned:
            details["quantizer_warnings"] = warned
    except BadInputError:
        raise
    except Exception as exc:  # the quantizers raise many types on graphs they cannot handle
        raise quantizer_failure(method.name, config, exc) from exc
    return method, config, details


def _check_max_drop(request: QuantizeRequest) -> None:
    import math

    if not math.isfinite(request.max_drop) or request.max_drop < 0:
        raise BadInputError(
            f"`max_drop` must be a number of 0 or more, got {request.max_drop}",
            hint="e.g. `max_drop` 0.005 (cosine at least 0.995)",
        )


def _calibration(
    bundle: Bundle,
    request: QuantizeRequest,
    method: registry.Method,
    config: Any,
    choice: dict[str, Any] | None,
) -> calibration.CalibrationSet | None:
    """The calibration set when the method asks for one (prepared to its config)."""
    if method.needs_calibration:
        calib = calibration.load(bundle, request.calibration, target_column=request.target_column)
        if method.prepare_calibration is not None:
            calib = method.prepare_calibration(config, calib)
        return calib
    if request.calibration is not None and choice is not None:
        # auto may pick a method without calibration; the file was offered, not demanded
        choice["reasons"].append(
            f"{method.name} needs no calibration: {request.calibration} unused"
        )
    elif request.calibration is not None:
        raise BadInputError(f"`calibration` applies to static quantization, not {method.name}")
    return None


def _preprocessed(
    bundle: Bundle, request: QuantizeRequest, method: registry.Method, fp32: Path, work: Path
) -> preprocess.Preprocessed:
    """quant_pre_process's output when the method asks for it, else the FP32 model as it is."""
    if method.needs_preprocess:
        return preprocess.preprocess(
            fp32, work, lineage=bundle.manifest.get("lineage"), enabled=request.preprocess
        )
    return preprocess.Preprocessed(
        fp32, {"applied": False, "reason": f"not needed by the {method.name} method"}
    )


def _check_changed(
    method: registry.Method, info: graph.GraphInfo, out_path: Path
) -> dict[str, int]:
    """The quantized operators of the output; an error when the method changed nothing."""
    quant_ops = _quant_ops(out_path)
    if method.integer and not quant_ops:
        raise BadInputError(
            f"{method.name} quantization found nothing to quantize in this model "
            f"(kind {info.kind}; operators {', '.join(sorted(info.ops))})",
            hint="try another `method` (static quantizes more operator types) or keep FP32",
        )
    unchanged = method.unchanged(out_path) if method.unchanged is not None else None
    if unchanged:
        raise BadInputError(unchanged, hint="keep the FP32 variant")
    return quant_ops


def _parity(bundle: Bundle, fp32_path: Path, out_path: Path, name: str) -> dict[str, Any]:
    """The new variant against FP32 on the stored samples; an error when it is unusable."""
    samples = bundle.sample_inputs()
    rows = min(calibration.MAX_ROWS, len(next(iter(samples.values()))))
    samples = {k: v[:rows] for k, v in samples.items()}
    reference = runtime.run(fp32_path, samples, bundle.signature, "the fp32 variant")
    produced = runtime.run(out_path, samples, bundle.signature, f"the new {name} variant")
    parity = check.compare(bundle.signature, reference, produced, rows=rows)
    if not parity["passed"]:
        raise CheckFailedError(
            f"the {name} variant runs but its outputs are unusable: "
            f"{check.failure_summary(parity)}",
            hint="exclude the affected nodes or try another method",
            details=parity,
        )
    return parity


def _reuse_twin(
    bundle: Bundle,
    twin: str,
    request: QuantizeRequest,
    method: registry.Method,
    config: Any,
    name: str,
) -> QuantizeResult:
    """Variants are unique by content: report the twin and reuse it, add nothing; the twin
    remembers these settings so `tune` finds them without rebuilding."""
    entry = bundle.variant(twin)
    if entry.get("quantization") is not None:
        same = entry["quantization"].setdefault("same_bytes", [])
        same.append(
            {
                "method": method.name,
                "requested": request.method,
                "config": registry.config_dict(config),
                "name": name,
            }
        )
        bundle.save()
    return QuantizeResult(bundle.path, twin, entry, duplicate_of=twin)


def _store(
    bundle: Bundle,
    request: QuantizeRequest,
    method: registry.Method,
    config: Any,
    name: str,
    out_path: Path,
    record: dict[str, Any],
    parity: dict[str, Any],
) -> dict[str, Any]:
    """Add the variant to the manifest as it is now, under the bundle's lock: another run may
    have added a variant while this one worked, and it must stay."""
    with Bundle.updating(bundle.path) as current:
        _check_free(current, name, request.replace, meanwhile=True)
        if current.variant(FP32)["sha256"] != bundle.variant(FP32)["sha256"]:
            raise BundleError(
                f"the fp32 variant of {bundle.path} changed while quantizing",
                hint="run the command again",
            )
        entry: dict[str, Any] = current.add_variant(
            name,
            out_path,
            {
                "precision": method.precision(config),
                "opset": current.variant(FP32).get("opset"),
                "source_variant": FP32,
                "quantization": record,
                "parity": parity,
                "evaluation": None,
            },
            replace=request.replace,
        )
        manifest_io.append_history(
            current.manifest,
            "quantize",
            request.command or f"edgekit quantize {bundle.path} --method {request.method}",
            variant=name,
            method=method.name,
        )
    return entry


def _check_free(bundle: Bundle, name: str, replace: bool, meanwhile: bool = False) -> None:
    """A variant name is taken once: a second run (or a concurrent one) that asks for the same
    name is refused unless it says `replace`."""
    if name in bundle.variants and not replace:
        raise BundleError(
            f"bundle already has a variant {name!r}"
            + (" (another run added it while this one worked)" if meanwhile else ""),
            hint="choose another `name` or pass `replace`",
        )
