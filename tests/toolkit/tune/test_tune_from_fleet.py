"""`tune --from-fleet`: devices grouped by the hardware profile of their hello, a choice per
group judged on the group's slowest device, reasons that name the group, its devices and which
variants were measured where; only measured settings recommended; devices of a component
packaged without a selection (no target) matched by hardware, with a note on how to fix it.

The fleet database is written by the real collector from messages in the agent's format; the
device records are real harness records (edge_agent.benchmark) scaled per device."""

from __future__ import annotations

import copy

import pytest

from edge_agent.benchmark import TimingConfig, run_single_stream
from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.ingest import Received
from edgekit.toolkit.tune.tuner import TuneRequest, tune
from tests.toolkit.fleet.fleet_helpers import encoded
from tests.toolkit.tune.test_tune_bundles import FAST, _add_variant, _evaluated

GIB = 1024**3


def _hello(target, name, cores):
    body = syn.hello_body(target=target, name=name)
    body["hardware"] = {
        "platform": {"os": "linux", "architecture": "aarch64" if cores == 1 else "amd64"},
        "cpu": {"model": "Cortex-A72" if cores == 1 else "Xeon", "usable_cores": cores},
        "memory_bytes": (2 if cores == 1 else 8) * GIB,
    }
    return body


def _scaled(rec, factor, threads=1):
    out = copy.deepcopy(rec)
    for k, v in out["latency_ms"].items():
        if isinstance(v, float):
            out["latency_ms"][k] = v * factor
    for k in ("queries_per_s", "samples_per_s"):
        if out["throughput"].get(k):
            out["throughput"][k] /= factor
    out["threads"] = threads
    if threads is None:
        out.pop("session_options", None)
    else:
        out["session_options"] = {"intra_op_num_threads": threads}
    return out


@pytest.fixture
def fleet_bundle(cnn_bundle, copy_bundle):
    path = copy_bundle(cnn_bundle)
    _evaluated(path)
    _add_variant(path, "int8-dynamic", evaluation={"gate": {"metric": "accuracy", "drop": 0.0}})
    _add_variant(path, "never-shipped", evaluation={"gate": {"metric": "accuracy", "drop": 0.0}})
    b = Bundle.open(path)
    rec = run_single_stream(
        b.variant_path("fp32"),
        b.signature["inputs"],
        threads=1,
        timing=TimingConfig(iterations=200, warmup_iterations=10),
        variant="fp32",
    )
    return path, b.manifest["name"], rec


def _fleet(db, name, rec, devices, target="rpi4"):
    """devices: {thing: (cores, {variant: factor}, threads)} → a fleet database."""
    c = Collector.open(db)
    items = []
    for thing, (cores, factors, threads) in devices.items():
        items.append(encoded("hello", thing, 1, _hello(target, name, cores)))
        results = {v: {**_scaled(rec, f, threads), "variant": v} for v, f in factors.items()}
        items.append(encoded("bench", thing, 2, {"results": results}, model_name=name))
    c.process([Received(t, p) for t, p in items])
    c.close()


def test_from_fleet_chooses_per_hardware_group(fleet_bundle, tmp_path):
    path, name, rec = fleet_bundle
    db = tmp_path / "fleet.db"
    _fleet(
        db,
        name,
        rec,
        {
            # one-core ARM boards: int8 pays off; pi-2 is the slow one of the group
            "pi-1": (1, {"fp32": 2.0, "int8-dynamic": 1.0}, 1),
            "pi-2": (1, {"fp32": 6.0, "int8-dynamic": 3.0}, 1),
            # two-core gateways: int8 does not; gw-2 is three times slower than gw-1
            "gw-1": (2, {"fp32": 1.0, "int8-dynamic": 1.6}, 2),
            "gw-2": (2, {"fp32": 3.0, "int8-dynamic": 4.8}, 2),
        },
    )
    result = tune(TuneRequest(path, "rpi4", from_fleet=db, write=False, **FAST))
    assert result.mode == "device"
    groups = {g["group"]: g for g in result.groups}
    assert len(groups) == 2, groups
    pi = next(g for label, g in groups.items() if "1 core" in label)
    gw = next(g for label, g in groups.items() if "2 cores" in label)
    assert pi["devices"] == ["pi-1", "pi-2"] and gw["devices"] == ["gw-1", "gw-2"]
    assert pi["selected"]["variant"] == "int8-dynamic" and gw["selected"]["variant"] == "fp32"
    # which variants were measured where, and that the unshipped one was not measured here
    assert pi["measured"] == {"fp32": ["pi-1", "pi-2"], "int8-dynamic": ["pi-1", "pi-2"]}
    assert "Measured: fp32 on gw-1, gw-2; int8-dynamic on gw-1, gw-2" in gw["reason"]
    assert "gw-1, gw-2" in gw["reason"] and "Cortex-A72" in pi["reason"]
    assert "never-shipped: not measured on these devices" in pi["reason"]
    assert "search budget" not in pi["reason"]
    # only measured settings: each group ran its own thread count, nothing extrapolated
    assert pi["selected"]["session_options"]["intra_op_num_threads"] == 1
    assert gw["selected"]["session_options"]["intra_op_num_threads"] == 2
    assert not any("extrapolation" in n for n in result.notes)
    # the slowest device of a group speaks for it: the gateways' fp32 figure is gw-2's
    gw_fp32 = [p for p in result.points if p.candidate.variant == "fp32"]
    assert gw_fp32 and all(
        p.metrics["latency_ms"]["p50"] >= 3.0 * rec["latency_ms"]["p50"] * 0.999
        for p in gw_fp32
        if "gw-2" in p.metrics["devices"]
    )
    # two groups of two: the recorded one is the slower choice, the other group's is a note
    assert "recorded for the largest of 2 hardware groups" in result.reason
    assert result.selected.candidate.variant == "int8-dynamic"
    assert any("gw-1, gw-2) would choose fp32, 2 threads" in n for n in result.notes)


def test_unrecorded_threads_are_called_an_extrapolation(fleet_bundle, tmp_path):
    path, name, rec = fleet_bundle
    db = tmp_path / "fleet.db"
    _fleet(db, name, rec, {"pi-1": (1, {"fp32": 2.0, "int8-dynamic": 1.0}, None)})
    result = tune(TuneRequest(path, "rpi4", from_fleet=db, write=False, **FAST))
    assert result.selected.candidate.options.intra_op_num_threads == 4  # rpi4's cores
    assert any("extrapolation, not a measured setting" in n for n in result.notes)


def test_devices_without_a_target_are_matched_by_hardware(fleet_bundle, tmp_path):
    """A component packaged without a tuned selection: its devices report no target."""
    path, name, rec = fleet_bundle
    db = tmp_path / "fleet.db"
    _fleet(db, name, rec, {"pi-1": (1, {"fp32": 2.0, "int8-dynamic": 1.0}, 1)}, target=None)
    result = tune(TuneRequest(path, "rpi4", from_fleet=db, write=False, **FAST))
    assert result.mode == "device" and result.selected.candidate.variant == "int8-dynamic"
    note = next(n for n in result.notes if "report no target" in n)
    assert "pi-1" in note and "edgekit tune" in note and "edgekit package" in note


def test_cli_prints_each_groups_choice(fleet_bundle, tmp_path):
    from typer.testing import CliRunner

    from edgekit.toolkit.cli import app

    path, name, rec = fleet_bundle
    db = tmp_path / "fleet.db"
    _fleet(
        db,
        name,
        rec,
        {
            "pi-1": (1, {"fp32": 2.0, "int8-dynamic": 1.0}, 1),
            "gw-1": (2, {"fp32": 1.0, "int8-dynamic": 1.6}, 2),
        },
    )
    res = CliRunner().invoke(
        app, ["tune", str(path), "--target", "rpi4", "--from-fleet", str(db), "--dry-run"]
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "group aarch64, Cortex-A72, 1 core, 2 GiB (pi-1)" in text
    assert "group amd64, Xeon, 2 cores, 8 GiB (gw-1)" in text
    assert "Measured: fp32 on gw-1; int8-dynamic on gw-1" in text
