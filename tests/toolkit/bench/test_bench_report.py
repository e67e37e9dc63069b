"""The bench report's content: the Pareto front on known points, latency against QPS for the
server scenario, and every variant and figure named in the page."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from pathlib import Path

import pytest

from edge_agent.benchmark import TimingConfig
from edgekit.toolkit.bench.engine import BenchPlan, run_bench
from edgekit.toolkit.bench.pareto import accuracy_front, main_metric
from edgekit.toolkit.bench.report import build_report


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.captions: list[str] = []
        self.images = 0
        self.text: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        self.images += tag == "img"

    def handle_data(self, data):
        self.text.append(data)
        if self._tag == "h2":
            self.headings.append(data)
        elif self._tag == "figcaption":
            self.captions.append(data)


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_pareto_front_on_known_points() -> None:
    points = [
        ("fp32", 1.0, 0.95),  # best quality
        ("int8", 0.5, 0.94),  # faster, a bit worse: on the front
        ("fp16", 0.9, 0.94),  # slower than int8 and no better: dominated
        ("tiny", 0.2, 0.80),  # fastest: on the front
        ("twin", 0.5, 0.94),  # ties int8 exactly: neither dominates the other
    ]
    assert accuracy_front(points, True) == ["fp32", "int8", "tiny", "twin"]
    errors = [("a", 1.0, 0.10), ("b", 2.0, 0.05), ("c", 2.0, 0.20)]
    assert accuracy_front(errors, higher_is_better=False) == ["a", "b"]


def test_main_metric_follows_the_gate_and_its_direction() -> None:
    assert main_metric(None, "classification") is None
    gate = {"metrics": {"accuracy": 0.9, "mae": 3.0}, "gate": {"metric": "mae", "value": 3.0}}
    assert main_metric(gate, "regression") == ("mae", 3.0, False)
    plain = {"metrics": {"f1": 0.7, "accuracy": 0.8}}
    assert main_metric(plain, "classification") == ("accuracy", 0.8, True)


@pytest.fixture(scope="module")
def single_stream_doc(regression_bundle) -> dict:
    plan = BenchPlan(
        batches=[1, 4], timing=TimingConfig(iterations=60, warmup_iterations=2), trust_code=True
    )
    return run_bench(regression_bundle, plan).to_dict()


def test_report_names_every_variant_and_figure(single_stream_doc) -> None:
    doc = copy.deepcopy(single_stream_doc)
    fast = copy.deepcopy([r for r in doc["records"] if r["variant"] == "fp32"])
    for r in fast:  # a second variant, faster and worse
        r["variant"] = "int8-fake"
        r["latency_ms"] = {k: v / 2 if k != "count" else v for k, v in r["latency_ms"].items()}
    doc["records"] += fast
    manifest = {
        "task": "regression",
        "variants": {
            "fp32": {"precision": "fp32", "bytes": 1000, "evaluation": {"metrics": {"r2": 0.9}}},
            "int8-fake": {
                "precision": "int8",
                "bytes": 300,
                "evaluation": {"metrics": {"r2": 0.8}, "gate": {"metric": "r2", "value": 0.8}},
            },
            "int8-rejected": {"precision": "int8", "bytes": 300, "rejected": True},
        },
    }
    page = _page(build_report(doc, manifest).html())
    text = " ".join(page.text)
    for name in ("fp32", "int8-fake", "int8-rejected", "native:sklearn"):
        assert name in text
    for heading in (
        "Latency distribution",
        "Throughput against batch size",
        "Accuracy against latency",
        "Business figures",
        "Environment",
    ):
        assert heading in page.headings
    assert page.images >= 3
    assert any("Pareto" in c for c in page.captions)
    for column in ("min ms", "mean ms", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms",
                   "max ms", "inferences/s", "samples/s", "create ms", "cold ms", "peak RSS MB",
                   "RSS increase MB", "CPU %", "size KB"):  # fmt: skip
        assert column in text
    assert doc["environment"]["onnxruntime"] in text and doc["environment"]["python"] in text


def test_server_report_draws_latency_against_qps(single_stream_doc) -> None:
    doc = copy.deepcopy(single_stream_doc)
    record = next(r for r in doc["records"] if r["variant"] == "fp32" and r["batch"] == 1)
    curve = [
        {"target_qps": q, "achieved_qps": q, "p50": p, "p90": p, "p95": p, "p99": p,
         "p99.9": p, "passed": p <= 5.0}
        for q, p in ((100, 1.0), (200, 2.0), (400, 4.0), (800, 9.0))
    ]  # fmt: skip
    record["scenario"] = "server"
    record["scenario_result"] = {
        "latency_bound": {"percentile": "p99", "ms": 5.0},
        "max_qps_within_bound": 400,
        "curve": curve,
    }
    doc.update(scenario="server", records=[record])
    page = _page(build_report(doc, {"task": "regression", "variants": {}}).html())
    assert "Latency against QPS" in page.headings
    assert any("QPS" in c and "bound" in c for c in page.captions)


def test_report_file_is_written_and_opens(single_stream_doc, tmp_path: Path) -> None:
    from edgekit.toolkit.bench.report import write_report

    path = write_report(single_stream_doc, None, tmp_path / "r" / "report.html")
    page = _page(path.read_text("utf-8"))
    assert page.images >= 2 and "fp32" in " ".join(page.text)
