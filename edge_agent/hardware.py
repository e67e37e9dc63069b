"""The hardware profile of this machine: what `edgekit probe` prints and what the agent sends
in its `hello` message, so lab and device describe themselves the same way.

Reads /proc and os facts only (psutil if present), never a vendor tool, so it works on a
Raspberry Pi as on a server.
"""

from __future__ import annotations

import math
import os
import platform
import re
from pathlib import Path
from typing import Any

# ISA features that change which quantization formats are fast.
FEATURES = {
    "avx2": ("avx2",),
    "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",),
    "avx512_bf16": ("avx512_bf16",),
    "amx": ("amx_tile", "amx_int8"),
    "f16c": ("f16c",),
    "neon": ("neon", "asimd"),
    "dotprod": ("asimddp",),
    "fp16": ("fphp", "asimdhp", "avx512_fp16"),
    "i8mm": ("i8mm",),
    "sve": ("sve",),
}


def greengrass_architecture(machine: str | None = None) -> str:
    """Architecture as the Greengrass nucleus reports it: amd64, x86, arm or aarch64."""
    m = (machine or platform.machine()).lower()
    if m in ("x86_64", "amd64"):
        return "amd64"
    if m in ("i386", "i486", "i586", "i686", "x86"):
        return "x86"
    if m in ("aarch64", "arm64"):
        return "aarch64"
    if "arm" in m:
        return "arm"
    return m


def greengrass_os() -> str:
    if Path("/proc").is_dir() and platform.system() == "Linux":
        return "linux"
    return platform.system().lower()


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return {"model": platform.processor() or None, "flags": set()}
    model = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    if model is None:
        implementer = re.search(r"CPU implementer\s*:\s*(\S+)", text)
        part = re.search(r"CPU part\s*:\s*(\S+)", text)
        if implementer and part:
            model = f"ARM implementer {implementer.group(1)} part {part.group(1)}"
    return {"model": model, "flags": flags}


def isa_features(flags: set[str]) -> dict[str, bool]:
    return {name: any(f in flags for f in aliases) for name, aliases in FEATURES.items()}


def physical_cores() -> int | None:
    try:
        import psutil

        cores: int | None = psutil.cpu_count(logical=False)
        return cores
    except ImportError:
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    pairs = set(re.findall(r"physical id\s*:\s*(\d+).*?core id\s*:\s*(\d+)", text, re.S))
    return len(pairs) or None


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_quota(root: str | Path = "/") -> float | None:
    """CPUs' worth of time the cgroup CFS quota allows this process (the nucleus's
    `systemResourceLimits.cpus`, docker's --cpus), the tightest of its cgroup and their
    parents; None when unlimited or unknown. cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`."""
    base = Path(root)
    limits: list[float] = []
    for line in (_read(base / "proc/self/cgroup") or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        parts = [p for p in rel.split("/") if p]
        if hierarchy == "0" and controllers == "":
            dirs = [base / "sys/fs/cgroup" / "/".join(parts[:i]) for i in range(len(parts) + 1)]
            for d in dirs:
                quota, _, period = (_read(d / "cpu.max") or "max").partition(" ")
                if quota != "max" and period:
                    limits.append(int(quota) / int(period))
        elif "cpu" in controllers.split(","):
            for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                d = base / "sys/fs/cgroup" / name / "/".join(parts)
                cfs_quota, cfs_period = (
                    _read(d / "cpu.cfs_quota_us"),
                    _read(d / "cpu.cfs_period_us"),
                )
                if cfs_quota and cfs_period and int(cfs_quota) > 0:
                    limits.append(int(cfs_quota) / int(cfs_period))
                    break
    return min(limits) if limits else None


def usable_cpus(root: str | Path = "/") -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    quota = cpu_quota(root)
    return max(1, min(n, math.ceil(quota))) if quota else n


# PCI vendor ids of GPUs, as /sys/class/drm/card*/device/vendor shows them.
PCI_GPU_VENDORS = {"0x10de": "nvidia", "0x8086": "intel", "0x1002": "amd"}


def gpus(root: str | Path = "/") -> list[dict[str, Any]]:
    """GPUs seen through /proc and /sys only (no CUDA or vendor library is loaded): NVIDIA's
    driver interface, a Jetson's integrated GPU (device tree), and DRM cards of Intel and AMD
    (an Intel iGPU is what OpenVINO's GPU device runs on)."""
    base = Path(root)
    found: list[dict[str, Any]] = []
    nvidia = base / "proc/driver/nvidia/gpus"
    if nvidia.is_dir():
        for entry in sorted(nvidia.iterdir()):
            try:
                model = re.search(r"Model:\s*(.+)", (entry / "information").read_text())
            except OSError:
                continue
            found.append({"vendor": "nvidia", "model": model.group(1).strip() if model else None})
    try:
        board = (base / "proc/device-tree/model").read_text(errors="replace").strip("\x00\n ")
    except OSError:
        board = ""
    if "jetson" in board.lower() and not found:
        found.append({"vendor": "nvidia", "model": f"{board} (integrated)"})
    from_proc = {g["vendor"] for g in found}
    drm = base / "sys/class/drm"
    if drm.is_dir():
        for card in sorted(drm.glob("card[0-9]*")):
            if "-" in card.name:  # connectors (card0-HDMI-A-1), not devices
                continue
            try:
                vendor_id = (card / "device/vendor").read_text().strip().lower()
            except OSError:
                continue
            vendor = PCI_GPU_VENDORS.get(vendor_id)
            if vendor and vendor not in from_proc:
                found.append({"vendor": vendor, "model": None})
    return found


def onnxruntime_info() -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError:
        return {"version": None, "providers": []}
    return {"version": ort.__version__, "providers": list(ort.get_available_providers())}


# EDGEKIT_PROBE_CPU=NAME makes probe() describe one of these x86-64 CPUs instead of this one's
# ISA, so that the choices that depend on it (quantization settings, tune's candidates) can be
# exercised for both kinds of x86 CPU on any machine: the test suite runs the quantize and tune
# tests once as each. Cores, memory and everything else stay this machine's.
PROBE_CPU_ENV = "EDGEKIT_PROBE_CPU"
CPU_PRESETS: dict[str, set[str]] = {
    "avx2": {"avx2", "f16c"},  # e.g. an AMD EPYC Zen 2 or a Haswell Xeon: U8S8 via VPMADDUBSW
    "vnni": {"avx2", "f16c", "avx512f", "avx512_vnni"},  # e.g. Cascade Lake and later
}


def cpu_override() -> str | None:
    """The preset named by EDGEKIT_PROBE_CPU, or None when unset."""
    from edge_agent.errors import BadInputError

    name = os.environ.get(PROBE_CPU_ENV, "").strip().lower()
    if not name:
        return None
    if name not in CPU_PRESETS:
        raise BadInputError(
            f"{PROBE_CPU_ENV}={name!r} is not a CPU preset",
            hint=f"one of {', '.join(sorted(CPU_PRESETS))}, or unset it to probe this machine",
        )
    return name


def probe() -> dict[str, Any]:
    """This machine's profile, in the same shape as a target profile's hardware section."""
    cpu = _cpuinfo()
    arch = greengrass_architecture()
    override = cpu_override()
    if override:
        cpu = {"model": f"x86-64 {override} ({PROBE_CPU_ENV}={override})"}
        cpu["flags"] = CPU_PRESETS[override]
        arch = "amd64"
    return {
        "platform": {
            "os": greengrass_os(),
            "architecture": arch,
            "architecture.detail": platform.machine(),
        },
        "cpu": {
            "model": cpu["model"],
            "physical_cores": physical_cores(),
            "logical_cores": os.cpu_count(),
            "usable_cores": usable_cpus(),
            "features": isa_features(cpu["flags"]),
            **({"probe_override": override} if override else {}),
        },
        "memory_bytes": memory_bytes(),
        "gpus": gpus(),
        "onnxruntime": onnxruntime_info(),
        "os": {"system": platform.system(), "release": platform.release()},
        "python": platform.python_version(),
    }
