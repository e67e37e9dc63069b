"""`edgekit run PIPELINE.yaml`: the whole path from one file, with a cache per stage."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent.errors import CheckFailedError, EdgekitError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json
from edgekit.toolkit.present.pipeline import plan_table, progress_printer


@app.command("run")
@handle_errors
def run_command(
    pipeline: Path = typer.Argument(..., help="The pipeline file (see `edgekit init`)."),
    rerun: list[str] = typer.Option(
        [], "--rerun", help="Rerun this stage (and the ones after it) even when cached; `all`."
    ),
    force: list[str] = options.alias("--force", "--rerun", default=[]),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and which stages the cache would skip."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a pipeline file: stages in order, unchanged ones from the cache, every run recorded."""
    force = options.merged(rerun, force, "--force", "--rerun")
    from edgekit.toolkit.pipeline import spec as spec_mod
    from edgekit.toolkit.pipeline.runner import make_plan, run_pipeline
    from edgekit.toolkit.pipeline.stages import Runtime
    from edgekit.toolkit.pipeline.store import RunStore

    spec = spec_mod.load(pipeline)
    console = err if as_json else out
    if dry_run:
        store = RunStore(spec.store) if spec.store.is_file() else None
        try:
            plan = make_plan(spec, Runtime(store=store), force)
        finally:
            if store:
                store.close()
        if as_json:
            print_json({"ok": True, "dry_run": True, "plan": [p.to_dict() for p in plan]})
        else:
            out.print(plan_table(plan, f"plan for {spec.path.name} (dry run: nothing runs)"))
            skip = [p.name for p in plan if p.action == "cached"]
            out.print(
                f"the cache would skip {len(skip)} of {len(plan)} stages: {', '.join(skip) or 'none'}"
            )
        return
    on_event, say = progress_printer(console)
    try:
        report = run_pipeline(spec, force=force, on_event=on_event, say=say)
    except EdgekitError:
        raise
    except Exception as exc:  # the user's train step (or a bug) raised: recorded with the run
        raise CheckFailedError(
            f"the run failed: {type(exc).__name__}: {exc}",
            hint=f"the traceback is in the run store: edgekit runs list --store {spec.store}",
        ) from exc
    if as_json:
        print_json(report.to_dict())
        return
    comp = report.summary.get("component") or {}
    console.print(
        f"[green]✓ run {report.run_id}[/] {len(report.ran)} ran, {len(report.cached)} cached, "
        f"{sum(report.timings.values()):.1f} s"
        + (f"; component {comp.get('name')} {comp.get('version')}" if comp else "")
    )
    for name, path in report.outputs.items():
        console.print(f"  {name}: {path}")
    console.print(f"  record: edgekit runs show {report.run_id} --store {spec.store}")
