"""`edgekit tune`: pick the variant, provider and session options for a hardware target."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge_agent import atomic, owned
from edge_agent.errors import BadInputError, EdgekitError
from toolkit.cli import app
from toolkit.cli.common import JSON_OPTION, err, fmt_bytes, handle_errors, out, print_json
from toolkit.cli.targets_cmd import TARGETS_DIR_OPTION
from toolkit.tune.tuner import TuneRequest, TuneResult, tune

TUNE_KIND = "edgekit-tune"  # in the -o file, so a later run knows it may replace it


def front_table(result: TuneResult) -> Table:
    measured = result.mode != "profile"
    title = f"Pareto front for {result.target.name} (accuracy, latency, size)"
    if not measured:
        title = f"ranking for {result.target.name} (accuracy, size; nothing measured)"
    t = Table(title=title)
    cols = ["", "variant", "provider", "session options", "Δ metric", "size"]
    if measured:
        pct = result.budget.percentile if result.budget else "p50"
        other = "p99" if pct != "p99" else "p50"
        cols += [f"{pct} ms", f"{other} ms", "samples/s"]
    for c in cols:
        t.add_column(c, justify="right" if c == "size" or c.endswith((" ms", "/s")) else "left")
    chosen = result.selected.candidate.key
    rows = result.front if measured else result.points
    for p in rows:
        mark = "[bold green]★[/]" if p.candidate.key == chosen else ""
        if not p.info.passed:
            mark = "[red]✗[/]"  # shown in the profile ranking, pruned by the gate
        row = [
            mark,
            p.info.label,
            p.candidate.provider.replace("ExecutionProvider", ""),
            p.candidate.options.short(),
            p.info.delta_text() or "-",
            fmt_bytes(p.info.bytes),
        ]
        if measured and p.metrics:
            lat = p.metrics["latency_ms"]
            pct = result.budget.percentile if result.budget else "p50"
            other = "p99" if pct != "p99" else "p50"
            row += [f"{lat[pct]:.3f}", f"{lat[other]:.3f}", f"{p.metrics['samples_per_s']:.0f}"]
        t.add_row(*row)
    if any(not p.info.passed for p in rows):
        t.caption = "✗ pruned by the accuracy or memory gate"
    return t


def gate_table(result: TuneResult) -> Table:
    t = Table(title="variants and the gate")
    for c in ("variant", "kind", "size", "metric", "drop", "gate"):
        t.add_column(c, justify="right" if c == "size" else "left")
    for name, i in result.variants.items():
        t.add_row(
            name,
            i.label,
            fmt_bytes(i.bytes),
            f"{i.metric}={i.value:.4g}" if i.value is not None else "-",
            i.delta_text() or "-",
            "[green]pass[/]" if i.passed else f"[red]pruned[/]: {i.pruned}",
        )
    return t


def _progress_callback(progress: Progress, task: Any):
    def on_trial(trial: Any, done: int, planned: int) -> None:
        progress.update(
            task,
            completed=done,
            total=max(planned, done),
            description=f"measuring {trial.candidate.describe()}",
        )
        if not err.is_terminal:  # no bar in a log: one line per measured configuration
            err.print(f"measured {done}/{planned}: {trial.candidate.describe()}", highlight=False)

    return on_trial


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def _keep_interrupted(
    result: TuneResult,
    payload: dict[str, Any],
    bundle_dir: Path,
    output: Path | None,
    as_json: bool,
) -> NoReturn:
    """Ctrl-C during the search: what was measured is written as JSON (marked incomplete, to -o
    or ./tune-<bundle>-<target>.incomplete.json), the manifest is left as it was, exit 130."""
    from edge_agent.bundle import Bundle

    name = Bundle.open(bundle_dir).manifest["name"]
    path = output or Path(f"tune-{name}-{result.target.name}.incomplete.json")
    payload = {"bundle": str(bundle_dir.absolute()), **payload}
    atomic.write_json(path, payload)
    if as_json:
        print_json({"ok": False, "written": False, "output": str(path), **payload})
    else:
        out.print(front_table(result))
    n = result.search.n_trials if result.search else 0
    err.print(
        f"[yellow]interrupted[/]: kept the {n} configuration(s) measured so far in {path} "
        "(marked incomplete); the manifest was not changed",
        highlight=False,
    )
    raise typer.Exit(EXIT_INTERRUPTED)


@app.command("tune")
@handle_errors
def tune_command(
    bundle_dir: Path = typer.Argument(..., help="Bundle folder."),
    target: str = typer.Option("local", "--target", "-t", help="Target profile name, or local."),
    latency_budget: str = typer.Option(
        None, "--latency-budget", help="e.g. p99=5ms: candidates over it lose."
    ),
    max_drop: float = typer.Option(
        0.01, "--max-drop", help="Largest allowed drop of the main metric vs fp32 (0.01 = 1 point)."
    ),
    objective: str = typer.Option("latency", "--objective", help="latency | throughput | size"),
    max_trials: int = typer.Option(None, "--max-trials", help="Most measurements to run."),
    time_budget: float = typer.Option(None, "--time-budget", help="Seconds of measuring at most."),
    targets_dir: Path = TARGETS_DIR_OPTION,
    from_fleet: str = typer.Option(
        None,
        "--from-fleet",
        help="Fleet store (SQLite file or postgresql:// URL) with device bench results.",
    ),
    no_create: bool = typer.Option(
        False, "--no-create", help="Do not quantize variants the target prefers but lacks."
    ),
    quick: bool = typer.Option(False, "--quick", help="Shorter measurements, fewer options."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Do not write the manifest."),
    output: Path = typer.Option(None, "-o", "--output", help="Also write the result as JSON here."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Choose the best variant and session options for a target; record it in the manifest."""
    fleet = from_fleet if from_fleet is None or "://" in from_fleet else Path(from_fleet)
    if max_trials is not None and max_trials < 1:
        raise BadInputError("--max-trials must be >= 1")
    if time_budget is not None and time_budget <= 0:
        raise BadInputError("--time-budget must be > 0 seconds")
    if output is not None and (output.is_dir() or output.parent.is_file()):
        raise BadInputError(
            f"-o {output} cannot be written as a file", hint="give a file name, e.g. tune.json"
        )
    if output is not None:
        owned.check_file(
            output,
            owned.json_kind_is(TUNE_KIND),
            "a tune result",
            [bundle_dir, fleet if isinstance(fleet, Path) else None],
        )
    request = TuneRequest(
        bundle_dir=bundle_dir,
        target=target,
        objective=objective,
        latency_budget=latency_budget,
        max_drop=max_drop,
        max_trials=max_trials,
        time_budget_s=time_budget,
        targets_dir=targets_dir,
        from_fleet=fleet,
        create_missing=not no_create,
        quick=quick,
        write=not dry_run,
        command=shlex.join(["edgekit", *sys.argv[1:]]),
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("tuning", total=None)
        try:
            result = tune(request, progress=_progress_callback(progress, task))
        except KeyboardInterrupt:  # before the first measurement: nothing to keep
            progress.stop()
            err.print(
                "[yellow]interrupted[/] before any configuration was measured: no result "
                "written, the manifest's selection not changed"
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except EdgekitError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            if details.get("result") and not as_json:
                progress.stop()
                out.print(f"[red]{exc.message}[/]")
            raise
    payload = result.to_dict()
    if result.interrupted:
        _keep_interrupted(result, payload, bundle_dir, output, as_json)
    if output is not None:
        atomic.write_json(output, {"kind": TUNE_KIND, **payload})
    if as_json:
        print_json({"ok": True, "written": request.write, **payload})
        return
    out.print(gate_table(result))
    out.print(front_table(result))
    sel = result.selected.candidate
    out.print(
        f"[bold]selected for {result.target.name}[/]: {sel.variant} on "
        f"{sel.provider}, {sel.options.to_manifest()}"
    )
    out.print(f"[bold]why[/]: {result.reason}")
    where = result.measured_on or "nowhere (ranked by the profile)"
    out.print(f"[bold]measured on[/]: {where}")
    if result.search:
        s = result.search_summary()
        out.print(
            f"search: {s['strategy']}, {s['trials']} trial(s) over a space of {s['space']}, "
            f"{s['elapsed_s']:.1f} s" + (f" — stopped: {s['stopped']}" if s["stopped"] else "")
        )
        race = s.get("race")
        if race and race.get("used"):
            out.print(
                f"final race: {len(race['entrants'])} leaders re-measured in {race['rounds']} "
                "interleaved rounds, chosen by their medians"
            )
    for note in result.notes:
        out.print(f"[yellow]note[/]: {note}")
    if request.write:
        out.print(f"[green]✓[/] recorded in {bundle_dir}/manifest.json under selection.{target}")
