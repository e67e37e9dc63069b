"""`edgekit tune`: pick the variant, provider and session options for a hardware target."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edge_agent import atomic, owned
from edge_agent.errors import BadInputError, EdgekitError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json
from edgekit.toolkit.cli.targets_cmd import TARGETS_DIR_OPTION
from edgekit.toolkit.present.format import fmt_mapping
from edgekit.toolkit.present.tune import front_table, gate_table
from edgekit.toolkit.tune.tuner import TuneRequest, TuneResult, manifest_left, tune

TUNE_KIND = "edgekit-tune"  # in the -o file, so a later run knows it may replace it


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
    or ./tune-<bundle>-<target>.incomplete.json), no selection is recorded, exit 130."""
    from edge_agent.contracts.bundle import Bundle

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
        f"(marked incomplete); {manifest_left(result.notes)}",
        highlight=False,
    )
    raise typer.Exit(EXIT_INTERRUPTED)


@app.command("tune")
@handle_errors
def tune_command(
    bundle_dir: Path = typer.Argument(..., help="Bundle folder."),
    target: str = options.target("local", "the one to tune for, or local (this machine)."),
    latency_bound: str = options.latency_bound("candidates over it lose."),
    latency_budget: str = options.alias("--latency-budget", "--latency-bound", default=None),
    max_drop: float = typer.Option(
        0.01, "--max-drop", help="Largest allowed drop of the main metric vs fp32 (0.01 = 1 point)."
    ),
    objective: str = typer.Option("latency", "--objective", help="latency | throughput | size"),
    max_trials: int = typer.Option(None, "--max-trials", help="Most measurements to run."),
    time_budget: float = options.duration(None, "to measure at most", "--time-budget"),
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
    output: Path = options.output("the tune result as JSON (beside the manifest entry)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Choose the best variant and session options for a target; record it in the manifest."""
    fleet = from_fleet if from_fleet is None or "://" in from_fleet else Path(from_fleet)
    _check_limits(max_trials, time_budget, output, bundle_dir, fleet)
    request = TuneRequest(
        bundle_dir=bundle_dir,
        target=target,
        objective=objective,
        latency_budget=options.merged(
            latency_bound, latency_budget, "--latency-budget", "--latency-bound"
        ),
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
    result = _tune_with_progress(request, as_json)
    payload = result.to_dict()
    if result.interrupted:
        _keep_interrupted(result, payload, bundle_dir, output, as_json)
    if output is not None:
        atomic.write_json(output, {"kind": TUNE_KIND, **payload})
    if as_json:
        print_json({"ok": True, "written": request.write, **payload})
        return
    _print_result(result, request.write, bundle_dir, target)


def _check_limits(
    max_trials: int | None,
    time_budget: float | None,
    output: Path | None,
    bundle_dir: Path,
    fleet: str | Path | None,
) -> None:
    """Refuse limits that cannot hold and an -o that is not ours to write, before measuring."""
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


def _tune_with_progress(request: TuneRequest, as_json: bool) -> TuneResult:
    """Run the search under a progress bar on stderr (none with --json); Ctrl-C before the
    first measurement exits 130 with nothing written."""
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
    return result


def _print_result(result: TuneResult, written: bool, bundle_dir: Path, target: str) -> None:
    out.print(gate_table(result))
    out.print(front_table(result))
    sel = result.selected.candidate
    out.print(
        f"[bold]selected for {result.target.name}[/]: {sel.variant} on "
        f"{sel.provider}, {fmt_mapping(sel.options.to_manifest())}"
    )
    out.print(f"[bold]why[/]: {result.reason}")
    where = result.measured_on or "nowhere (ranked by the profile)"
    out.print(f"[bold]measured on[/]: {where}")
    for g in result.groups:  # --from-fleet: every hardware group's own choice
        out.print(f"[bold]group[/] {g['reason']}", highlight=False)
    if result.search:
        s = result.search_summary()
        assert s is not None  # there is a search
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
    if written:
        out.print(f"[green]✓[/] recorded in {bundle_dir}/manifest.json under selection.{target}")
