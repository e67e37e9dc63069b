"""The layers are enforced, not hoped: import-linter's contracts (pyproject.toml) hold, and each
contract would catch the import it exists for.

edge_agent <- export <- toolkit; edgekit.toolkit.cli is reached only through the entry point; no module
imports a sibling that imports it back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _lint(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, "--no-cache", "--no-logo", "--config", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_contract_is_kept() -> None:
    done = _lint(ROOT / "pyproject.toml", ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_contracts_cover_layers_device_cli_and_circles() -> None:
    text = (ROOT / "pyproject.toml").read_text()  # tomllib is 3.11+, the project supports 3.10
    ids = set(re.findall(r'^id = "([^"]+)"', text, re.MULTILINE))
    assert ids >= {"layers", "device", "cli-on-top", "no-circles"}


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the demo printing through a CLI module: what the presentation package replaced
        (
            "edgekit/toolkit/demo/_probe.py",
            "from edgekit.toolkit.cli.bench_cmd import bench_run",
            "CLI modules",
        ),
        # the device package reaching up into the workstation side
        ("edge_agent/_probe.py", "import edgekit.toolkit.fleet", "device package"),
        # export reaching up into toolkit
        ("edgekit/export/_probe.py", "import edgekit.toolkit.quantize", "higher layer"),
        # a circle: registry importing a method that imports the registry
        (
            "edgekit/toolkit/quantize/_probe.py",
            "from edgekit.toolkit.quantize import registry",
            "no import circles",
        ),
    ],
)
def test_a_violation_breaks_its_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    """A copy of the packages with one bad import added: the linter must name the contract."""
    for pkg in ("edge_agent", "edgekit"):
        shutil.copytree(
            ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.onnx")
        )
    (tmp_path / module).write_text(line + "\n")
    if broken == "no import circles":  # make the registry import the probe back
        reg = tmp_path / "edgekit/toolkit/quantize/registry.py"
        reg.write_text(reg.read_text() + "\nfrom edgekit.toolkit.quantize import _probe  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run(
        [LINT, "--no-cache", "--no-logo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    broken_lines = [ln for ln in done.stdout.splitlines() if "BROKEN" in ln]
    assert any(broken in ln for ln in broken_lines), done.stdout


@pytest.mark.slow
def test_types_check(tmp_path: Path) -> None:
    """mypy with the project's configuration (strict on edgekit/export/ and edge_agent/, less the rooms
    pyproject names; basic elsewhere) finds nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
