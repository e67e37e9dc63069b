"""Every command's tables fit an 80-column terminal: names shorten in the middle or wrap (never an
end cut that makes two names look alike), no raw dicts, one shape notation (`[batch, 13]`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from edgekit.toolkit.cli import app, common
from edgekit.toolkit.present.format import (
    fmt_mapping,
    fmt_shape,
    name_column,
    shorten_end,
    shorten_middle,
)

runner = CliRunner()
RAW_DICT = re.compile(r"\{'[^']*': ")
RAW_SHAPE = re.compile(r"\[None,|\['")
# A line of prose ("why: ...", "report: ...") is left for the terminal to wrap at words.
PROSE = re.compile(r"^(hint|error|[a-z][\w ]*[\w\]]): ")


@pytest.fixture
def width_80():
    """The CLI's console renders at 80 columns (an 80-column terminal)."""
    saved = common.out._width
    common.out.width = 80
    yield
    common.out._width = saved


def is_prose(line: str) -> bool:
    """A sentence, not a table row: rows carry box rules or pad their cells with spaces."""
    return bool(PROSE.match(line)) or not (set(line) & set("│┃━─") or "  " in line.strip())


def check_fits(output: str, *skip: str) -> None:
    lines = [line for line in output.splitlines() if not any(s in line for s in skip)]
    wide = [line for line in lines if len(line) > 80 and not is_prose(line)]
    assert not wide, "\n".join(wide)
    assert not RAW_DICT.search(output), output
    assert not RAW_SHAPE.search(output), output
    assert "None" not in output, output


def cli(*args: object) -> str:
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_shorten_middle_keeps_names_apart():
    names = [f"int8-dynamic-per-channel-exclude{i}" for i in range(12)]
    short = [shorten_middle(n, 20) for n in names]
    assert all(len(s) == 20 and "…" in s for s in short)
    assert len(set(short)) == len(names)  # an end cut would give one `int8-dynamic-per-ch…`
    assert shorten_middle("fp32") == "fp32"


def test_a_package_reason_is_cut_at_its_end_not_in_its_middle():
    """A middle cut joined two halves of tune's reason into a sentence that said fp32 was
    slower than fp32 (`fp32, 1…n this CPU (1.3× slower than fp32)`)."""
    from edgekit.toolkit.present.stages import stage_view

    reason = (
        "tune's selection for local: fp32, 1 thread: the fastest on this CPU; int8-dynamic "
        "measured slower on this machine (1.3× slower than fp32)"
    )
    plan = {"platform": "linux/amd64", "target": "local", "variant": "fp32", "findings": []}
    result = {"component": "c", "version": "1.0.0", "plans": [{**plan, "reason": reason}]}
    console = Console(width=200, record=True)
    for part in stage_view("package", result):
        console.print(part)
    text = console.export_text()
    assert reason[:80] in text, text
    assert shorten_end(reason, 30) == reason[:29] + "…"
    assert shorten_end("short") == "short"


def test_one_shape_notation():
    assert fmt_shape([None, 13]) == "[batch, 13]"
    assert fmt_shape(["batch", 20]) == "[batch, 20]"
    assert fmt_shape(["batch", 1, None, 8]) == "[batch, 1, ?, 8]"
    assert fmt_mapping({"intra_op_num_threads": 4}) == "intra_op_num_threads=4"
    assert fmt_mapping({}) == "-"


def test_a_squeezed_name_column_never_cuts_at_the_end():
    table = Table()
    name_column(table, "variant")
    table.add_column("notes")
    for i in (2, 3):
        table.add_row(f"int8-dynamic-exclude{i}", "x" * 200)
    console = Console(width=40, record=True)
    console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 40
    first_column = [line.split("│")[1] for line in text.splitlines() if line.startswith("│")]
    assert not any("…" in cell for cell in first_column), text
    assert "ude2" in text and "ude3" in text, text


def test_inspect_fits_80_columns(
    width_80, tabular_bundle: Path, cnn_bundle: Path, regression_bundle
):
    for bundle in (tabular_bundle, cnn_bundle, regression_bundle):
        out = cli("inspect", bundle)
        check_fits(out)
    assert "[batch, 1, 8, 8]" in cli("inspect", cnn_bundle)
    assert "[batch, 10]" in cli("inspect", regression_bundle)


def test_export_quantize_evaluate_bench_fit_80_columns(
    width_80, tmp_path: Path, regression_data: Path, cnn_bundle: Path, digits_data, copy_bundle
):
    factories = Path(__file__).parents[2] / "factories.py"
    bundle = tmp_path / "ridge"
    out = cli(
        "export",
        f"{factories}:diabetes_ridge",
        "--data",
        regression_data,
        "--target-column",
        "target",
        "-o",
        bundle,
    )
    check_fits(out, str(tmp_path))
    cnn = copy_bundle(cnn_bundle)
    check_fits(cli("quantize", cnn, "--method", "dynamic"), str(tmp_path))
    check_fits(
        cli("evaluate", cnn, "--data", digits_data, "--target-column", "target"), str(tmp_path)
    )
    check_fits(
        cli(
            "bench",
            "run",
            cnn,
            "--iterations",
            "20",
            "--no-save",
            "--no-native",
            "-o",
            tmp_path / "r",
        ),
        str(tmp_path),
    )
    tuned = cli("tune", cnn, "--target", "local", "--quick", "--no-create", "--max-trials", "3")
    check_fits(tuned, str(tmp_path))
    shown = cli("inspect", cnn)  # now with the selection and its session options
    assert "selection per target" in shown
    check_fits(shown, str(tmp_path))
    packaged = cli(
        "package",
        cnn,
        "--name",
        "com.example.AVeryLongComponentName",
        "--version",
        "1.0.0",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/aarch64",
        "-o",
        tmp_path / "gg",
    )
    check_fits(packaged, str(tmp_path))
    plans = packaged.split("artifacts")[0].splitlines()
    why = next(line.index("why") for line in plans if line.startswith("platform"))
    cut = [line for line in plans if "…" in line[:why]]  # no name or setting cut short
    assert not cut, packaged


def test_targets_and_probe_fit_80_columns(width_80):
    for args in (["targets"], ["targets", "rpi4"], ["probe"]):
        check_fits(cli(*args))
