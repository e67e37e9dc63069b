"""`edgekit probe` on this machine agrees with /proc/cpuinfo and with what the OS reports."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent import hardware
from edgekit.toolkit.cli import app
from edgekit.toolkit.targets import local_profile

CPUINFO = Path("/proc/cpuinfo")
pytestmark = pytest.mark.skipif(not CPUINFO.is_file(), reason="needs Linux /proc/cpuinfo")


@pytest.fixture(autouse=True)
def _this_cpu(monkeypatch):
    """These tests compare the probe with this machine: no CPU override from the environment."""
    monkeypatch.delenv(hardware.PROBE_CPU_ENV, raising=False)


def _cpuinfo() -> tuple[str | None, set[str], int]:
    text = CPUINFO.read_text()
    model = re.search(r"^(?:model name|Hardware|cpu model)\s*:\s*(.+)$", text, re.M)
    flags: set[str] = set()
    for m in re.finditer(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.M):
        flags.update(m.group(1).split())
    processors = len(re.findall(r"^processor\s*:", text, re.M))
    return (model.group(1).strip() if model else None), flags, processors


def test_probe_matches_proc_cpuinfo():
    model, flags, processors = _cpuinfo()
    p = hardware.probe()
    assert p["cpu"]["model"] == model
    assert p["cpu"]["logical_cores"] == processors == os.cpu_count()
    assert p["cpu"]["usable_cores"] == len(os.sched_getaffinity(0))
    feats = p["cpu"]["features"]
    # every ISA feature is reported exactly as the kernel's flags say
    for name, aliases in hardware.FEATURES.items():
        assert feats[name] == any(a in flags for a in aliases), name
    assert feats["avx512_vnni"] == ("avx512_vnni" in flags)
    assert feats["avx2"] == ("avx2" in flags)


def test_probe_platform_is_greengrass_spelling():
    p = hardware.probe()["platform"]
    assert p["os"] == "linux"
    assert p["architecture.detail"] == platform.machine()
    expected = {"x86_64": "amd64", "aarch64": "aarch64", "armv7l": "arm"}.get(platform.machine())
    if expected:
        assert p["architecture"] == expected
    assert p["architecture"] in ("amd64", "x86", "arm", "aarch64")


def test_memory_matches_meminfo():
    kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    assert hardware.probe()["memory_bytes"] == kb * 1024


def test_local_profile_is_built_from_probe():
    _, flags, _ = _cpuinfo()
    local = local_profile()
    assert local.cores == min(len(os.sched_getaffinity(0)), hardware.physical_cores() or 99)
    assert ("avx512_vnni" in local.features) == ("avx512_vnni" in flags)
    assert "AzureExecutionProvider" not in local.providers
    assert "CPUExecutionProvider" in local.providers
    first = local.prefer[0]
    if local.architecture == "amd64" and {"avx512_vnni", "avx_vnni"} & flags:
        # VNNI: onnxruntime's S8S8 QDQ, no reduce_range
        assert (first["kind"], first["activation_type"], first["reduce_range"]) == (
            "int8-static",
            "int8",
            False,
        )
    if "fp16" not in local.features:
        assert "fp16" in local.avoid


def test_probe_cli_json_and_table():
    runner = CliRunner()
    res = runner.invoke(app, ["probe", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    model, _, _ = _cpuinfo()
    assert data["cpu"]["model"] == model
    assert data["onnxruntime"]["providers"]
    res = runner.invoke(app, ["probe"])
    assert res.exit_code == 0
    assert "architecture (Greengrass)" in res.stdout
    assert "avx2" in res.stdout or "neon" in res.stdout


@pytest.mark.parametrize(
    ("case", "vnni", "first"),
    [("avx2", False, ("uint8", True)), ("vnni", True, ("int8", False))],
)
def test_cpu_override_stands_in_for_this_cpu(monkeypatch, case, vnni, first):
    """EDGEKIT_PROBE_CPU: the probe (and what is derived from it) describes that x86-64 CPU."""
    monkeypatch.setenv(hardware.PROBE_CPU_ENV, case)
    res = CliRunner().invoke(app, ["probe", "--json"])
    assert res.exit_code == 0, res.output
    cpu = json.loads(res.stdout)["cpu"]
    assert cpu["probe_override"] == case and case in cpu["model"]
    assert cpu["features"]["avx2"] and cpu["features"]["avx512_vnni"] is vnni
    assert cpu["logical_cores"] == os.cpu_count()  # only the ISA is stood in for
    local = local_profile()
    assert local.architecture == "amd64"
    static = next(r for r in local.prefer if r["kind"] == "int8-static")
    assert (static["activation_type"], static["reduce_range"]) == first


def test_unknown_cpu_override_exits_2(monkeypatch):
    monkeypatch.setenv(hardware.PROBE_CPU_ENV, "avx9000")
    res = CliRunner().invoke(app, ["probe"])
    assert res.exit_code == 2
    assert "EDGEKIT_PROBE_CPU='avx9000' is not a CPU preset" in res.output
    assert "avx2, vnni" in res.output and "Traceback" not in res.output


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_gpus_from_proc_and_sys(tmp_path):
    assert hardware.gpus(tmp_path) == []
    # a Jetson: no /proc/driver/nvidia, the board name in the device tree
    jetson = tmp_path / "jetson"
    _write(jetson / "proc/device-tree/model", "NVIDIA Jetson Orin NX Developer Kit\x00")
    assert hardware.gpus(jetson) == [
        {"vendor": "nvidia", "model": "NVIDIA Jetson Orin NX Developer Kit (integrated)"}
    ]
    # an Intel iGPU (OpenVINO's GPU device) and a discrete NVIDIA card seen by its driver
    box = tmp_path / "box"
    _write(box / "proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: \t NVIDIA L4\n")
    _write(box / "sys/class/drm/card0/device/vendor", "0x8086\n")
    _write(box / "sys/class/drm/card0-HDMI-A-1/device/vendor", "0x8086\n")  # a connector
    _write(box / "sys/class/drm/card1/device/vendor", "0x10de\n")  # the same NVIDIA card
    assert hardware.gpus(box) == [
        {"vendor": "nvidia", "model": "NVIDIA L4"},
        {"vendor": "intel", "model": None},
    ]


def test_cgroup_cpu_quota_caps_usable_cores(tmp_path):
    assert hardware.cpu_quota(tmp_path) is None
    # cgroup v2: the component's cgroup allows 1.5 CPUs, its parent 3
    v2 = tmp_path / "v2"
    _write(v2 / "proc/self/cgroup", "0::/system.slice/greengrass/com.example.A\n")
    _write(v2 / "sys/fs/cgroup/system.slice/cpu.max", "300000 100000\n")
    _write(v2 / "sys/fs/cgroup/system.slice/greengrass/com.example.A/cpu.max", "150000 100000\n")
    assert hardware.cpu_quota(v2) == 1.5
    assert hardware.usable_cpus(v2) == min(2, len(os.sched_getaffinity(0)))
    # cgroup v1, unlimited (-1), then limited to one CPU
    v1 = tmp_path / "v1"
    _write(v1 / "proc/self/cgroup", "4:cpu,cpuacct:/gg\n1:name=systemd:/\n")
    _write(v1 / "sys/fs/cgroup/cpu,cpuacct/gg/cpu.cfs_quota_us", "-1\n")
    _write(v1 / "sys/fs/cgroup/cpu,cpuacct/gg/cpu.cfs_period_us", "100000\n")
    assert hardware.cpu_quota(v1) is None
    _write(v1 / "sys/fs/cgroup/cpu,cpuacct/gg/cpu.cfs_quota_us", "100000\n")
    assert hardware.cpu_quota(v1) == 1.0 and hardware.usable_cpus(v1) == 1
