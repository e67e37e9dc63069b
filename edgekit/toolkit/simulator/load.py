"""The load driver: KServe v2 REST inference requests at a fixed rate to each device's agent,
rows drawn in turn from a data set (the bundle's stored samples), optionally with the input
distribution shifted after a time to show drift detection. Client-side latency per device."""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.arrays import load_npz
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError

_DTYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
}


@dataclass
class Dataset:
    """Rows to send. Drift shifts a third of the numeric inputs (at least one) by
    `shift_sigmas` standard deviations, so per-feature drift shows which inputs moved."""

    model: str
    inputs: dict[str, np.ndarray]
    shift_sigmas: float = 3.0
    _shift: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        numeric = [n for n, a in self.inputs.items() if a.dtype.kind == "f"]
        for name in numeric[: max(1, -(-len(numeric) // 3))] if numeric else []:
            std = np.nanstd(self.inputs[name].astype(np.float64), axis=0)
            self._shift[name] = self.shift_sigmas * np.where(std > 0, std, 1.0)

    @property
    def rows(self) -> int:
        return min(len(v) for v in self.inputs.values())

    @property
    def drifted_inputs(self) -> list[str]:
        return list(self._shift)

    def body(self, i: int, drifted: bool) -> bytes:
        """A KServe v2 request for row i. Missing values go as JSON `NaN`, which the agent reads
        as missing (its reject_nan is off by default); `null` would be refused as not a number."""
        out = []
        for name, arr in self.inputs.items():
            row = arr[i % len(arr) : i % len(arr) + 1]
            if drifted and name in self._shift:
                row = (row + self._shift[name]).astype(arr.dtype)
            if row.dtype.kind in "OUS":
                dtype, data = "BYTES", [str(x) for x in row.ravel().tolist()]
            else:
                dtype = _DTYPES.get(str(row.dtype), "FP32")
                data = row.ravel().tolist()
            out.append({"name": name, "shape": list(row.shape), "datatype": dtype, "data": data})
        return json.dumps({"inputs": out}).encode()


def load_dataset(samples: Path, name: str = "model") -> Dataset:
    """Rows from a user's .npz (keyed by input name), read without pickle."""
    if not samples.is_file():
        raise BadInputError(f"data set {samples} not found", hint="pass `data` (a samples.npz)")
    arrays = load_npz(samples, "data set")
    return _dataset(samples, name, {k: v for k, v in arrays.items() if not k.startswith("__")})


def _dataset(where: Path, name: str, inputs: dict[str, np.ndarray]) -> Dataset:
    if not inputs:
        raise BadInputError(f"{where} holds no model inputs")
    return Dataset(name, inputs)


def find_dataset(root: Path) -> Dataset | None:
    """The bundle's samples inside a device's unarchived artifacts (what the agent serves),
    read through the bundle loader: names, links and the samples' digest checked, no pickle."""
    for samples in sorted(root.glob("packages/artifacts-unarchived/**/samples.npz")):
        bundle = Bundle.open(samples.parent)
        return _dataset(samples, bundle.manifest["name"], bundle.sample_inputs())
    return None


@dataclass
class DeviceLoad:
    thing: str
    port: int
    sent: int = 0
    ok: int = 0
    errors: int = 0
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=2000))
    done_at: collections.deque = field(default_factory=lambda: collections.deque(maxlen=5000))
    last_error: str = ""

    def throughput(self, window_s: float = 5.0) -> float:
        now = time.monotonic()
        return sum(1 for t in self.done_at if now - t <= window_s) / window_s

    def p99_ms(self) -> float | None:
        if not self.latencies:
            return None
        return float(np.percentile(np.fromiter(self.latencies, float), 99)) * 1000

    def summary(self) -> dict[str, Any]:
        lat = np.fromiter(self.latencies, float) * 1000 if self.latencies else None
        return {
            "port": self.port,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "p50_ms": float(np.percentile(lat, 50)) if lat is not None else None,
            "p99_ms": float(np.percentile(lat, 99)) if lat is not None else None,
            "last_error": self.last_error,
        }


def _post(port: int, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


async def drive(
    loads: list[DeviceLoad],
    data: Dataset,
    qps: float,
    duration_s: float,
    drift_after_s: float | None = None,
    drift_things: set[str] | None = None,
    timeout_s: float = 5.0,
) -> None:
    """Open-loop load: each device gets `qps` requests per second for `duration_s`."""
    if qps <= 0 or not loads:
        await asyncio.sleep(duration_s)
        return
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=min(32, 4 * len(loads)))
    path = f"/v2/models/{data.model}/infer"
    t0 = time.monotonic()
    in_flight: set[asyncio.Future] = set()

    async def one(load: DeviceLoad, i: int, drifted: bool) -> None:
        start = time.perf_counter()
        load.sent += 1
        try:
            status, raw = await loop.run_in_executor(
                pool, _post, load.port, path, data.body(i, drifted), timeout_s
            )
        except OSError as exc:
            load.errors += 1
            load.last_error = str(exc)
            return
        if status == 200:
            load.ok += 1
            load.latencies.append(time.perf_counter() - start)
            load.done_at.append(time.monotonic())
        else:
            load.errors += 1
            load.last_error = f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"

    async def per_device(load: DeviceLoad) -> None:
        i = 0
        interval = 1.0 / qps
        next_t = time.monotonic()
        while time.monotonic() - t0 < duration_s:
            drifted = (
                drift_after_s is not None
                and time.monotonic() - t0 >= drift_after_s
                and (drift_things is None or load.thing in drift_things)
            )
            fut = asyncio.ensure_future(one(load, i, drifted))
            in_flight.add(fut)
            fut.add_done_callback(in_flight.discard)
            i += 1
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))

    try:
        await asyncio.gather(*(per_device(x) for x in loads))
        if in_flight:
            await asyncio.wait(in_flight, timeout=timeout_s)
    finally:
        pool.shutdown(wait=False)
