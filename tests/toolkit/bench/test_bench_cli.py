"""`edgekit bench` as written in the contract: both command forms, the report, compare."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.bundle import Bundle
from toolkit.cli import app

runner = CliRunner()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.images = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img" and dict(attrs).get("src", "").startswith("data:image/png;base64,"):
            self.images += 1

    def handle_data(self, data):
        self.text.append(data)


def _bench(args: list[str]):
    return runner.invoke(app, ["bench", *args])


def test_bench_writes_report_json_csv_and_manifest(
    copy_bundle, regression_bundle, tmp_path: Path
) -> None:
    path = copy_bundle(regression_bundle)
    bundle = Bundle.open(path)
    bundle.add_variant("fp32-copy", bundle.variant_path("fp32"), {"precision": "fp32"})
    bundle.variants["fp32-copy"]["evaluation"] = {
        "metrics": {"r2": 0.5},
        "gate": {"metric": "r2", "value": 0.5},
    }
    bundle.variants["fp32"]["evaluation"] = {
        "metrics": {"r2": 0.52},
        "gate": {"metric": "r2", "reference": True},
    }
    bundle.save()
    out = tmp_path / "rep"
    res = _bench([str(path), "--duration", "0.1", "--batch", "1,4", "--price-per-hour", "0.1",
                  "--predictions-per-user", "3000", "--json", "-o", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["saved_to_manifest"] == ["fp32", "fp32-copy"]
    assert {r["variant"] for r in doc["records"]} >= {"fp32", "fp32-copy"}
    assert all(r["cost"]["cost_per_million"] > 0 for r in doc["records"])
    assert all(r["cost"]["cost_per_user_month"] > 0 for r in doc["records"])

    parser = _Text()
    parser.feed((out / "report.html").read_text("utf-8"))
    text = " ".join(parser.text)
    assert "fp32" in text and "fp32-copy" in text and "native:sklearn" in text
    assert "Pareto" in text and parser.images >= 3  # latency, throughput vs batch, accuracy
    assert "script" not in parser.tags and "link" not in parser.tags  # self-contained
    assert (out / "results.csv").read_text().count("\n") == len(doc["records"]) + 1
    assert json.loads((out / "results.json").read_text())["kind"] == "edgekit-bench"
    assert Bundle.open(path).variants["fp32-copy"]["benchmarks"]["local"]["scenarios"][
        "single-stream"
    ]


def test_bench_run_form_and_table_output(regression_bundle, tmp_path: Path) -> None:
    res = _bench(["run", str(regression_bundle), "--iterations", "50", "--no-native", "--no-save",
                  "-o", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "fp32" in res.stdout and "report:" in res.stdout


def test_bench_bad_options_exit_2(regression_bundle, tmp_path: Path) -> None:
    for args in (
        ["--scenario", "server"],
        ["--scenario", "server", "--latency-bound", "p99<3"],
        ["--threads", "one"],
        ["--duration", "1", "--iterations", "5"],
        ["--scenario", "bogus"],
    ):
        res = _bench([str(regression_bundle), "--no-save", "-o", str(tmp_path / "x"), *args])
        assert res.exit_code == 2, (args, res.output)
    assert _bench([str(tmp_path / "missing")]).exit_code == 2


def _slower(doc: dict, factor: float) -> dict:
    new = copy.deepcopy(doc)
    for r in new["records"]:
        r["headline"]["value"] *= factor
    return new


def test_compare_flags_regressions_and_exits_1(regression_bundle, tmp_path: Path) -> None:
    res = _bench(
        [
            str(regression_bundle),
            "--duration",
            "0.1",
            "--no-save",
            "--json",
            "-o",
            str(tmp_path / "a"),
        ]
    )
    assert res.exit_code == 0, res.output
    old = tmp_path / "a" / "results.json"
    doc = json.loads(old.read_text())
    same, slow, fast = (tmp_path / f"{n}.json" for n in ("same", "slow", "fast"))
    same.write_text(json.dumps(_slower(doc, 1.05)))
    slow.write_text(json.dumps(_slower(doc, 1.5)))
    fast.write_text(json.dumps(_slower(doc, 0.5)))

    ok = runner.invoke(app, ["bench", "compare", str(old), str(same), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["regressions"] == 0

    bad = runner.invoke(app, ["bench", "compare", str(old), str(slow), "--json"])
    assert bad.exit_code == 1
    result = json.loads(bad.stdout)
    assert result["regressions"] == len(doc["records"])
    assert all(r["ratio"] == pytest.approx(1.5) for r in result["rows"])

    assert (
        runner.invoke(
            app, ["bench", "compare", str(old), str(slow), "--threshold", "0.6"]
        ).exit_code
        == 0
    )
    assert runner.invoke(app, ["bench", "compare", str(old), str(fast)]).exit_code == 0
    table = runner.invoke(app, ["bench", "compare", str(old), str(slow)])
    assert table.exit_code == 1 and "REGRESSION" in table.stdout

    not_bench = tmp_path / "other.json"
    not_bench.write_text("{}")
    assert runner.invoke(app, ["bench", "compare", str(not_bench), str(old)]).exit_code == 2
