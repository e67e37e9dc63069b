"""The whole path with the real component: `edgekit package` output, unmodified, on simulated
core devices. Install runs offline from the shared wheel cache, the agent reports RUNNING over
IPC, REST load reaches it, telemetry arrives with no sequence gaps, and the drift alert fires on
the drifted device only; then the same through a real mosquitto broker."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import pytest
from helpers.mosquitto import MqttCollector
from typer.testing import CliRunner

from edgekit.toolkit.greengrass.package import PackageRequest, package
from edgekit.toolkit.simulator.runner import SimulateOptions, simulate

pytestmark = pytest.mark.slow

NAME = "com.edgekit.test.Packaged"
# short windows, alerts on 2 of the last 3 windows: drift shows within seconds; 50 rows a
# window (25 req/s) keep the chi-square test's expected counts per bin honest
FAST_WINDOWS = {"window_s": "2", "alert_m": "2", "alert_n": "3", "drift_min_samples": "40"}


@pytest.fixture(scope="module")
def component(tabular_bundle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gg") / "greengrass-build"
    package(
        PackageRequest(
            bundle_dir=tabular_bundle,
            name=NAME,
            version="1.0.0",
            platforms=["linux/amd64"],
            output=out,
        )
    )
    return out


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wheels") / "cache"


def _cloud(run_dir: Path) -> dict[str, list[dict]]:
    by_thing: dict[str, list[dict]] = defaultdict(list)
    for line in (run_dir / "cloud.jsonl").read_text().splitlines():
        m = json.loads(line)
        by_thing[m["thing"]].append(m["payload"])
    return by_thing


def _fired(messages: list[dict]) -> set[str]:
    return {
        a["rule"]
        for m in messages
        if m["type"] == "alerts"
        for a in m["body"]["alerts"]
        if a["state"] == "firing"
    }


def test_packaged_component_end_to_end(component, wheel_cache, short_dir):
    run = short_dir / "run"
    opts = SimulateOptions(
        component_dir=component,
        run_dir=run,
        devices=2,
        duration_s=8.0,
        qps=25.0,
        drift_after_s=1.0,
        drift_devices=1,
        base_port=0,
        extra_merge=FAST_WINDOWS,
        wheel_cache=wheel_cache,
        bench={"budget_s": 1.0},
    )
    summary = asyncio.run(asyncio.wait_for(simulate(opts), 240))

    # Install ran for real, offline, from the shared cache (rebuilt from the installed pins)
    cache = summary["wheel_cache"]
    assert cache["folder"] == str(wheel_cache) and not cache["missing"]
    assert (
        "onnxruntime==" + __import__("onnxruntime").__version__ in cache["rebuilt_from_installed"]
    )
    for thing in ("sim-001", "sim-002"):
        venv = run / "devices" / thing / "work" / NAME / "venv"
        assert list(venv.glob("lib/python3*/site-packages/onnxruntime/__init__.py")), thing
        log = (run / "devices" / thing / "logs" / f"{NAME}.log").read_text()
        assert "Successfully installed" in log and "edge-agent ready" in log

    roll = summary["rollout"]
    assert not roll["aborted"] and roll["waves"] == [["sim-001"], ["sim-002"]]
    assert all(r["detailed_status"] == "SUCCESSFUL" for r in roll["results"].values())
    for thing, d in summary["devices"].items():
        # Startup never exits: RUNNING can only come from the agent's UpdateState over IPC
        assert d["state"] == "RUNNING" and d["restarts"] == 0, (thing, d)
        assert d["ipc_calls"].get("UpdateState", 0) >= 1
        assert d["ipc_calls"].get("GetConfiguration", 0) >= 1

    # REST load reached each agent on its own port (the configuration merge of `port`)
    loads = summary["load"]
    assert loads["sim-001"]["port"] + 1 == loads["sim-002"]["port"]
    for thing, load in loads.items():
        assert load["ok"] >= 100 and load["errors"] == 0, (thing, load)

    cloud = _cloud(run)
    for thing in ("sim-001", "sim-002"):
        msgs = cloud[thing]
        types = [m["type"] for m in msgs]
        assert types[0] == "hello" and types.count("metrics") >= 4, types
        hello = msgs[0]["body"]
        assert hello["agent"]["transport"] == "greengrass" and hello["agent"]["window_s"] == 2.0
        assert hello["agent"]["endpoints"]["rest"].endswith(f":{loads[thing]['port']}")
        seqs = sorted(m["seq"] for m in msgs)
        assert seqs == list(range(1, len(seqs) + 1)), (thing, seqs)  # nothing lost, no duplicate
        assert all(m["thing"] == thing and m["component_version"] == "1.0.0" for m in msgs)
        # every request the driver counted as answered was counted by the agent's monitor
        served = sum(m["body"]["requests"]["ok"] for m in msgs if m["type"] == "metrics")
        assert served == loads[thing]["ok"], (thing, served, loads[thing])
        assert summary["messages"][thing]["metrics"] == types.count("metrics")

    # drift: only sim-001's inputs moved, only sim-001 alerts, on the inputs that moved
    assert summary["drift"]["devices"] == ["sim-001"]
    assert "drift" in _fired(cloud["sim-001"])
    assert not _fired(cloud["sim-002"]) & {"drift", "prediction_drift"}
    drift_alert = next(
        a
        for m in cloud["sim-001"]
        if m["type"] == "alerts"
        for a in m["body"]["alerts"]
        if a["rule"] == "drift"
    )
    flagged, shifted = set(drift_alert["subject"].split(",")), set(summary["drift"]["inputs"])
    assert len(flagged & shifted) > len(flagged - shifted), (flagged, shifted)

    # the agent's bench reply is the bench harness's record, per shipped variant
    for thing in ("sim-001", "sim-002"):
        reply = summary["bench"][thing]
        assert reply["type"] == "bench" and reply["body"]["error"] is None
        rec = reply["body"]["results"]["fp32"]
        assert rec["scenario"] == "single-stream" and rec["latency_ms"]["p50"] > 0
        assert rec["throughput"]["queries_per_s"] > 0

    # the in-process fleet collector stored everything, with no gaps
    if "fleet" in summary:
        fleet = summary["fleet"]
        assert fleet["lost"] == 0 and fleet["duplicates"] == 0
        assert fleet["stored"] == sum(len(v) for v in cloud.values())


@pytest.mark.broker
def test_packaged_component_through_mosquitto(component, wheel_cache, short_dir, mosquitto_broker):
    from edgekit.toolkit.cli import app

    with MqttCollector(mosquitto_broker, "dt/edgekit/#", client_id="sim-packaged-test") as col:
        res = CliRunner().invoke(
            app,
            [
                "simulate",
                "--component",
                str(component),
                "--devices",
                "1",
                "--duration",
                "5",
                "--load",
                "10",
                "--merge",
                "window_s=1",
                "--broker",
                mosquitto_broker.url,
                "--base-port",
                "0",
                "--wheel-cache",
                str(wheel_cache),
                "-o",
                str(short_dir / "run"),
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout)
        sent = summary["messages"]["sim-001"]
        assert col.wait_for(lambda ms: len(ms) >= sum(sent.values()), 10)
        msgs = [json.loads(m.payload) for m in col.messages]
    assert summary["ok"] and summary["cloud"].startswith("mqtt ")
    assert {m["type"] for m in msgs} == {"hello", "metrics"}
    seqs = sorted(m["seq"] for m in msgs)
    assert seqs == list(range(1, len(seqs) + 1))  # every message through the broker, in order
    served = sum(m["body"]["requests"]["ok"] for m in msgs if m["type"] == "metrics")
    assert served == summary["load"]["sim-001"]["ok"] >= 40
