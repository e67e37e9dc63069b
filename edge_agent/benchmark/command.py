"""The ``cmd/edgekit/{thing}/bench`` command: benchmark every shipped variant on this device with
the same harness as ``edgekit bench`` (edge_agent.benchmark), within a time budget, and return the
``bench`` body of the telemetry contract so tune can use figures measured on the real device.

Every record names the settings it was measured with (``threads`` and ``session_options``) and
where they came from (``settings_from``): the command's, else the deployed selection's, else this
device's usable CPUs. Tune may then recommend only what a device really ran.
"""

from __future__ import annotations

import time
from typing import Any

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import EdgekitError

DEFAULT_BUDGET_S = 20.0
MAX_BUDGET_S = 600.0
MAX_BATCH = 4096  # rows per timed call
MAX_THREADS = 256  # intra-op threads
MIN_SHARE_S = 0.3  # less than this left for a variant: skipped, not measured badly
SHARE_TIMED = 0.8  # of a variant's share, the most its timed windows may take (rest: session)


def bench_threads(command_threads: int | None, deployed: dict[str, Any] | None) -> tuple[int, str]:
    """The intra-op thread count to measure with and where it came from: never left to
    onnxruntime's default, so a record never says ``threads: null``."""
    if command_threads:
        return int(command_threads), "command"
    deployed_threads = (deployed or {}).get("intra_op_num_threads")
    if deployed_threads:
        return int(deployed_threads), "deployed selection"
    from edge_agent.hardware import usable_cpus

    return usable_cpus(), "usable CPUs (no thread count deployed)"


def _limits(command: dict[str, Any]) -> tuple[float, int, int | None] | str:
    """(budget_s, batch, threads) of a command, or why they cannot be run. A command comes
    from the cloud and runs on the device: a batch of 10**8 rows or 10**5 threads took the
    agent's memory or threads down with it, and a NaN budget measured nothing."""
    try:
        budget = min(float(command.get("budget_s", DEFAULT_BUDGET_S)), MAX_BUDGET_S)
        batch = int(command.get("batch", 1))
        threads = command.get("threads")
        threads = None if threads is None else int(threads)
    except (TypeError, ValueError, OverflowError):
        return "budget_s, batch and threads must be numbers"
    if not (
        0 < budget <= MAX_BUDGET_S
        and 1 <= batch <= MAX_BATCH
        and 0 <= (threads or 0) <= MAX_THREADS
    ):
        return (
            f"budget_s must be within 0..{MAX_BUDGET_S:g}, batch within 1..{MAX_BATCH} and "
            f"threads within 1..{MAX_THREADS}"
        )
    variants = command.get("variants")
    if variants is not None and not (
        isinstance(variants, list) and all(isinstance(v, str) for v in variants)
    ):
        return "variants must be a list of variant names"
    return budget, batch, threads


def run_bench(
    bundle: Bundle, command: dict[str, Any], deployed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``command``: {request_id?, variants?, budget_s?, batch?, threads?} → bench body;
    ``deployed``: the session options the agent serves with (the threads measured by default)."""
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
    parsed = _limits(command)
    if isinstance(parsed, str):
        body["error"] = parsed
        return body
    budget, batch, threads = parsed
    body["budget_s"] = budget
    threads, settings_from = bench_threads(threads, deployed)
    settings = {
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": "all",
    }
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
    for i, name in enumerate(wanted):
        # an equal share of what is left for each variant still to measure, so that every
        # candidate is compared; the harness may extend its windows until they are stable
        # (up to max_windows / windows times the duration) and creates a session first
        share = (deadline - time.monotonic()) / (len(wanted) - i)
        if share < MIN_SHARE_S:
            body["results"][name] = {"skipped": "time budget used up"}
            continue
        stab = TimingConfig().stability
        duration = share * SHARE_TIMED * stab.windows / stab.max_windows
        try:
            path = bundle.verify_variant(name)
            rec = run_single_stream(
                path,
                bundle.signature["inputs"],
                batch=batch,
                threads=threads,
                samples=samples,
                timing=TimingConfig(duration_s=duration),
                variant=name,
            )
            body["results"][name] = {
                **rec,
                "session_options": settings,
                "settings_from": settings_from,
            }
        except EdgekitError as exc:
            body["results"][name] = {"error": exc.message}
        except Exception as exc:  # a variant that cannot run here is a result, not a crash
            body["results"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    return body
