"""Demo stage: tune both demo models for this machine (measured) and for a Raspberry Pi 4
class device (ranked by its profile: nothing can be measured for ARM here)."""

from __future__ import annotations

from toolkit.demo import DemoContext, stage
from toolkit.present.tune import front_table
from toolkit.tune.tuner import TuneRequest, tune

OTHER_TARGET = "rpi4"


@stage(50, "tune")
def tune_stage(ctx: DemoContext) -> None:
    ctx.results["tune"] = {}
    for key, path in ctx.bundles.items():
        ctx.results["tune"][key] = {}
        for target in ("local", OTHER_TARGET):
            result = tune(
                TuneRequest(
                    path,
                    target,
                    quick=ctx.quick,
                    max_trials=12 if ctx.quick else None,
                    command=f"edgekit tune {path} --target {target}"
                    + (" --quick --max-trials 12" if ctx.quick else ""),
                )
            )
            ctx.console.print(front_table(result))
            ctx.console.print(f"  [bold]{key} → {target}[/]: {result.reason}", highlight=False)
            for note in result.notes:
                ctx.console.print(f"  [yellow]note[/]: {note}", highlight=False)
            sel = result.selected.candidate
            ctx.results["tune"][key][target] = {
                "variant": sel.variant,
                "provider": sel.provider,
                "session_options": sel.options.to_manifest(),
                "mode": result.mode,
                "measured_on": result.measured_on,
                "reason": result.reason,
                "trials": result.search.n_trials if result.search else 0,
            }
