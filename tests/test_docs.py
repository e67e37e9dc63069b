"""The README is a front page (at most 250 lines, the two quickstart commands first) and the
manual in docs/ builds as a site with mkdocs --strict: every relative link and anchor resolves,
and nothing points outside the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
QUICKSTART = [
    "bash scripts/setup.sh && .venv/bin/edgekit demo",
    "bash scripts/setup.sh && bash scripts/test.sh",
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    first_block = text.split("```")[1]
    for command in QUICKSTART:
        assert command in first_block, command
    assert text.index("```") < text.index("\n## ", text.index("## Quickstart") + 1)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_no_reference_outside_the_repository(page):
    text = page.read_text()
    assert "../shared" not in text and "/work/" not in text
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.name}: {target} is outside the repository"
        assert path.exists(), f"{page.name}: {target} does not exist"


def test_license_matches_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    license_id = re.search(r'^license = "([^"]+)"', pyproject, re.M).group(1)
    text = (ROOT / "LICENSE").read_text()
    assert license_id == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_every_docs_page_is_in_the_site():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = config.get("nav")
    if nav is not None:  # an explicit nav must list every page others add
        listed = set(re.findall(r"[\w./-]+\.md", str(nav)))
        missing = {p.name for p in (ROOT / "docs").glob("*.md")} - listed
        assert not missing, f"mkdocs.yml nav lacks {sorted(missing)}"


def test_the_site_builds_strict_with_its_links_checked(tmp_path):
    """mkdocs --strict fails on a broken relative link, a missing anchor or a page left out."""
    assert shutil.which("mkdocs", path=str(Path(sys.executable).parent)), "pip install -e .[dev]"
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
    assert (tmp_path / "site" / "benchmarks" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path):
    """The check above can fail: the same build on a copy with one dead link refuses."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "docs" / "index.md").write_text("# x\n\n[gone](no-such-page.md)\n")
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0 and "no-such-page.md" in res.stdout + res.stderr


def _readme_commands() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("edgekit "):
                lines.append(line)
    return lines


@pytest.mark.parametrize("line", _readme_commands())
def test_every_readme_command_parses_with_todays_options(line):
    """The tour's commands name options the CLI takes (parsed by the CLI, not run)."""
    import shlex

    import typer

    from edgekit.toolkit.cli import app

    root = typer.main.get_command(app)
    cmd, ctx = root, root.make_context("edgekit", shlex.split(line)[1:])
    while hasattr(cmd, "resolve_command") and (ctx._protected_args + ctx.args):
        name, cmd, rest = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = cmd.make_context(name, rest, parent=ctx)
    runs = not hasattr(cmd, "resolve_command") or cmd.invoke_without_command
    assert runs, f"{line}: names no command"
