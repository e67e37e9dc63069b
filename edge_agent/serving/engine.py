"""The serving core shared by REST, local pub/sub and batch mode: validate → run → hand the
timings and data to the monitor. One reference (``_active``) holds model, validator and
monitor together, so a swap replaces all three at once and in-flight requests finish on the
old model.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

import numpy as np

from edge_agent.config import AgentConfig
from edge_agent.errors import EdgekitError
from edge_agent.monitoring import drift
from edge_agent.monitoring.capture import Capture
from edge_agent.monitoring.monitor import Monitor
from edge_agent.serving import model as model_mod
from edge_agent.serving.heads import ClassifierHead, classifier_head
from edge_agent.serving.validation import (
    Limits,
    RequestError,
    Validator,
    encode_outputs,
    input_aliases,
    input_ranges,
    spec_from_ort,
)


@dataclass
class V2Result:
    """One answered v2 request: the response without outputs, and what to encode them from."""

    head: dict[str, Any]
    names: list[str]
    arrays: list[np.ndarray]
    specs: dict[str, Any]


class ModelError(Exception):
    """onnxruntime failed on an input that passed validation (a server-side fault)."""


@dataclass
class Active:
    model: model_mod.LoadedModel
    validator: Validator
    monitor: Monitor
    head: ClassifierHead | None = None  # label + probabilities a logits-only bundle declares

    def __post_init__(self) -> None:
        # Bound once per model so the request path does no lookups it can avoid.
        self.output_names = list(self.model.output_names)
        self.output_key = tuple(self.output_names)  # what the queue holds: a tuple of str
        self.run = session_runner(self.model.session)
        self.record = self.monitor.record
        self.pending = self.monitor.pending
        self.check = self.validator.check
        # the monitor takes a one-input model's feeds as the bare array (Monitor.record)
        self.single_input = self.monitor.single_input

    def refresh(self) -> None:
        """Rebind what depends on the limits (the validator's compiled check)."""
        self.check = self.validator.check


Runner = Callable[[list[str], dict[str, Any], Any], list[Any]]


def session_runner(session: Any) -> Runner:
    """``run(output_names, feeds, run_options)`` for the request path.

    For a CPU-only ``InferenceSession`` this is the compiled binding that
    ``InferenceSession.run`` calls after its own Python-side checks (required inputs present, no
    foreign OrtValues, no graph capture, provider fallback): the validator has already made
    the first two stricter, and the last two do not apply to the CPU provider. Anything else
    (other providers, another onnxruntime layout) gets the public ``run``.
    """
    binding = getattr(session, "_sess", None)
    run = getattr(binding, "run", None)
    try:
        cpu_only = list(session.get_providers()) == ["CPUExecutionProvider"]
    except Exception:  # not an onnxruntime session
        cpu_only = False
    return cast(Runner, run if (cpu_only and callable(run)) else session.run)


def limits_from(config: AgentConfig) -> Limits:
    return Limits(
        max_batch=config.max_batch,
        max_elements=config.max_elements,
        max_request_bytes=config.max_request_bytes,
        reject_nan=config.reject_nan,
        reject_inf=config.reject_inf,
    )


def build_active(model: model_mod.LoadedModel, config: AgentConfig) -> Active:
    session = model.session
    bundle = model.bundle
    validator = Validator(
        [spec_from_ort(i) for i in session.get_inputs()],
        [spec_from_ort(o) for o in session.get_outputs()],
        limits_from(config),
        aliases=input_aliases(bundle.signature),
        ranges=input_ranges(bundle.signature),
    )
    baseline = bundle.baseline() if bundle.manifest.get("baseline") else None
    roles = {o["name"]: o.get("role", "raw") for o in bundle.signature["outputs"]}
    capture = None
    if config.capture_dir and config.capture_fraction > 0:
        capture = Capture(
            config.capture_dir,
            config.capture_fraction,
            config.capture_max_bytes,
            config.capture_files,
        )
    head = classifier_head(bundle, validator.outputs)
    if head is not None:
        validator.outputs.update(head.specs)  # listed in metadata, accepted in 'outputs'
    monitor = Monitor(
        baseline,
        bundle.task,
        bundle.labels,
        roles,
        policy=drift_policy(config),
        feedback_keep=config.feedback_keep,
        sample_rows=config.monitor_sample_rows,
        capture=capture,
        single_input=next(iter(validator.inputs)) if len(validator.inputs) == 1 else None,
        ragged=any(
            None in spec.shape[1:]
            for spec in (*validator.inputs.values(), *validator.outputs.values())
        ),
    )
    return Active(model, validator, monitor, head)


def drift_policy(config: AgentConfig) -> drift.DriftPolicy:
    return drift.DriftPolicy(
        min_samples=config.drift_min_samples,
        alpha=config.drift_alpha,
        psi_threshold=config.drift_psi_threshold,
    )


class Engine:
    def __init__(self, config: AgentConfig, model: model_mod.LoadedModel) -> None:
        self.config = config
        # Inference ids: a random prefix per process start plus a counter, unique across
        # restarts without a uuid4 per request.
        self.prefix = secrets.token_hex(6) + "-"
        self._ids = itertools.count(1)
        self._active = build_active(model, config)
        self._active.monitor.start()
        self._swap_lock = threading.Lock()
        self.ready = True
        self.on_swap: Callable[[Active, Active], None] | None = None

    @property
    def active(self) -> Active:
        return self._active

    @property
    def model(self) -> model_mod.LoadedModel:
        return self._active.model

    # -- the inference path -------------------------------------------------------------------
    def infer(
        self,
        feeds: dict[str, Any],
        outputs: list[str] | None = None,
        received: float | None = None,
    ) -> tuple[str, list[str], list[np.ndarray]]:
        """Validate and run one request; returns (inference id, output names, arrays).

        The monitor reads ``feeds`` later, on its own thread: callers must not modify the
        arrays they passed in after the call (the REST, pub/sub and batch paths never do).
        """
        # Hot path: every line here is paid per request (a 16 µs model notices 0.1 µs), so
        # lookups are bound once per model in Active and the monitor gets one tuple appended
        # to its queue; it does all the numpy work later, in bulk, on its own thread.
        active = self._active
        if received is None:
            received = perf_counter()
        try:
            checked, rows = active.check(feeds)
        except RequestError as exc:
            active.monitor.record_error(exc.kind, wrong_type=exc.wrong_type)
            raise
        names: list[str]
        key: list[str] | tuple[str, ...]
        if outputs:
            names = key = outputs
        else:
            names, key = active.output_names, active.output_key
        started = perf_counter()
        try:
            result = active.run(names, checked, None)
        except Exception as exc:
            active.monitor.record_error("model_error")
            raise ModelError(f"the model failed on a validated request: {exc}") from exc
        finished = perf_counter()
        inference_id = f"{self.prefix}{next(self._ids)}"
        # bare arrays and a tuple of names where they suffice: nothing queued that the garbage
        # collector tracks (Monitor.record)
        single = active.single_input
        item: tuple[Any, ...] = (
            received,
            started,
            finished,
            rows,
            inference_id,
            checked[single] if single is not None else checked,
            result[0] if len(result) == 1 else result,
            key,
        )
        pending = active.pending
        if len(pending) < active.monitor.drain_batch:
            pending.append(item)
        else:  # a full queue: record() wakes the monitor, or drops the feeds far past it
            active.record(*item)
        return inference_id, names, result

    def infer_v2(
        self,
        body: Any,
        received: float | None = None,
        binary: dict[int, memoryview] | None = None,
    ) -> V2Result:
        """A decoded KServe v2 request → the response's head, and the outputs to encode.

        The head's ``id`` echoes the request's ``id`` (the protocol's rule); without one it is
        the inference id, which ``parameters.inference_id`` always carries for /feedback.
        """
        active = self._active
        received = received if received is not None else perf_counter()
        try:
            feeds, wanted, request_id = active.validator.parse_kserve(body, binary)
        except RequestError as exc:
            active.monitor.record_error(exc.kind, wrong_type=exc.wrong_type)
            raise
        run = wanted
        if active.head is not None and wanted is not None:
            extra = active.head.specs
            run = [n for n in wanted if n not in extra]
            if len(run) < len(wanted) and active.head.logits not in run:
                run.append(active.head.logits)
        inference_id, names, arrays = self.infer(feeds, run, received)
        if active.head is not None:
            names, arrays = active.head.add(names, arrays, wanted)
        model = active.model
        head = {
            "model_name": model.name,
            "model_version": model.variant,
            "id": request_id if request_id is not None else inference_id,
            "parameters": {"inference_id": inference_id, "sha256": model.sha256},
        }
        return V2Result(head, names, arrays, active.validator.outputs)

    def infer_json(self, body: Any, received: float | None = None) -> dict[str, Any]:
        """A decoded KServe v2 request → the v2 response with JSON ``data`` for every output."""
        result = self.infer_v2(body, received)
        return {
            **result.head,
            "outputs": encode_outputs(result.specs, result.names, result.arrays),
        }

    def record_error(self, kind: str) -> None:
        self._active.monitor.record_error(kind)

    # -- metadata -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        active = self._active
        return {
            "name": active.model.name,
            "versions": [active.model.variant],
            "platform": "onnxruntime_onnx",
            "inputs": [s.describe() for s in active.validator.inputs.values()],
            "outputs": [s.describe() for s in active.validator.outputs.values()],
            "parameters": {"sha256": active.model.sha256, "task": active.model.bundle.task},
        }

    # -- labels -------------------------------------------------------------------------------
    def feedback(self, body: Any) -> dict[str, Any]:
        """``{"inference_id", "label"|"labels"}`` or ``{"labels": [{...}, ...]}``."""
        if (
            isinstance(body, dict)
            and isinstance(body.get("labels"), list)
            and "inference_id" not in body
        ):
            items = body["labels"]
        elif isinstance(body, dict) and "inference_id" in body:
            items = [body]
        elif isinstance(body, list):
            items = body
        else:
            raise RequestError(
                "feedback needs {inference_id, label} or {labels: [{inference_id, label}, ...]}"
            )
        if not all(isinstance(i, dict) for i in items):
            raise RequestError("each feedback item must be an object with inference_id and label")
        return self._active.monitor.feedback(items)

    # -- model swap ---------------------------------------------------------------------------
    def swap(self, bundle_dir: str | None = None, variant: str | None = None) -> dict[str, Any]:
        """Load, verify and self-test the new model aside; switch only when all passed.

        Raises EdgekitError (the old model keeps serving) when anything fails.
        """
        with self._swap_lock:
            old = self._active
            target_dir = bundle_dir or str(old.model.bundle.path)
            new_model = model_mod.load(
                target_dir, variant, self.config.target, verify_key=self.config.verify_key
            )
            new = build_active(new_model, self.config)
            new.monitor.start()
            self._active = new
        if self.on_swap:
            self.on_swap(old, new)
        else:
            old.monitor.stop()
        return {
            "from": old.model.describe(),
            "to": new_model.describe(),
            "load_s": new_model.load_s,
            "self_test": new_model.self_test,
        }

    def apply_config(self, config: AgentConfig) -> None:
        """Live settings: limits and drift policy take effect on the next request/window."""
        self.config = config
        active = self._active
        active.validator.limits = limits_from(config)
        active.refresh()
        active.monitor.policy = drift_policy(config)

    def close(self) -> None:
        self._active.monitor.stop()


__all__ = ["Active", "Engine", "EdgekitError", "ModelError", "RequestError"]
