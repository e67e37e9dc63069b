"""The ``cmd/edgekit/{thing}/bench`` command: benchmark every shipped variant on this device with
the same harness as ``edgekit bench`` (edge_agent.benchmark), within a time budget, and return the
``bench`` body of the telemetry contract so tune can use figures measured on the real device.
"""

from __future__ import annotations

import time
from typing import Any

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import EdgekitError

DEFAULT_BUDGET_S = 20.0
MAX_BUDGET_S = 600.0


def run_bench(bundle: Bundle, command: dict[str, Any]) -> dict[str, Any]:
    """``command``: {request_id?, variants?, budget_s?, batch?, threads?} → bench body."""
    body: dict[str, Any] = {
        "request_id": command.get("request_id"),
        "results": {},
        "error": None,
        "budget_s": None,
    }
    try:
        from edge_agent.benchmark import TimingConfig, run_single_stream
    except ImportError as exc:
        body["error"] = f"the benchmark harness is not installed with this agent: {exc}"
        return body
    try:
        budget = min(float(command.get("budget_s", DEFAULT_BUDGET_S)), MAX_BUDGET_S)
        batch = int(command.get("batch", 1))
        threads = command.get("threads")
        threads = None if threads is None else int(threads)
    except (TypeError, ValueError):
        body["error"] = "budget_s, batch and threads must be numbers"
        return body
    body["budget_s"] = budget
    wanted = command.get("variants") or [
        n for n, v in bundle.variants.items() if not v.get("rejected")
    ]
    unknown = [v for v in wanted if v not in bundle.variants]
    if unknown:
        body["error"] = f"unknown variant(s) {unknown}; shipped: {sorted(bundle.variants)}"
        return body
    samples = None
    if bundle.manifest.get("samples"):
        samples = bundle.sample_inputs()
    deadline = time.monotonic() + budget
    per_variant = max(budget / max(len(wanted), 1) * 0.7, 0.2)  # room for session creation
    for name in wanted:
        if time.monotonic() + per_variant > deadline:
            body["results"][name] = {"skipped": "time budget used up"}
            continue
        try:
            path = bundle.verify_variant(name)
            body["results"][name] = run_single_stream(
                path,
                bundle.signature["inputs"],
                batch=batch,
                threads=threads,
                samples=samples,
                timing=TimingConfig(duration_s=per_variant),
                variant=name,
            )
        except EdgekitError as exc:
            body["results"][name] = {"error": exc.message}
        except Exception as exc:  # a variant that cannot run here is a result, not a crash
            body["results"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    return body
