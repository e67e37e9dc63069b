"""The native baseline: the source model rebuilt from the bundle's lineage and run on the same
inputs and threads as onnxruntime, so the report says what ONNX gains.

scikit-learn models come back from the skops file (trusted types only, digest checked) or the
factory recorded at export; PyTorch modules from their factory (plus the --weights file named
in the export command) and run eagerly under torch.inference_mode. A factory, pickle or .pt2
source is code that the (untrusted) manifest names: it runs only with --trust-code and when
its file still has the sha256 recorded at export (edgekit.export.sources.load_recorded). Anything else
is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.benchmark import InputSets, feeds_for
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import EdgekitError
from edge_agent.hashing import sha256_file


class NativeUnavailable(Exception):
    """The source model cannot be rebuilt here; the message is the skip reason."""


@dataclass
class NativeModel:
    framework: str  # "sklearn" or "torch"
    obj: Any
    method: str  # what is timed, e.g. "predict_proba"
    adapt: Callable[[dict[str, np.ndarray]], Any]
    call: Callable[[Any], Any]
    notes: list[str] = field(default_factory=list)


def _weights_from_command(command: str) -> Path | None:
    try:
        parts = shlex.split(command)
    except ValueError:
        return None
    for i, part in enumerate(parts):
        if part == "--weights" and i + 1 < len(parts):
            return Path(parts[i + 1])
        if part.startswith("--weights="):
            return Path(part.split("=", 1)[1])
    return None


def _load_source(bundle: Bundle, trust_code: bool) -> tuple[Any, list[str]]:
    from edgekit.export.sources import NotTrusted, load_recorded

    source = bundle.manifest["lineage"].get("source") or {}
    try:
        loaded = load_recorded(source, trust_code=trust_code)
    except NotTrusted as exc:
        raise NativeUnavailable(str(exc)) from exc
    except EdgekitError as exc:
        raise NativeUnavailable(f"cannot rebuild the source model: {exc.message}") from exc
    return loaded.obj, []


def _sklearn(bundle: Bundle, model: Any, notes: list[str]) -> NativeModel:
    sig = bundle.signature
    names = [t["name"] for t in sig["inputs"]]
    shown = {t["name"]: t.get("column") or t["name"] for t in sig["inputs"]}
    columns = [c["name"] for c in sig.get("columns") or []]
    per_column = len(names) > 1 or (columns and [shown[n] for n in names] == columns)
    wants_frame = per_column or getattr(model, "feature_names_in_", None) is not None

    def adapt(feed: dict[str, np.ndarray]) -> Any:
        import pandas as pd

        if per_column:  # the model's columns by the user's names (signature "column")
            return pd.DataFrame({shown[n]: np.asarray(feed[n]).reshape(-1) for n in names})
        x = np.asarray(feed[names[0]])
        return pd.DataFrame(x, columns=columns or None) if wants_frame else x

    method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    return NativeModel("sklearn", model, method, adapt, getattr(model, method), notes)


def _torch(bundle: Bundle, module: Any, notes: list[str]) -> NativeModel:
    import torch

    if hasattr(module, "module") and not isinstance(module, torch.nn.Module):
        module = module.module()  # ExportedProgram
    lineage = bundle.manifest["lineage"]
    recorded = lineage.get("source", {}).get("weights")
    weights_sha = None
    if isinstance(recorded, dict):  # {"path", "sha256"} as export records it
        weights_sha = recorded.get("sha256")
        recorded = recorded.get("path")
    weights = recorded or _weights_from_command(lineage.get("command", ""))
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            notes.append(
                f"weights {weights} not found: the factory's initial weights are timed "
                "(same architecture, same cost)"
            )
        elif weights_sha and sha256_file(weights) != weights_sha:
            raise NativeUnavailable(
                f"the weights file {weights} changed since export (sha256 differs)"
            )
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
    if hasattr(module, "eval"):
        module.eval()
    names = [t["name"] for t in bundle.signature["inputs"]]

    def adapt(feed: dict[str, np.ndarray]) -> tuple[Any, ...]:
        return tuple(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names)

    def call(args: tuple[Any, ...]) -> Any:
        with torch.inference_mode():
            return module(*args)

    return NativeModel("torch", module, "forward (eager, inference_mode)", adapt, call, notes)


def load_native(bundle: Bundle, *, trust_code: bool = False) -> NativeModel:
    """Rebuild the source model; code the lineage names runs only with `trust_code`."""
    framework = bundle.manifest["lineage"].get("framework")
    if framework == "onnx":
        raise NativeUnavailable("the source is already an ONNX model: there is no native framework")
    if framework not in ("sklearn", "torch"):
        raise NativeUnavailable(f"no native runner for framework {framework!r}")
    obj, notes = _load_source(bundle, trust_code)
    return (_sklearn if framework == "sklearn" else _torch)(bundle, obj, notes)


@contextlib.contextmanager
def thread_limit(framework: str, threads: int | None) -> Iterator[None]:
    """Give the native framework the same thread count as the onnxruntime session."""
    if not threads:
        yield
        return
    if framework == "torch":
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)
    else:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            yield


@dataclass
class NativeSUT:
    """The native model as a system under test, on the ONNX feeds converted before timing."""

    native: NativeModel
    signature_inputs: list[dict[str, Any]]
    threads: int | None = 1
    samples: dict[str, np.ndarray] | None = None
    sets: int = 8
    seed: int = 0
    variant: str = "native"
    provider: str = "native"
    create_s: float | None = None
    cold_first_s: float | None = None

    @property
    def system(self) -> str:
        return f"native:{self.native.framework}"

    @property
    def providers_in_use(self) -> list[str]:
        return [f"{self.native.framework} {self.native.method}"]

    model_bytes = None

    def input_sets(self, batch: int) -> InputSets:
        host = feeds_for(
            self.signature_inputs, batch, samples=self.samples, sets=self.sets, seed=self.seed
        )
        converted = [self.native.adapt(f) for f in host.feeds]
        return InputSets(converted, batch, host.source, host.seed, list(host.notes))  # type: ignore[arg-type]

    def run(self, query: Any) -> Any:
        return self.native.call(query)

    def cold_call(self, query: Any) -> float:
        import time

        t0 = time.perf_counter()
        self.run(query)
        self.cold_first_s = time.perf_counter() - t0
        return self.cold_first_s

    def limits(self) -> contextlib.AbstractContextManager[None]:
        return thread_limit(self.native.framework, self.threads)

    def copies(self, sets: InputSets) -> None:
        return None
