"""Load one bundle variant for serving: verify, refuse escaping external data, apply the tuned
session options, warm up, self-test on the stored samples. Only a model that passed all of
that is ever handed to the server, which is what makes a swap safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BundleError, CheckFailedError, IntegrityError
from edge_agent.hashing import sha256_bytes
from edge_agent.onnx_refs import external_data_locations

if TYPE_CHECKING:
    import onnxruntime

EXPECTED_PREFIX = "__expected__/"
SELF_TEST_ROWS = 32
WARMUP_RUNS = 3

_EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
# Self-test tolerances when the variant's parity record gives none.
_DEFAULT_TOL = {"fp32": (1e-4, 1e-3, 0.0, 0.995)}
_LOOSE_TOL = (0.05, 0.05, 0.05, 0.95)  # (atol, rtol, max_mismatch_rate, min_label_agreement)


@dataclass
class Choice:
    """Which variant to serve and how, resolved from flags and the manifest's selection."""

    variant: str
    target: str | None
    provider: str
    session_options: dict[str, Any]
    reason: str


def choose(bundle: Bundle, variant: str | None = None, target: str | None = None) -> Choice:
    """--variant wins; else the selection for --target (or the only selection); else fp32."""
    selections = bundle.manifest.get("selection") or {}
    if target is not None and target not in selections:
        known = ", ".join(selections) or "none (run `edgekit tune`)"
        raise BundleError(f"bundle has no selection for target {target!r} (it has: {known})")
    if target is None and len(selections) == 1:
        target = next(iter(selections))
    sel = selections.get(target, {}) if target else {}
    if variant is None:
        variant = sel.get("variant")
        reason = f"selected for target {target}" if variant else ""
        if variant is None:
            usable = [n for n, v in bundle.variants.items() if not v.get("rejected")]
            variant = "fp32" if "fp32" in usable else (usable[0] if usable else None)
            reason = "no selection recorded: default variant"
        if variant is None:
            raise BundleError("every variant of the bundle is rejected; nothing to serve")
    else:
        reason = "chosen with --variant"
    entry = bundle.variant(variant)
    if entry.get("rejected"):
        raise BundleError(
            f"variant {variant!r} was rejected: {entry.get('reject_reason')}",
            hint="choose another `variant`",
        )
    options = dict(sel.get("session_options") or {}) if sel.get("variant") == variant else {}
    provider = sel.get("provider") or "CPUExecutionProvider"
    return Choice(variant, target, provider, options, reason)


def session_options(options: dict[str, Any]) -> onnxruntime.SessionOptions:
    """onnxruntime.SessionOptions from the manifest's tuned settings."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if "intra_op_num_threads" in options:
        so.intra_op_num_threads = int(options["intra_op_num_threads"])
    if "inter_op_num_threads" in options:
        so.inter_op_num_threads = int(options["inter_op_num_threads"])
    if "execution_mode" in options:
        so.execution_mode = getattr(ort.ExecutionMode, _EXECUTION_MODES[options["execution_mode"]])
    if "graph_optimization_level" in options:
        level = _OPT_LEVELS[options["graph_optimization_level"]]
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return so


@dataclass
class LoadedModel:
    """A verified, warmed-up, self-tested session and what telemetry says about it."""

    bundle: Bundle
    choice: Choice
    session: Any
    sha256: str
    load_s: float
    self_test: dict[str, Any]
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        name: str = self.bundle.manifest["name"]
        return name

    @property
    def variant(self) -> str:
        return self.choice.variant

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "variant": self.variant, "sha256": self.sha256}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        outputs: list[np.ndarray] = self.session.run(self.output_names, feeds)
        return outputs


def _verified_bytes(bundle: Bundle, variant: str) -> tuple[Path, bytes, str]:
    """Read the variant once, check its digest on those very bytes (no check-then-swap race)."""
    entry = bundle.variant(variant)
    path = bundle.variant_path(variant)
    if not path.is_file():
        raise IntegrityError(f"variant {variant!r} file {entry['file']} is missing from the bundle")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if len(data) != entry["bytes"] or digest != entry["sha256"]:
        raise IntegrityError(
            f"variant {variant!r} file {entry['file']} does not match the manifest "
            f"(sha256 {digest[:12]}… expected {entry['sha256'][:12]}…)",
            hint="the model was modified or corrupted after export; redeploy the bundle",
        )
    return path, data, digest


def _check_external_data(bundle: Bundle, data: bytes) -> list[str]:
    """External-data files must be plain names in the bundle that the manifest vouches for."""
    locations = external_data_locations(data)
    for location in locations:
        try:
            bundle.file_path(location)
        except BundleError as exc:
            raise BundleError(
                f"model refers to external data {location!r} outside the bundle; refusing to load",
                hint="external data must sit beside the model in the bundle folder",
            ) from exc
        if location not in bundle.manifest["files"]:
            raise IntegrityError(
                f"model external data {location!r} is not listed in the manifest's files",
                hint="register the file in the bundle so its digest is checked",
            )
    if locations:
        bundle.verify(only=locations)
    return locations


def load(
    bundle_dir: str | Path,
    variant: str | None = None,
    target: str | None = None,
    *,
    verify_key: Any = None,
) -> LoadedModel:
    """Everything before 'ready': signature (with a verify key) → verify → external-data check
    → session → warm-up → self-test."""
    import onnxruntime as ort

    started = time.perf_counter()
    bundle = Bundle.open(bundle_dir, verify_key=verify_key)
    choice = choose(bundle, variant, target)
    path, data, digest = _verified_bytes(bundle, choice.variant)
    external = _check_external_data(bundle, data)
    so = session_options(choice.session_options)
    available = ort.get_available_providers()
    providers = [
        p for p in dict.fromkeys((choice.provider, "CPUExecutionProvider")) if p in available
    ]
    try:
        # From the verified bytes, unless external data must be resolved next to the file.
        source = str(path) if external else data
        session = ort.InferenceSession(source, sess_options=so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise CheckFailedError(
            f"onnxruntime could not load variant {choice.variant!r}: {exc}",
            hint="the file passed its digest check, so the bundle itself is broken; re-export it",
        ) from exc
    model = LoadedModel(
        bundle=bundle,
        choice=choice,
        session=session,
        sha256=digest,
        load_s=0.0,
        self_test={},
        input_names=[i.name for i in session.get_inputs()],
        output_names=[o.name for o in session.get_outputs()],
    )
    samples = _samples(bundle)
    feeds = {n: samples[n] for n in model.input_names if n in samples}
    if len(feeds) == len(model.input_names):
        one = {n: a[:1] for n, a in feeds.items()}
        for _ in range(WARMUP_RUNS):
            model.run(one)
        model.self_test = self_test(model, feeds, samples)
    else:
        model.self_test = {"passed": True, "skipped": "bundle stores no sample inputs"}
    model.load_s = time.perf_counter() - started
    return model


def _samples(bundle: Bundle) -> dict[str, np.ndarray]:
    if not bundle.manifest.get("samples"):
        return {}
    return bundle.load_samples()


def _tolerance(model: LoadedModel) -> tuple[float, float, float, float]:
    entry = model.bundle.variant(model.variant)
    tol = ((entry.get("parity") or {}).get("tolerance")) or {}
    default = _DEFAULT_TOL.get(entry.get("precision", ""), _LOOSE_TOL)
    return (
        float(tol.get("atol", default[0])),
        float(tol.get("rtol", default[1])),
        float(tol.get("max_mismatch_rate", default[2])),
        float(tol.get("min_label_agreement", default[3])),
    )


def self_test(
    model: LoadedModel, feeds: dict[str, np.ndarray], samples: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Run the stored samples and compare with the stored FP32 outputs; raise when they differ."""
    rows = min(SELF_TEST_ROWS, min(a.shape[0] for a in feeds.values()))
    outputs = model.run({n: a[:rows] for n, a in feeds.items()})
    atol, rtol, max_rate, min_agree = _tolerance(model)
    report: dict[str, Any] = {"rows": rows, "outputs": {}, "passed": True}
    for name, got in zip(model.output_names, outputs, strict=True):
        key = EXPECTED_PREFIX + name
        if key not in samples:
            continue
        want = samples[key][:rows]
        got = np.asarray(got)
        detail: dict[str, Any]
        if got.shape != want.shape:
            ok, detail = False, {"problem": f"shape {got.shape} != stored {want.shape}"}
        elif got.dtype.kind in "fc" and want.dtype.kind in "fc":
            bad = ~np.isclose(got, want, atol=atol, rtol=rtol, equal_nan=True)
            rate = float(bad.reshape(rows, -1).any(axis=1).mean()) if rows else 0.0
            ok, detail = rate <= max_rate, {"mismatch_rate": rate, "max_mismatch_rate": max_rate}
        else:
            agree = float((got.astype(str) == want.astype(str)).mean()) if rows else 1.0
            ok, detail = agree >= min_agree, {"agreement": agree, "min_agreement": min_agree}
        report["outputs"][name] = {"passed": ok, **detail}
        report["passed"] = report["passed"] and ok
    if not report["passed"]:
        raise CheckFailedError(
            f"self-test of variant {model.variant!r} failed on the stored samples: "
            f"{report['outputs']}",
            hint="this variant does not reproduce its exported outputs on this device",
            details=report,
        )
    return report
