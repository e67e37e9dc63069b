"""`edgekit fleet report` and `edgekit fleet collect`: the HTML opens and names every device,
--json carries the figures, deployments come from a simulation's run folder, bad input exits 2."""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_agent.atomic import write_json
from edgekit.toolkit.cli import app
from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.ingest import Received
from edgekit.toolkit.simulator.deployment import ComponentUpdate, Deployment, DeploymentResult
from tests.helpers.fleet import start_collector
from tests.toolkit.fleet.fleet_helpers import encoded, metrics

runner = CliRunner()
THINGS = [f"sim-{i:03d}" for i in range(1, 6)]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.images = 0
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img" and dict(attrs).get("src", "").startswith("data:image/png;base64,"):
            self.images += 1

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def fleet_db(tmp_path, fleet_engine, request) -> tuple[str, Path]:
    """A collected fleet (either engine) and a simulation's run folder: (--store, --run-dir)."""
    run = tmp_path / "run"
    db = (
        str(run / "fleet.db")
        if fleet_engine == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    c = Collector.open(db if "://" in db else Path(db))
    rng = np.random.default_rng(0)
    ref = syn.feature_reference(4)
    t0 = time.time() - 60
    items = []
    for i, thing in enumerate(THINGS):
        items.append(encoded("hello", thing, 1, syn.hello_body(target="host"), end=t0))
        for seq in range(2, 22):
            if thing == "sim-003" and seq == 10:
                continue  # one lost message
            shift = {"f02": 0.5} if thing == "sim-001" and seq > 12 else None
            items.append(
                metrics(
                    thing,
                    seq,
                    rng,
                    reference=ref,
                    requests=120,
                    shift=shift,
                    latency_ms=1 + i,
                    end=t0 + seq,
                )
            )
    alert = {
        "id": "a",
        "rule": "drift",
        "state": "firing",
        "severity": "warning",
        "message": "f02 drifted",
        "subject": "f02",
        "held": {"m": 3, "n": 5, "hits": 3},
    }
    items.append(encoded("alerts", "sim-001", 22, {"alerts": [alert]}, end=t0 + 22))
    c.process([Received(t, p) for t, p in items])
    c.close()
    for i, thing in enumerate(THINGS):  # what the simulator writes per device and deployment
        dep = Deployment([ComponentUpdate("com.example.Model", merge={"port": "1"})])
        res = DeploymentResult(
            dep.deployment_id,
            thing,
            "SUCCEEDED",
            "SUCCESSFUL",
            "",
            {"com.example.Model": "RUNNING"},
            {"com.example.Model": "1.0.0"},
            t0 + i * 0.1,
            2.5,
        )
        write_json(
            run / "devices" / thing / "deployments" / f"{dep.deployment_id}.json",
            {"deployment": dep.to_dict(), "result": res.to_dict()},
        )
    return db, run


def test_report_html_names_every_device_and_has_plots(fleet_db, tmp_path):
    store, run = fleet_db
    html_path = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "fleet",
            "report",
            "--store",
            store,
            "-o",
            str(html_path),
            "--run-dir",
            str(run),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["messages"]["lost"] == 1
    assert summary["gaps"] == [
        {"thing": "sim-003", "first": 10, "last": 10, "missing": 1, "leading": False}
    ]
    assert {d["thing"] for d in summary["devices"]} == set(THINGS)
    assert len(summary["deployments"]) == len(THINGS)
    assert summary["alert_counts"] == {"drift": 1}
    f02 = [f for f in summary["drift"]["by_device"] if f["feature"] == "f02"]
    worst = max(f02, key=lambda f: f["window_psi_mean"] or 0)
    assert worst["thing"] == "sim-001"
    parser = _Collect()
    parser.feed(html_path.read_text())
    text = " ".join(parser.text)
    for thing in THINGS:
        assert thing in text
    assert parser.images >= 5  # latency, throughput, two drift heat maps, time line
    assert "deployment history" in text and "SUCCEEDED" in text


def test_report_terminal_summary(fleet_db):
    result = runner.invoke(app, ["fleet", "report", "--store", fleet_db[0]])
    assert result.exit_code == 0, result.output
    assert "5 devices" in result.stdout and "1 lost" in result.stdout
    assert "sim-005" in result.stdout


def test_report_bad_input_exits_2(tmp_path):
    missing = runner.invoke(app, ["fleet", "report", "--db", str(tmp_path / "nope.db")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    folder = runner.invoke(app, ["fleet", "report", "--db", str(tmp_path)])  # said "does not exist"
    assert folder.exit_code == 2 and "is a folder, not a database file" in folder.output
    junk = tmp_path / "junk.db"
    junk.write_text("this is not sqlite " * 100)
    bad = runner.invoke(app, ["fleet", "report", "--db", str(junk)])
    assert bad.exit_code == 2 and "not an edgekit fleet database" in bad.output
    assert junk.read_text().startswith("this is not sqlite")  # left untouched


def test_report_survives_a_device_drift_block_of_the_wrong_shape(tmp_path, monkeypatch):
    """Drift blocks are stored as a device sent them and expanded when read: one entry with an
    `n` of "x" made `fleet report` fail for the whole fleet (found by tryhostile)."""
    c = Collector.open(tmp_path / "fleet.db")
    good_topic, good = metrics("good", 1)
    topic, payload = metrics("bad", 1)
    msg = json.loads(payload)
    features = msg["body"]["drift"]["features"]
    first, second = list(features)[:2]
    features[first]["n"] = "x"
    features[second]["counts"] = ["a", -1]
    c.process([Received(good_topic, good), Received(topic, json.dumps(msg).encode())])
    assert c.stats.stored == 2
    c.close()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["fleet", "report", "--db", "fleet.db", "-o", "r.html"])
    assert result.exit_code == 0, result.output
    assert "bad" in (tmp_path / "r.html").read_text()


@pytest.mark.broker
def test_collect_command_stores_from_the_broker(mosquitto_broker, tmp_path):
    db = tmp_path / "collected.db"
    proc = start_collector(
        mosquitto_broker.url, str(db), "cli-test", store_option="--db", group="cli", duration_s=8
    )
    device = syn.SyntheticDevice("cli-dev", mosquitto_broker.url, str(tmp_path / "ob.sqlite"))
    try:
        deadline = time.monotonic() + 30  # the collector connects (the broker logs it)
        while "as cli-test" not in mosquitto_broker.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # ... and subscribes
        device.start()
        for _ in range(5):
            device.emit()
        assert device.close(5)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()
    stats = json.loads(stdout)
    assert stats["stored"] == 5 and stats["duplicates"] == 0
    bad = runner.invoke(app, ["fleet", "collect", "--broker", "http://x", "--db", str(db)])
    assert bad.exit_code == 2 and "mqtt://HOST:PORT" in bad.output


def test_report_terminal_fits_80_columns(fleet_db):
    """#17: the fleet summary fits an 80-column terminal, with no raw dicts or `None`."""
    from edgekit.toolkit.cli import common
    from tests.toolkit.present.test_tables_fit import check_fits

    saved = common.out._width
    common.out.width = 80
    try:
        result = runner.invoke(app, ["fleet", "report", "--store", fleet_db[0]])
    finally:
        common.out._width = saved
    assert result.exit_code == 0, result.output
    check_fits(result.stdout, str(fleet_db[1]), fleet_db[0])
