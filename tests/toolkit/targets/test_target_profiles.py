"""Shipped target profiles load and validate; malformed ones fail naming the file and field;
a user folder adds and overrides profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app
from edgekit.toolkit.targets import can_emulate, get_target, load_targets, local_profile
from edgekit.toolkit.targets.loader import builtin_dir, validation_problems
from edgekit.toolkit.targets.profile import TargetProfile
from edgekit.toolkit.targets.rules import derive_quantization

REQUIRED = {
    "rpi4",
    "rpi5",
    "jetson-orin",
    "x86-avx2-gateway",
    "x86-avx512-vnni-server",
    "intel-openvino",
}


def _shipped(name: str) -> dict:
    return yaml.safe_load((builtin_dir() / f"{name}.yaml").read_text())


def _write(folder: Path, name: str, data: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_every_shipped_profile_is_valid():
    targets = load_targets()
    assert set(targets) >= REQUIRED
    assert "local" in targets
    for name in REQUIRED:
        assert validation_problems(_shipped(name)) == []
        assert targets[name].source == f"builtin:{name}.yaml"


def test_profile_facts():
    t = load_targets(include_local=False)
    for pi in ("rpi4", "rpi5"):
        assert t[pi].platform["architecture"] == "aarch64" and t[pi].cores == 4
    assert "fp16" in t["rpi4"].avoid and "fp16" not in t["rpi4"].features
    assert "fp16" in [r["kind"] for r in t["rpi5"].prefer]
    jetson = t["jetson-orin"]
    assert jetson.architecture == "aarch64"
    assert {"CUDAExecutionProvider", "TensorrtExecutionProvider"} <= set(jetson.providers)
    trt = jetson.prefer[0]
    assert trt["kind"] == "int8-static" and trt["providers"] == ["TensorrtExecutionProvider"]
    assert trt["symmetric"] is True
    gw = t["x86-avx2-gateway"].prefer[0]
    assert (gw["activation_type"], gw["weight_type"], gw["reduce_range"]) == ("uint8", "int8", True)
    srv = t["x86-avx512-vnni-server"].prefer[0]
    assert (srv["activation_type"], srv["reduce_range"]) == ("int8", False)
    assert t["intel-openvino"].providers[0] == "OpenVINOExecutionProvider"
    assert t["x86-avx2-gateway"].platform["architecture"] == "amd64"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_rules_agree_with_each_profiles_first_choice(name):
    """`local` derives its preferences with rules; they must say what the hand-written
    profiles say for the same hardware."""
    prof = load_targets(include_local=False)[name]
    derived = derive_quantization(prof.architecture, prof.features, prof.providers)["prefer"][0]
    first = prof.prefer[0]
    for key in ("kind", "activation_type", "weight_type", "reduce_range", "symmetric"):
        assert derived.get(key) == first.get(key), (name, key)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["cpu"].__setitem__("cores", "four"), "cpu.cores"),
        (lambda d: d["cpu"].pop("cores"), "cpu.cores"),
        (lambda d: d["platform"].__setitem__("architecture", "x86_64"), "platform.architecture"),
        (lambda d: d.__setitem__("colour", "red"), "colour"),
        (lambda d: d["cpu"]["features"].append("avx9000"), "cpu.features.1"),
        (
            lambda d: d["quantization"]["prefer"][0].__setitem__("kind", "int4"),
            "quantization.prefer.0.kind",
        ),
        (lambda d: d["quantization"]["prefer"][0].pop("why"), "quantization.prefer.0.why"),
        (lambda d: d.__setitem__("providers", ["CUDA"]), "providers.0"),
        (lambda d: d.__setitem__("memory_mb", 0), "memory_mb"),
    ],
)
def test_malformed_profile_names_file_and_field(tmp_path, mutate, field):
    data = _shipped("rpi4")
    data["name"] = "mybox"
    mutate(data)
    path = _write(tmp_path, "mybox", data)
    with pytest.raises(BadInputError) as info:
        load_targets(tmp_path)
    message = info.value.message
    assert str(path) in message
    assert f"field '{field}'" in message
    assert info.value.exit_code == 2


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("schema_version: 1\nname: broken\ncpu: [unclosed\n")
    with pytest.raises(BadInputError, match=r"broken\.yaml line \d+: not valid YAML"):
        load_targets(tmp_path)


def test_semantic_checks(tmp_path):
    data = _shipped("jetson-orin")
    data["name"] = "orin-cpu"
    data["providers"] = ["CPUExecutionProvider"]
    _write(tmp_path, "orin-cpu", data)
    with pytest.raises(BadInputError, match=r"quantization\.prefer\.0\.providers.*Tensorrt"):
        load_targets(tmp_path)

    other = tmp_path / "other"
    other.mkdir()
    data = _shipped("rpi4")
    _write(other, "pi", data)  # name rpi4 in pi.yaml
    with pytest.raises(BadInputError, match="field 'name'.*differs from the file name"):
        load_targets(other)

    third = tmp_path / "third"
    third.mkdir()
    data = _shipped("rpi4")
    data["name"] = "local"
    _write(third, "local", data)
    with pytest.raises(BadInputError, match="reserved"):
        load_targets(third)


def test_user_dir_adds_and_overrides(tmp_path):
    pi = _shipped("rpi4")
    pi["memory_mb"] = 1024  # the 1 GB model
    pi["title"] = "Raspberry Pi 4 with 1 GB"
    _write(tmp_path, "rpi4", pi)
    mine = _shipped("x86-avx2-gateway")
    mine.update(name="factory-gw", title="our gateway")
    mine["cpu"]["cores"] = 2
    mine["cpu"]["threads"] = 2
    _write(tmp_path, "factory-gw", mine)
    targets = load_targets(tmp_path)
    assert targets["rpi4"].memory_bytes == 1024 * 1024 * 1024
    assert targets["rpi4"].source == str(tmp_path / "rpi4.yaml")
    assert targets["factory-gw"].cores == 2
    assert get_target("factory-gw", tmp_path).title == "our gateway"
    assert get_target("rpi4").data["memory_mb"] == 4096  # shipped one untouched without the dir


def test_missing_targets_dir_is_an_error_even_for_local(tmp_path):
    for name in ("local", "rpi4"):
        with pytest.raises(BadInputError, match="is not a folder"):
            get_target(name, tmp_path / "typo")


def test_unknown_target_lists_known():
    with pytest.raises(BadInputError) as info:
        get_target("cray-1")
    assert "rpi4" in info.value.hint and "local" in info.value.hint


def test_emulation_is_honest():
    local = local_profile()
    targets = load_targets(include_local=False)
    assert can_emulate(local, local).possible
    other_arch = "rpi4" if local.architecture == "amd64" else "x86-avx2-gateway"
    emu = can_emulate(targets[other_arch], local)
    assert not emu.possible and "cannot run" in emu.reasons[0]
    # the same hardware with fewer cores is emulated with a thread cap of its core count
    data = json.loads(json.dumps(local.data))
    data.update(name="small", title="small")
    data["cpu"]["cores"] = 1
    data["cpu"]["threads"] = 1
    small = TargetProfile(data, "test")
    emu = can_emulate(small, local)
    assert emu.possible and emu.max_threads == 1
    # a different int8 kernel tier is not emulated
    data = json.loads(json.dumps(local.data))
    data.update(name="older", title="older")
    data["cpu"]["features"] = [f for f in data["cpu"]["features"] if "vnni" not in f and f != "amx"]
    if data["cpu"]["features"] != local.data["cpu"]["features"]:
        emu = can_emulate(TargetProfile(data, "test"), local)
        assert not emu.possible and any("int8" in r for r in emu.reasons)
    # a target whose main provider is missing here is not measured with another provider
    assert not can_emulate(targets["intel-openvino"], local).possible


def test_targets_cli(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["targets", "--json"])
    assert res.exit_code == 0, res.output
    names = {t["name"] for t in json.loads(res.stdout)["targets"]}
    assert REQUIRED | {"local"} <= names
    res = runner.invoke(app, ["targets"])
    assert res.exit_code == 0 and "rpi4" in res.stdout
    res = runner.invoke(app, ["targets", "jetson-orin"])
    assert res.exit_code == 0 and "TensorrtExecutionProvider" in res.stdout
    bad = _shipped("rpi4")
    bad["name"] = "bad"
    bad["cpu"]["cores"] = -1
    _write(tmp_path, "bad", bad)
    res = runner.invoke(app, ["targets", "--targets-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert "bad.yaml" in res.output and "cpu.cores" in res.output
