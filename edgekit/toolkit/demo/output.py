"""The demo's output folder: new, empty, or one an earlier `edgekit demo` made.

The demo writes many things into -o (data, bundles, reports, a build folder, run folders); each
of those replaces only its own earlier output, and the folder itself is claimed here first, so a
folder of the user's files (or the current folder) is refused before anything runs.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent import owned

DEMO_KIND = "demo"
# What the stages make at the top of -o; the marker lists them before they exist, so a demo
# stopped half-way still leaves a folder the next demo may reuse.
MADE = (
    ".edgekit", "breast-cancer.yaml", "build", "bundles", "data", "digits-cnn.yaml", "fleet",
    "greengrass-build", "keys", "pipeline.yaml", "reports", "simulate",
)  # fmt: skip


def claim(output: Path) -> None:
    """Refuse a folder the demo did not make (exit 2, nothing touched), then mark it ours."""
    owned.check_replace(output, [DEMO_KIND])
    output.mkdir(parents=True, exist_ok=True)
    owned.write_marker(output, DEMO_KIND, also=MADE)


def seal(output: Path) -> None:
    """After the stages: the marker lists whatever the demo made."""
    if output.is_dir():
        owned.write_marker(output, DEMO_KIND, also=MADE)
