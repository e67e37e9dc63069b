"""The pipeline file: schema errors name the line, semantic errors too, paths resolve against
the file's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import BadInputError
from edgekit.toolkit.pipeline import spec as spec_mod

GOOD = """\
version: 1
name: wine
model:
  file: model.skops
data:
  sample: data.csv
  target_column: target
stages:
  export:
  quantize:
    methods: [auto]
  bench:
    duration_s: 0.5
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "model.skops").write_bytes(b"x")
    (tmp_path / "data.csv").write_text("a,target\n1,0\n")
    return tmp_path


def _error(folder: Path, text: str) -> str:
    with pytest.raises(BadInputError) as info:
        spec_mod.parse(text, folder / "p.yaml")
    return info.value.message


def test_good_file_resolves_paths_against_its_folder(folder: Path) -> None:
    spec = spec_mod.parse(GOOD, folder / "p.yaml")
    assert spec.data("sample") == (folder / "data.csv").resolve()
    assert spec.store == (folder / ".edgekit" / "runs.db").resolve()
    assert spec.stage_options("export") == {}
    assert spec.stage_options("tune") is None
    assert spec.line("stages", "bench", "duration_s") == 13


def test_unknown_key_is_named_with_its_line(folder: Path) -> None:
    msg = _error(folder, GOOD.replace("    duration_s: 0.5", "    duration_s: 0.5\n    duraton: 2"))
    assert "p.yaml:14: stages.bench.duraton: unknown key 'duraton'" in msg
    assert "duration_s" in msg  # the allowed keys are listed


def test_wrong_type_and_range_name_their_lines(folder: Path) -> None:
    text = GOOD.replace("methods: [auto]", "methods: auto").replace("0.5", "-1")
    msg = _error(folder, text)
    assert "p.yaml:11: stages.quantize.methods: 'auto' is not of type 'array'" in msg
    assert "p.yaml:13: stages.bench.duration_s" in msg


def test_unknown_stage_and_missing_required(folder: Path) -> None:
    msg = _error(folder, GOOD.replace("  export:\n", "  exprot:\n"))
    assert "p.yaml:9: stages.exprot: unknown key 'exprot'" in msg
    assert "'export' is a required property" in msg


def test_yaml_syntax_error_names_the_line(folder: Path) -> None:
    msg = _error(folder, GOOD.replace("  target_column: target", "  target_column: [target"))
    assert "p.yaml:" in msg and "not valid YAML" in msg


def test_missing_file_named_with_its_line(folder: Path) -> None:
    msg = _error(folder, GOOD.replace("sample: data.csv", "sample: nope.csv"))
    assert "p.yaml:6: data.sample:" in msg and "nope.csv does not exist" in msg


def test_model_source_rules(folder: Path) -> None:
    no_model = GOOD.replace("model:\n  file: model.skops\n", "")
    assert "say where the model comes from" in _error(folder, no_model)
    both = GOOD.replace(
        "  export:\n",
        "  train:\n    function: train:fit\n    data: data.csv\n    output: m.skops\n  export:\n",
    )
    assert "p.yaml:4: model.file: the model comes from the train stage" in _error(folder, both)
    no_fn = both.replace("model:\n  file: model.skops\n", "").replace(
        "    function: train:fit\n", ""
    )
    assert "exactly one of `function`" in _error(folder, no_fn)


def test_deploy_needs_a_target_and_a_package(folder: Path) -> None:
    text = GOOD + "  deploy:\n    to: greengrass\n"
    assert "deploy to greengrass needs thing" in _error(folder, text)
    text = GOOD + "  deploy:\n    to: greengrass\n    thing: t1\n"
    assert "deploy needs a package stage" in _error(folder, text)


def test_overrides_are_applied_and_change_the_digest(folder: Path) -> None:
    a = spec_mod.parse(GOOD, folder / "p.yaml")
    b = spec_mod.parse(GOOD, folder / "p.yaml", {"stages.bench.duration_s": 0.2})
    assert b.stage_options("bench") == {"duration_s": 0.2}
    assert a.digest != b.digest
    with pytest.raises(BadInputError, match="duration_s"):
        spec_mod.parse(GOOD, folder / "p.yaml", {"stages.bench.duration_s": "fast"})


def test_cli_reports_the_line_and_exit_code_2(folder: Path) -> None:
    from typer.testing import CliRunner

    from edgekit.toolkit.cli import app

    path = folder / "p.yaml"
    path.write_text(GOOD.replace("name: wine", "name: wine\nnmae: x"))
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert "p.yaml:3: nmae: unknown key 'nmae'" in result.output.replace("\n", "")


def _laughs(levels: int = 8) -> str:
    """Anchors nested `levels` deep, ten aliases each: a few lines for 10**levels strings."""
    lines = ['x0: &x0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_aliases_that_expand_past_the_cap_are_refused(folder: Path) -> None:
    """Nine lines of anchors ("billion laughs") made the line map walk 10**8 nodes: a
    MemoryError traceback, or the machine's memory (found by tryhostile)."""
    msg = _error(folder, GOOD.replace("name: wine\n", "name: wine\n" + _laughs()))
    assert "p.yaml stands for more than 100,000 values" in msg
    few = GOOD + "x: &a [1, 2]\n"  # an ordinary anchor is fine (the schema names the key)
    assert "unknown key 'x'" in _error(folder, few)


def test_yaml_nested_past_the_recursion_limit_is_refused(folder: Path) -> None:
    """A value nested 5,000 deep crashed with a RecursionError traceback (found by tryhostile)."""
    deep = GOOD.replace("name: wine", "name: " + "[" * 5000 + "]" * 5000)
    assert _error(folder, deep) == f"{folder / 'p.yaml'} is nested too deeply to read"
