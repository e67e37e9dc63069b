"""`edgekit simulate bench` around the agent's bench command: which variants the component ships
(so a request for one it does not ship is refused before any device starts), and what the
devices' replies amount to (devices that measured something, refusals, silences)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.simulator.catalog import Catalog
from edgekit.toolkit.simulator.runner import pick_component

MODEL_ARCHIVES = "model-*.zip"


def shipped_variants(component_dir: Path, name: str | None = None) -> dict[str, list[str]]:
    """Variants in each model archive of the component's latest version: {archive: [variant]}.
    Empty when the component ships no edgekit model archive (a hand-written component)."""
    catalog = Catalog()
    catalog.add_build_dir(component_dir)
    component = pick_component(catalog, name)
    version = catalog.latest(component).recipe.version
    folder = Path(component_dir) / "artifacts" / component / version
    out: dict[str, list[str]] = {}
    for archive in sorted(folder.glob(MODEL_ARCHIVES)):
        try:
            with zipfile.ZipFile(archive) as zf:
                manifest = json.loads(zf.read("manifest.json"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            continue  # not readable here: the device's own digest check will say so
        out[archive.name] = sorted(
            n for n, v in (manifest.get("variants") or {}).items() if not v.get("rejected")
        )
    return out


def check_requested(wanted: list[str] | None, shipped: dict[str, list[str]]) -> None:
    """Refuse variants that no model archive of the component ships (exit 2, before deploying)."""
    if not wanted or not shipped:
        return
    have = sorted({v for names in shipped.values() for v in names})
    unknown = [v for v in wanted if v not in have]
    if unknown:
        raise BadInputError(
            f"`variants` {','.join(unknown)}: not shipped by the component (it ships {have})",
            hint="package the candidates with `edgekit package --bench-variants all` "
            "(or name them), or choose from the shipped ones",
        )


@dataclass
class BenchOutcome:
    """Per device: measured (at least one variant has figures), refused (the agent answered
    with an error), silent (no reply within the time), unmeasured (answered, every variant
    skipped or failed)."""

    measured: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    silent: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)  # answered, but without figures

    @property
    def ok(self) -> bool:
        return not self.refused and not self.silent


def outcome(replies: dict[str, Any], things: list[str]) -> BenchOutcome:
    res = BenchOutcome()
    for thing in things:
        msg = replies.get(thing)
        body = msg.get("body", msg) if isinstance(msg, dict) else None
        if not isinstance(body, dict):
            res.silent.append(thing)
        elif body.get("error"):
            res.refused[thing] = str(body["error"])
        elif any(
            isinstance(r, dict) and isinstance(r.get("latency_ms"), dict)
            for r in (body.get("results") or {}).values()
        ):
            res.measured.append(thing)
        else:
            res.unmeasured.append(thing)
    return res
