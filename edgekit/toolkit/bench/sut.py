"""Systems under test: what the load generator drives, and nothing else.

A SUT gives input sets for a batch size and runs one query, thread-safely; the load generator
(loadgen.py) decides when queries arrive and what is timed. Tests plug in a fake SUT with a
known capacity through the same interface.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge_agent.benchmark import InputSets, create_session, feeds_for
from edge_agent.benchmark.runner import time_first_call
from edge_agent.benchmark.stats import latency_stats
from edgekit.toolkit.bench.providers import CPU, DEVICE_MEMORY


@runtime_checkable
class SystemUnderTest(Protocol):
    system: str  # "onnxruntime" or "native:<framework>"
    variant: str
    provider: str

    def input_sets(self, batch: int) -> InputSets | Sequence[Any]:
        """Prepared queries of `batch` samples each (outside any timing)."""
        ...

    def run(self, query: Any) -> Any:
        """Process one query to completion; safe to call from several threads."""
        ...


@dataclass
class OnnxSUT:
    """One onnxruntime session of one variant on one provider with a thread setting."""

    model: Path
    signature_inputs: list[dict[str, Any]]
    variant: str
    provider: str = CPU
    threads: int | None = 1
    samples: Mapping[str, np.ndarray] | None = None
    sets: int = 8
    seed: int = 0
    system: str = "onnxruntime"
    session: Any = None
    create_s: float | None = None
    cold_first_s: float | None = None
    _run: Callable[[Any], Any] | None = field(default=None, repr=False)

    def open(self) -> OnnxSUT:
        self.session, self.create_s = create_session(self.model, self.provider, self.threads)
        in_use = self.session.get_providers()
        if not in_use or in_use[0] != self.provider:
            raise RuntimeError(
                f"{self.provider} was requested but onnxruntime fell back to {', '.join(in_use)}"
            )
        self._run = functools.partial(self.session.run, None)
        return self

    @property
    def providers_in_use(self) -> list[str]:
        return list(self.session.get_providers()) if self.session is not None else []

    @property
    def model_bytes(self) -> int:
        return self.model.stat().st_size

    def input_sets(self, batch: int) -> InputSets:
        return feeds_for(
            self.signature_inputs, batch, samples=self.samples, sets=self.sets, seed=self.seed
        )

    def run(self, query: Any) -> Any:
        return self._run(query)  # type: ignore[misc]

    def cold_call(self, query: Any) -> float:
        self.cold_first_s = time_first_call(self.run, query)
        return self.cold_first_s

    def copies(self, sets: InputSets) -> dict[str, Any] | None:
        return None


@dataclass
class BoundQuery:
    """A query whose inputs already sit in device memory and whose outputs stay there."""

    binding: Any
    host_feed: dict[str, np.ndarray]


class IOBindingSUT(OnnxSUT):
    """CUDA / TensorRT: inputs copied to the device before timing, outputs bound on the device,
    each run synchronised, so the timed latency is compute; copies are timed apart."""

    def _device(self) -> str:
        # "cpu" for any other provider: the same binding path then runs (and is tested) on a
        # machine without a GPU.
        return DEVICE_MEMORY.get(self.provider, "cpu")

    def input_sets(self, batch: int) -> InputSets:  # type: ignore[override]
        host = super().input_sets(batch)
        bound = [BoundQuery(self._bind(feed), feed) for feed in host.feeds]
        return InputSets(bound, host.batch, host.source, host.seed, host.notes)  # type: ignore[arg-type]

    def _bind(self, feed: Mapping[str, np.ndarray]) -> Any:
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, arr in feed.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), self._device(), 0)
            binding.bind_ortvalue_input(name, value)
        for out in self.session.get_outputs():
            binding.bind_output(out.name, self._device(), 0)
        binding.synchronize_inputs()
        return binding

    def run(self, query: BoundQuery) -> Any:  # type: ignore[override]
        self.session.run_with_iobinding(query.binding)
        query.binding.synchronize_outputs()

    def copies(self, sets: InputSets, repeats: int = 20) -> dict[str, Any]:
        """Host-to-device and device-to-host copy times of one query, measured apart."""
        h2d, d2h = [], []
        for k in range(repeats):
            query: BoundQuery = sets.feeds[k % len(sets.feeds)]  # type: ignore[assignment]
            t0 = time.perf_counter()
            binding = self._bind(query.host_feed)
            h2d.append(time.perf_counter() - t0)
            self.session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            t0 = time.perf_counter()
            binding.copy_outputs_to_cpu()
            d2h.append(time.perf_counter() - t0)
        first = sets.feeds[0].host_feed  # type: ignore[attr-defined]
        return {
            "host_to_device_ms": latency_stats(h2d),
            "device_to_host_ms": latency_stats(d2h),
            "input_bytes": int(sum(a.nbytes for a in first.values())),
            "note": "latency_ms is device compute (synchronised); copies are timed apart",
        }


def onnx_sut(provider: str, **kwargs: Any) -> OnnxSUT:
    """The SUT class a provider needs: I/O binding for device-memory providers."""
    cls = IOBindingSUT if provider in DEVICE_MEMORY else OnnxSUT
    return cls(provider=provider, **kwargs)
