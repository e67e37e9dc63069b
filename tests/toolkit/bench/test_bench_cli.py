"""`edgekit bench` as written in the contract: both command forms, the report, compare."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.cli import app

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
                  "--predictions-per-user", "3000", "--trust-code", "--json", "-o", str(out)])  # fmt: skip
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


BAD_OPTIONS = [
    (["--scenario", "server"], "needs a load"),
    (["--scenario", "server", "--latency-bound", "p99<3"], "latency bound"),
    (["--scenario", "server", "--latency-bound", "p99=-1ms"], "latency bound"),
    (["--scenario", "server", "--latency-bound", "p42=1ms"], "latency bound"),
    (["--scenario", "server", "--qps", "nan"], "--qps"),
    (["--scenario", "server", "--qps", "10", "--workers", "0"], "--workers"),
    (["--qps", "10"], "server scenario"),
    (["--latency-bound", "p99=10ms"], "server scenario"),
    (["--threads", "one"], "--threads"),
    (["--threads", ""], "--threads"),
    (["--threads", "-1"], "--threads"),
    (["--batch", "0"], "--batch"),
    (["--duration", "1", "--iterations", "5"], "not both"),
    (["--duration", "0"], "duration"),
    (["--duration", "-2"], "duration"),
    (["--duration", "nan"], "duration"),
    (["--iterations", "0"], "iterations"),
    (["--stability", "nan"], "tolerance"),
    (["--max-windows", "0"], "max_windows"),
    (["--scenario", "bogus"], "unknown scenario"),
    (["--variant", "nope"], "no variant 'nope'"),
    (["--providers", "warpdrive"], "none of the requested"),
    (["--price-per-hour", "-1"], "--price-per-hour"),
    (["--price-per-hour", "1", "--instance", "c7g.large"], "not both"),
    (["--instance", "nope"], "no price named"),
    (["--predictions-per-user", "100"], "needs a price"),
    (["--target", ""], "--target"),
    (["--target", "a/b"], "--target"),
    (["--predictions-per-user", "-3", "--price-per-hour", "1"], "--predictions-per-user"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS)
def test_bench_bad_options_exit_2_before_measuring(
    copy_bundle, regression_bundle, tmp_path: Path, args, message
) -> None:
    path = copy_bundle(regression_bundle)
    manifest = (path / "manifest.json").read_bytes()
    out = tmp_path / "x"
    res = _bench([str(path), "-o", str(out), *args])
    assert res.exit_code == 2, (args, res.output)
    assert message in res.output
    assert (path / "manifest.json").read_bytes() == manifest
    assert not (out / "results.json").exists()


def test_bench_bad_paths_exit_2(copy_bundle, regression_bundle, tmp_path: Path) -> None:
    assert _bench([str(tmp_path / "missing")]).exit_code == 2
    path = copy_bundle(regression_bundle)
    manifest = (path / "manifest.json").read_bytes()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = _bench([str(path), "--iterations", "20", "-o", str(blocker / "rep")])
    assert res.exit_code == 2 and "file is a file, not a folder" in res.output, res.output
    assert (path / "manifest.json").read_bytes() == manifest  # failed before measuring


def test_table_fits_80_columns_and_shows_costs(regression_bundle, tmp_path: Path) -> None:
    from rich.console import Console

    from edgekit.toolkit.present.bench import cost_table, results_table

    res = _bench([str(regression_bundle), "--scenario", "offline", "--batch", "1,4",
                  "--iterations", "60", "--no-save", "--price-per-hour", "0.1",
                  "--predictions-per-user", "3000", "--json", "-o", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    console = Console(width=80, record=True)
    console.print(results_table(doc))
    console.print(cost_table(doc))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # nothing cut off
    best = [r for r in doc["records"] if r["scenario_result"]["is_best"]]
    assert best and f"b{best[0]['batch']}" in text and "*" in text  # best batch marked
    assert "per user-month" in text
    for r in doc["records"]:
        assert f"{r['cost']['cost_per_million']:.3g}" in text


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
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**doc, "records": [{"variant": "fp32"}]}))
    res = runner.invoke(app, ["bench", "compare", str(broken), str(old)])
    assert res.exit_code == 2 and "record 0" in res.output
    res = runner.invoke(app, ["bench", "compare", str(old), str(slow), "--threshold", "nan"])
    assert res.exit_code == 2 and "--threshold" in res.output
    # the report folder stands for its results.json
    assert runner.invoke(app, ["bench", "compare", str(old.parent), str(slow)]).exit_code == 1
