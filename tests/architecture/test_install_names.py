"""The wheel installs exactly two top-level names, `edgekit` and `edge_agent` (issue 16, "Safer
names on install"): generic ones such as `export` or `toolkit` would shadow, or be shadowed by, a
user's own modules. Read from pyproject.toml's package discovery, as setuptools runs it, so no
wheel is built here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools import find_namespace_packages, find_packages

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # tomllib is 3.11+, the project supports 3.10


def _table(name: str) -> str:
    """The body of one [table] of pyproject.toml."""
    match = re.search(rf"^\[{re.escape(name)}\]\s*$(.*?)(?=^\[|\Z)", PYPROJECT, re.M | re.S)
    assert match, f"pyproject.toml has no [{name}]"
    return match.group(1)


def _strings(table: str, key: str) -> list[str]:
    match = re.search(rf"^{key}\s*=\s*\[([^\]]*)\]", table, re.M)
    return re.findall(r'"([^"]+)"', match.group(1)) if match else []


def discovered() -> list[str]:
    """What `[tool.setuptools.packages.find]` puts in the wheel (namespaces on by default)."""
    table = _table("tool.setuptools.packages.find")
    include = _strings(table, "include") or ["*"]
    exclude = _strings(table, "exclude")
    namespaces = not re.search(r"^namespaces\s*=\s*false", table, re.M)
    finder = find_namespace_packages if namespaces else find_packages
    where = _strings(table, "where") or ["."]
    return sorted(finder(where=str(ROOT / where[0]), include=include, exclude=exclude))


def test_the_wheel_has_exactly_two_top_level_names() -> None:
    packages = discovered()
    assert {name.split(".")[0] for name in packages} == {"edgekit", "edge_agent"}, packages
    assert {"edgekit.export", "edgekit.toolkit", "edgekit.toolkit.cli"} <= set(packages)


def test_no_generic_package_is_left_at_the_root() -> None:
    """The repo root on sys.path must import what the wheel installs: no folder named toolkit or
    export beside `edgekit/` (a module reachable under two names loads twice)."""
    for name in ("toolkit", "export"):
        assert not (ROOT / name).exists(), f"{name}/ at the repository root: move it under edgekit/"
    assert (ROOT / "edgekit" / "__init__.py").is_file()


def test_edgekit_init_imports_nothing() -> None:
    """`import edgekit.export` must not pull in the toolkit (the layers hold on install too)."""
    source = (ROOT / "edgekit" / "__init__.py").read_text()
    assert not re.search(r"^\s*(import|from)\s", source, re.M), source


@pytest.mark.parametrize(
    "line", re.findall(r'^[\w-]+\s*=\s*"([^"]+)"', _table("project.scripts"), re.M)
)
def test_entry_points_name_modules_the_wheel_ships(line: str) -> None:
    module, _, function = line.partition(":")
    assert module.split(".")[0] in {"edgekit", "edge_agent"}, line
    assert module.rsplit(".", 1)[0] in discovered() or module in discovered(), line
    path = ROOT / module.replace(".", "/")
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert re.search(rf"^def {function}\(", source.read_text(), re.M), line


def test_package_data_keys_are_shipped_packages() -> None:
    keys = re.findall(r'^"?([\w.]+)"?\s*=', _table("tool.setuptools.package-data"), re.M)
    assert keys, "no package data"
    missing = [key for key in keys if key not in discovered()]
    assert not missing, f"package-data for packages the wheel does not ship: {missing}"


def test_a_users_own_modules_and_ours_do_not_shadow_each_other(tmp_path: Path) -> None:
    """A project with its own `toolkit.py` and `export.py` (run from its folder, first on
    sys.path) still gets edgekit's CLI, and its own modules stay its own."""
    for name in ("toolkit", "export"):
        (tmp_path / f"{name}.py").write_text("MINE = True\n")
    code = (
        "import edgekit.toolkit.cli, edgekit.export.builder, toolkit, export;"
        "assert toolkit.MINE and export.MINE, (toolkit, export);"
        "assert edgekit.toolkit.cli.main and edgekit.export.builder.export_bundle;"
        "print(edgekit.toolkit.cli.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(done.stdout.strip()).is_relative_to(ROOT / "edgekit"), done.stdout
