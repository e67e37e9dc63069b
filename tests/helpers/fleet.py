"""`edgekit fleet collect` as a process of its own, the way a supervisor starts one: the fleet
tests and benchmarks/fleet_scale_pg.py run collectors on a shared subscription, kill one and
start it again with the same client id."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


def start_collector(
    broker_url: str,
    store: str,
    client_id: str,
    *,
    store_option: str = "--store",
    group: str = "edgekit",
    duration_s: float | None = None,
    stderr: int | IO[Any] = subprocess.PIPE,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A collector in shared-subscription `group` writing `store` (given as `store_option`,
    --store or --db); its --json summary comes on stdout once it stops (after `duration_s`,
    or on SIGTERM). The repository's code runs: PYTHONPATH is its root."""
    duration = ["--duration", f"{duration_s:g}"] if duration_s is not None else []
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from edgekit.toolkit.cli import main; main()",
            "fleet",
            "collect",
            "--broker",
            broker_url,
            store_option,
            store,
            "--group",
            group,
            "--client-id",
            client_id,
            *duration,
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
