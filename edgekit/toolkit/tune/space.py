"""The candidate space: variant x provider x onnxruntime session options.

Session options are kept as plain data with the manifest's spelling, because the agent reads
exactly this record back from manifest["selection"][target]["session_options"] and applies it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXECUTION_MODES = ("sequential", "parallel")
GRAPH_LEVELS = ("disable", "basic", "extended", "all")
DEFAULT_GRAPH_LEVELS = ("basic", "extended", "all")


@dataclass(frozen=True, order=True)
class SessionOptions:
    intra_op_num_threads: int = 1
    inter_op_num_threads: int = 1
    execution_mode: str = "sequential"
    graph_optimization_level: str = "all"

    def __post_init__(self) -> None:
        if self.execution_mode not in EXECUTION_MODES:
            raise ValueError(f"execution_mode must be one of {EXECUTION_MODES}")
        if self.graph_optimization_level not in GRAPH_LEVELS:
            raise ValueError(f"graph_optimization_level must be one of {GRAPH_LEVELS}")
        if self.intra_op_num_threads < 1 or self.inter_op_num_threads < 1:
            raise ValueError("thread counts must be >= 1")

    def to_manifest(self) -> dict[str, Any]:
        return asdict(self)

    def to_ort(self) -> Any:
        """An onnxruntime.SessionOptions built by the agent's own loader, so tune measures
        exactly the settings the agent applies on the device (threads never 0 = 'all cores')."""
        from edge_agent.serving.model import session_options

        return session_options(self.to_manifest())

    @property
    def cpus_needed(self) -> int:
        """Threads that may run at once: in parallel mode the inter-op pool runs nodes side by
        side on top of the shared intra-op pool (each pool counts the calling thread)."""
        if self.execution_mode == "parallel":
            return self.intra_op_num_threads + self.inter_op_num_threads - 1
        return self.intra_op_num_threads

    def short(self) -> str:
        threads = f"{self.intra_op_num_threads} thread" + (
            "s" if self.intra_op_num_threads > 1 else ""
        )
        parts = [threads]
        if self.execution_mode == "parallel":
            parts.append(f"parallel x{self.inter_op_num_threads}")
        if self.graph_optimization_level != "all":
            parts.append(f"graph opt {self.graph_optimization_level}")
        return ", ".join(parts)


@dataclass(frozen=True, order=True)
class Candidate:
    variant: str
    provider: str
    options: SessionOptions

    @property
    def key(self) -> str:
        o = self.options
        return (
            f"{self.variant}|{self.provider}|intra={o.intra_op_num_threads}|"
            f"inter={o.inter_op_num_threads}|{o.execution_mode}|{o.graph_optimization_level}"
        )

    def describe(self) -> str:
        provider = self.provider.replace("ExecutionProvider", "")
        suffix = "" if provider == "CPU" else f" on {provider}"
        return f"{self.variant}{suffix}, {self.options.short()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "provider": self.provider,
            "session_options": self.options.to_manifest(),
        }


def thread_counts(max_threads: int) -> list[int]:
    """1, 2, 4, ... up to max_threads, and max_threads itself (6 cores: 1, 2, 4, 6)."""
    counts, n = [], 1
    while n < max_threads:
        counts.append(n)
        n *= 2
    counts.append(max(1, max_threads))
    return counts


def session_option_space(
    max_threads: int,
    *,
    graph_levels: tuple[str, ...] = DEFAULT_GRAPH_LEVELS,
    parallel: bool = True,
) -> list[SessionOptions]:
    """Every distinct session-option set whose busy CPUs fit in max_threads.

    Sequential mode ignores inter-op threads, so it gets only inter=1; parallel mode only
    pays with at least two inter-op threads, so it gets 2.. and is skipped on one core.
    """
    space = []
    for level in graph_levels:
        for intra in thread_counts(max_threads):
            space.append(SessionOptions(intra, 1, "sequential", level))
            if parallel:
                for inter in thread_counts(max_threads):
                    opts = SessionOptions(intra, inter, "parallel", level)
                    if inter >= 2 and opts.cpus_needed <= max_threads:
                        space.append(opts)
    return space


def candidate_space(
    variants: list[str],
    providers: list[str],
    max_threads: int,
    *,
    graph_levels: tuple[str, ...] = DEFAULT_GRAPH_LEVELS,
    parallel: bool = True,
    providers_for: dict[str, list[str]] | None = None,
) -> list[Candidate]:
    """The cross product, with each variant paired only with the providers meant for it."""
    options = session_option_space(max_threads, graph_levels=graph_levels, parallel=parallel)
    out: list[Candidate] = []
    for variant in variants:
        allowed = (providers_for or {}).get(variant, providers)
        for provider in providers:
            if provider not in allowed:
                continue
            out.extend(Candidate(variant, provider, o) for o in options)
    return out
