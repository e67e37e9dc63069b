"""`edgekit recipe validate` agrees with the nucleus on every recipe of its own test suites.

The corpus (../shared/greengrass/conformance beside the repository, as in CI) has 105 recipes
from aws-greengrass-nucleus and aws-greengrass-component-common with the nucleus's verdict:
accept -> exit 0 (warnings allowed); reject -> exit 1 naming the rule in brackets, or exit 2
where the file does not even parse; unparseable -> exit 2 with a message, never a traceback.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from edgekit.toolkit.cli import app

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "greengrass" / "conformance"
# the nucleus's reason, where its column names none in brackets, as our error code
REASONS = {
    "nucleus/deployment__ComponentWithCircularDependency-1.0.0.yaml": {"circular-dependency"}
}

runner = CliRunner()


def _rows() -> list[dict[str, str]]:
    if not (CORPUS / "expected.csv").is_file():
        pytest.fail(f"the conformance corpus is missing: {CORPUS} (shared/ beside the clone)")
    with open(CORPUS / "expected.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _expected_codes(row: dict[str, str]) -> set[str]:
    m = re.search(r"\(([^()]*)\)\s*$", row["nucleus"])
    return {c.strip() for c in m.group(1).split(",")} if m else REASONS.get(row["file"], set())


def _parses(path: Path) -> bool:
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return False
    return True


def test_corpus_is_whole():
    rows = _rows()
    assert len(rows) == 105
    assert {r["verdict"] for r in rows} == {"accept", "reject", "unparseable"}
    assert all((CORPUS / "recipes" / r["file"]).is_file() for r in rows)


def test_every_row_agrees_with_the_nucleus(monkeypatch):
    import json

    monkeypatch.chdir(CORPUS / "recipes")  # relative paths, as a user types them
    disagreements = []
    for row in _rows():
        rel = row["file"]
        result = runner.invoke(app, ["recipe", "validate", "--json", rel])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            disagreements.append(f"{rel}: crashed: {result.exception!r}")
            continue
        code, verdict = result.exit_code, row["verdict"]
        if verdict == "accept" and code != 0:
            disagreements.append(f"{rel}: nucleus accepts, exit {code}: {result.output[-400:]}")
        elif verdict == "unparseable" and code != 2:
            disagreements.append(f"{rel}: does not parse, exit {code}")
        elif verdict == "reject":
            if code == 2 and not _parses(CORPUS / "recipes" / rel):
                continue  # refused by the nucleus for its syntax; ours is a parse error too
            if code != 1:
                disagreements.append(f"{rel}: nucleus rejects, exit {code}")
                continue
            errors = {
                p["code"] for p in json.loads(result.output)["problems"] if p["severity"] == "error"
            }
            missing = _expected_codes(row) - errors
            if missing:
                disagreements.append(f"{rel}: rejected, but not for {sorted(missing)}: {errors}")
    assert disagreements == [], "\n".join(disagreements)


@pytest.mark.parametrize(
    "rel",
    ["nucleus/componentmanager__Log-1.0.0.yaml", "nucleus/status__AppInvalidRecipe-1.0.0.yaml"],
)
def test_unparseable_recipe_is_a_clear_error_from_the_real_command(tmp_path, rel):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "edgekit"),
            "recipe",
            "validate",
            str(CORPUS / "recipes" / rel),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "neither valid JSON nor valid YAML" in proc.stderr + proc.stdout
    assert "line" in proc.stderr + proc.stdout  # where to look
