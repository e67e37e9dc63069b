"""`edgekit bench BUNDLE_DIR [...]` and `edgekit bench compare OLD.json NEW.json`.

`bench` is a group whose default command is `run`: anything that is not a subcommand name is
handed to `run`, so both forms of the contract work as written (`edgekit bench run ...` too).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgressBar
from typer.core import TyperGroup

from edge_agent.benchmark import StabilityConfig, TimingConfig
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import (
    JSON_OPTION,
    compact_table,
    err,
    handle_errors,
    out,
    print_json,
    split_csv,
)
from edgekit.toolkit.present.bench import cost_table, results_table

if TYPE_CHECKING:  # the engine is imported when a command runs, not at start-up
    from edgekit.toolkit.bench.engine import Progress


class DefaultRunGroup(TyperGroup):
    """Routes `bench BUNDLE ...` to `bench run BUNDLE ...`; `bench compare ...` stays."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=DefaultRunGroup,
    help="Benchmark a bundle's variants (edgekit bench BUNDLE_DIR ...), or compare two runs "
    "(edgekit bench compare OLD.json NEW.json).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(bench_app, name="bench")


def _list(text: str | None) -> list[str] | None:
    return split_csv(text) or None


def _ints(option: str, text: str | None) -> list[int] | None:
    """Comma-separated integers; None when the option was not given, an error when empty."""
    if text is None:
        return None
    items = split_csv(text)
    try:
        if not items:
            raise ValueError
        return [int(t) for t in items]
    except ValueError:
        raise BadInputError(
            f"{option} takes comma-separated integers, got {text!r}", hint=f"e.g. {option} 1,2"
        ) from None


class RichProgress:
    """The engine's progress drawn as a rich bar on stderr (stdout stays clean for --json)."""

    def __init__(self) -> None:
        self.bar = RichProgressBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self.task: Any = None
        self.done = 0

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("benchmark", total=total)

    def begin(self, label: str) -> None:
        self.bar.update(self.task, description=label, completed=self.done)
        if not self.bar.console.is_terminal:
            self.bar.console.print(f"measuring {self._count(1)}: {label}", highlight=False)

    def _count(self, ahead: int = 0) -> str:
        return f"{self.done + ahead}/{self.bar.tasks[0].total:.0f}"

    def update(self, fraction: float) -> None:
        self.bar.update(self.task, completed=self.done + min(fraction, 1.0))

    def end(self, label: str, record: dict[str, Any] | None, skipped: str | None = None) -> None:
        self.done += 1
        self.bar.update(self.task, completed=self.done)
        if skipped:
            self.bar.console.print(f"[yellow]skipped[/] {label}: {skipped}", highlight=False)
        elif not self.bar.console.is_terminal:  # no bar in a log: one line per configuration
            self.bar.console.print(f"measured {self._count()}: {label}", highlight=False)

    def stop(self) -> None:
        self.bar.stop()


@bench_app.command("run")
@handle_errors
def bench_run(
    bundle_dir: Path = typer.Argument(..., help="Bundle folder."),
    variants: str = options.variants(" to measure: a,b or all.", "all"),
    old_variants: str | None = options.alias("--variants", "--variant", default=None),
    include_rejected: bool = typer.Option(False, "--include-rejected", help="Measure rejected variants too."),
    providers: str = typer.Option("cpu", "--providers", help="Execution providers: cpu,cuda,tensorrt,openvino,... or all."),
    threads: str = typer.Option("1", "--threads", help="Intra-op thread counts, e.g. 1,2 (0 = onnxruntime's default)."),
    batch: str | None = typer.Option(None, "--batch", help="Batch sizes (samples per query), e.g. 1,32. Default by scenario."),
    scenario: str = typer.Option("single-stream", "--scenario", help="single-stream | multi-stream | server | offline."),
    duration: float | None = options.duration(None, "to time each configuration (default 2s)"),
    iterations: int | None = typer.Option(None, "--iterations", help="Timed calls per configuration (instead of --duration)."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed warm-up calls per configuration."),
    qps: float | None = options.rate(None, "--qps", "Server: Poisson arrival rate of queries; with --latency-bound, where the search starts"),
    latency_bound: str | None = options.latency_bound("server, search the highest QPS that meets it."),
    workers: int | None = typer.Option(None, "--workers", help="Server: concurrent workers (default: usable cores, at least 2)."),
    stability: float = typer.Option(0.10, "--stability", help="Windows agree when max/min - 1 is within this (perf_analyzer's 10%)."),
    max_windows: int = typer.Option(10, "--max-windows", help="Give up (report unstable) after this many windows."),
    price_per_hour: float | None = typer.Option(None, "--price-per-hour", help="Hourly price of this machine for the cost figures."),
    instance: str | None = typer.Option(None, "--instance", help="Take the hourly price from this row of the price table."),
    prices: Path | None = typer.Option(None, "--prices", help="Your own price table (YAML, like edgekit/toolkit/bench/prices.yaml)."),
    predictions_per_user: float | None = typer.Option(None, "--predictions-per-user", help="Predictions per user per month, for the cost per user."),
    native: bool = typer.Option(True, "--native/--no-native", help="Time the source framework too (scikit-learn / PyTorch eager)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Let the native baseline run the factory, pickle or .pt2 the bundle's lineage names (checked against its recorded sha256). Only for bundles you made yourself."),
    target: str = options.target("local", "store the results under it in the manifest (local: this machine)."),
    save: bool = typer.Option(True, "--save/--no-save", help="Store results in the bundle manifest."),
    seed: int = typer.Option(0, "--seed", help="Seed for input selection and generation and for arrivals."),
    output: Path | None = options.output("the report folder (report.html, results.json, results.csv); default ./bench-<bundle>."),
    as_json: bool = JSON_OPTION,
) -> None:  # fmt: skip
    """Measure latency and throughput of every variant × provider × threads × batch."""
    from edgekit.toolkit.bench.cost import choose_price
    from edgekit.toolkit.bench.engine import BenchPlan
    from edgekit.toolkit.bench.loadgen import LatencyBound
    from edgekit.toolkit.bench.store import prepare_output, save_to_manifest, write_results

    timing = _timing(duration, iterations, warmup, stability, max_windows)
    plan = BenchPlan(
        variants=_list(options.merged(variants, old_variants, "--variants", "--variant", "all")),
        include_rejected=include_rejected,
        providers=_list(providers),
        threads=_ints("--threads", threads) or [1],
        batches=_ints("--batch", batch),
        scenario=scenario,
        timing=timing,
        qps=qps,
        latency_bound=LatencyBound.parse(latency_bound) if latency_bound else None,
        workers=workers,
        native=native,
        trust_code=trust_code,
        seed=seed,
        price=choose_price(price_per_hour, instance, prices),
        predictions_per_user=predictions_per_user,
        target=target,
    )
    bundle = Bundle.open(bundle_dir)
    out_path = output or Path(f"bench-{bundle.manifest['name']}")
    existed = out_path.exists()
    out_dir = prepare_output(out_path, bundle_dir)
    run = _measure(bundle_dir, plan, out_dir, existed)
    if run.interrupted is not None:
        keep_interrupted(run, out_dir, existed, as_json)
    if not run.records:
        raise CheckFailedError(
            "no configuration could be measured",
            hint="; ".join(f"{s['what']}: {s['reason']}" for s in run.skipped) or None,
        )
    paths = write_results(run, out_dir, Bundle.open(bundle_dir).manifest)
    saved = save_to_manifest(run, target) if save else []
    doc = run.to_dict()
    if as_json:
        print_json(
            {
                **doc,
                "ok": True,
                "outputs": {k: str(v) for k, v in paths.items()},
                "saved_to_manifest": saved,
            }
        )
        return
    _print_run(run, doc, paths, saved, target)


def _timing(
    duration: float | None, iterations: int | None, warmup: int, stability: float, max_windows: int
) -> TimingConfig:
    """How long each configuration is timed; --duration and --iterations exclude each other."""
    if duration is not None and iterations is not None:
        raise BadInputError("give --duration or --iterations, not both")
    try:
        timing = TimingConfig(
            warmup_iterations=warmup,
            iterations=iterations,
            duration_s=duration,
            stability=StabilityConfig(tolerance=stability, max_windows=max_windows),
        )
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    return timing


def _measure(bundle_dir: Path, plan: Any, out_dir: Path, existed: bool) -> Any:
    """Run the plan under a progress bar; Ctrl-C before the first configuration removes the
    report folder this run made and exits 130."""
    from edgekit.toolkit.bench.engine import run_bench

    progress: RichProgress | None = None
    try:
        progress = RichProgress()
        run = run_bench(bundle_dir, plan, cast("Progress", progress))  # drawn the same way
    except KeyboardInterrupt:  # before the first configuration: nothing to keep
        if progress is not None:
            progress.stop()
        interrupted_with_nothing(out_dir, existed)
    finally:
        if progress is not None:
            progress.stop()
    return run


def _print_run(
    run: Any, doc: dict[str, Any], paths: dict[str, Path], saved: list[str], target: str
) -> None:
    out.print(results_table(doc))
    costs = cost_table(doc)
    if costs is not None:
        out.print(costs)
    for s in run.skipped:
        out.print(f"[yellow]skipped[/] {s['what']}: {s['reason']}", highlight=False)
    env = doc["environment"]
    out.print(
        f"[dim]{env['cpu_model']} · {env['usable_cores']} usable cores · onnxruntime {env['onnxruntime']}"
        f" · load {env['load_average']}[/]"
    )
    if saved:
        out.print(f"stored in the manifest under target [bold]{target}[/] for: {', '.join(saved)}")
    out.print(f"report: {paths['html']}  ·  {paths['json']}  ·  {paths['csv']}")


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def interrupted_with_nothing(out_dir: Path, existed: bool) -> NoReturn:
    """Ctrl-C before anything was measured: the report folder made for this run goes again."""
    if not existed:
        with contextlib.suppress(OSError):
            out_dir.rmdir()  # only when empty: never anything but what this run made
    err.print("[yellow]interrupted[/] before any configuration was measured: nothing written")
    raise typer.Exit(EXIT_INTERRUPTED)


def keep_interrupted(run: Any, out_dir: Path, existed: bool, as_json: bool) -> NoReturn:
    """Ctrl-C after some configurations: they are written (marked incomplete), the manifest is
    left as it was, and the command exits 130."""
    from edgekit.toolkit.bench.store import write_results

    if not run.records:
        interrupted_with_nothing(out_dir, existed)
    paths = write_results(run, out_dir, Bundle.open(run.bundle_path).manifest)
    doc = run.to_dict()
    if as_json:
        print_json({**doc, "ok": False, "outputs": {k: str(v) for k, v in paths.items()}})
    else:
        out.print(results_table(doc))
    err.print(
        f"[yellow]interrupted[/] during {run.interrupted}: kept the {len(run.records)} of "
        f"{run.planned} configurations measured before it in {paths['json']} and "
        f"{paths['html']} (marked incomplete); the manifest was not changed",
        highlight=False,
    )
    raise typer.Exit(EXIT_INTERRUPTED)


@bench_app.command("compare")
@handle_errors
def bench_compare(
    old: Path = typer.Argument(..., help="Earlier results.json (or `edgekit bench --json` output)."),
    new: Path = typer.Argument(..., help="Later results.json."),
    threshold: float = typer.Option(0.10, "--threshold", help="Regression when NEW is worse than OLD by more than this share."),
    as_json: bool = JSON_OPTION,
) -> None:  # fmt: skip
    """Ratio NEW/OLD per configuration; exit 1 when any regressed beyond --threshold."""
    from edgekit.toolkit.bench.compare import compare_runs
    from edgekit.toolkit.bench.store import load_run

    result = compare_runs(load_run(old), load_run(new), threshold)
    if not result["rows"]:
        raise BadInputError(
            "the two runs have no configuration in common (scenario, variant, provider, threads, batch)",
            hint="compare runs of the same bundle and options",
            details=result,
        )
    if as_json:
        print_json({"ok": result["passed"], **result})
    else:
        table = compact_table(f"bench compare (threshold {threshold:.0%})")
        for c in ("configuration", "metric", "old", "new", "new/old", "verdict"):
            table.add_column(c, justify="right" if c in ("old", "new", "new/old") else "left")
        for r in result["rows"]:
            verdict = "[red]REGRESSION[/]" if r["regression"] else "[green]ok[/]"
            if r["notes"]:
                verdict += f" [dim]({'; '.join(r['notes'])})[/]"
            who = r["variant"] if r["system"] == "onnxruntime" else r["system"]
            prov = r["provider"].removesuffix("ExecutionProvider").lower()
            table.add_row(
                f"{r['scenario']} {who} {prov} t{r['threads']} b{r['batch']}",
                f"{r['metric']} {r['unit']} {'↓' if r['better'] == 'lower' else '↑'}",
                f"{r['old']:.4g}",
                f"{r['new']:.4g}",
                f"{r['ratio']:.3f}" if r["ratio"] is not None else "–",
                verdict,
            )
        out.print(table)
        for label, items in (
            ("only in OLD", result["only_old"]),
            ("only in NEW", result["only_new"]),
        ):
            if items:
                out.print(f"[yellow]{label}:[/] {len(items)} configuration(s)")
        out.print(
            f"[bold red]{result['regressions']} regression(s)[/]"
            if result["regressions"]
            else "[green]no regression[/]"
        )
    if result["regressions"]:
        raise typer.Exit(1)
