"""A shared, read-only wheel cache for simulated devices, so a component's Install runs offline.

A component packaged without `--wheelhouse` installs its pinned requirements from a package
index. Simulated devices have no index: like a real device with a local mirror configured in the
nucleus's environment, they get `PIP_NO_INDEX=1` and `PIP_FIND_LINKS=<cache>` and pip installs
for real from local wheels. (A component that ships a wheelhouse passes `--no-index --find-links`
itself, and the command line wins over the environment.)

The cache is filled once, before any device starts, from the pins in the component's artifacts
(`requirements*.txt` inside its ZIP artifacts). A pin is served by, in order: a wheel already in
the cache; the distribution installed in this interpreter at exactly that version, rebuilt into a
wheel (the installed files, the original WHEEL tags and metadata, a fresh RECORD; bytecode and
generated console scripts left out, pip makes them again); `pip download` from the index.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name

from edge_agent.errors import BadInputError

_SKIP_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return Path(base) / "edgekit" / "wheels" / tag


def pip_env(cache: Path) -> dict[str, str]:
    """What a device's nucleus environment carries to point pip at the local cache."""
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(cache),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def parse_pins(text: str) -> list[Pin]:
    """`name==version` lines whose markers hold on this host (the simulated devices' CPU)."""
    pins = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        exact = [s.version for s in req.specifier if s.operator in ("==", "===")]
        if exact:
            pins.append(Pin(canonicalize_name(req.name), exact[0]))
    return pins


def pins_in_artifacts(folder: Path) -> list[Pin]:
    """Pins from every requirements*.txt inside the ZIP artifacts (and loose files) of a folder."""
    found: set[Pin] = set()  # several component versions may pin different versions
    for path in sorted(folder.rglob("*")):
        texts: list[str] = []
        if path.suffix == ".zip" and path.is_file():
            with zipfile.ZipFile(path) as zf:
                texts = [
                    zf.read(n).decode("utf-8", "replace")
                    for n in zf.namelist()
                    if re.fullmatch(r"(.*/)?requirements[^/]*\.txt", n)
                ]
        elif re.fullmatch(r"requirements[^/]*\.txt", path.name) and path.is_file():
            texts = [path.read_text("utf-8", "replace")]
        for text in texts:
            found.update(parse_pins(text))
    return sorted(found, key=lambda p: (p.name, p.version))


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _wheel_tag(wheel_meta: str) -> str:
    """The file name's tag part: every WHEEL tag, compressed (`py2.py3-none-any`) when they form
    a product, else the first one this interpreter supports."""
    tags = [ln.split(":", 1)[1].strip() for ln in wheel_meta.splitlines() if ln.startswith("Tag:")]
    if not tags:
        raise BadInputError("installed distribution has no Tag in its WHEEL file")
    split = [t.split("-") for t in tags]
    sets = [sorted({s[i] for s in split}) for i in range(3)]
    if len(sets[0]) * len(sets[1]) * len(sets[2]) == len(set(tags)):
        return "-".join(".".join(s) for s in sets)
    supported = {str(t) for t in sys_tags()}
    return next((t for t in tags if t in supported), tags[0])


def _installed(pin: Pin) -> md.Distribution | None:
    try:
        dist = md.distribution(pin.name)
    except md.PackageNotFoundError:
        return None
    return dist if dist.version == pin.version and dist.read_text("WHEEL") else None


def rebuild_wheel(dist: md.Distribution, dest: Path) -> Path:
    """A wheel of an installed distribution: its files as installed, its WHEEL tags, new RECORD.

    Uncompressed (ZIP_STORED): the cache is local, and storing is several times faster to write
    and to install than deflating 100+ MB of shared libraries."""
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    tag = _wheel_tag(dist.read_text("WHEEL") or "")
    target = dest / f"{name}-{dist.version}-{tag}.whl"
    files = [f for f in dist.files or [] if not str(f).startswith("..")]
    dist_info = next(
        (str(f).split("/", 1)[0] for f in files if str(f).endswith(".dist-info/METADATA")), None
    )
    if dist_info is None:
        raise BadInputError(f"{name} {dist.version}: installed without a .dist-info/METADATA")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".whl.partial", dir=dest)
    os.close(fd)
    record: list[str] = []
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for f in sorted(files, key=str):
                rel = str(f)
                parts = rel.split("/")
                if "__pycache__" in parts or rel.endswith(".pyc"):
                    continue
                if parts[0] == dist_info and parts[-1] in _SKIP_DIST_INFO and len(parts) == 2:
                    continue
                path = Path(str(dist.locate_file(f)))
                if not path.is_file():
                    continue
                data = path.read_bytes()
                info = zipfile.ZipInfo(rel, _FIXED_TIME)
                info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
                zf.writestr(info, data)
                record.append(f"{rel},{_record_hash(data)},{len(data)}")
            record.append(f"{dist_info}/RECORD,,")
            zf.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", _FIXED_TIME), "\n".join(record))
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _download(pin: Pin, dest: Path, timeout_s: float = 600) -> Path | None:
    with tempfile.TemporaryDirectory(prefix=".dl-", dir=dest) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "-d", tmp, str(pin),
        ]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            return None
        target = dest / wheels[0].name
        os.replace(wheels[0], target)
        return target


def _cached(cache: Path, pin: Pin) -> Path | None:
    for w in cache.glob("*.whl"):
        parts = w.name.split("-")
        if len(parts) >= 3 and canonicalize_name(parts[0]) == pin.name and parts[1] == pin.version:
            return w
    return None


@dataclass
class CacheReport:
    folder: Path
    reused: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "folder": str(self.folder),
            "reused": self.reused,
            "rebuilt_from_installed": self.rebuilt,
            "downloaded": self.downloaded,
            "missing": self.missing,
        }


def fill(cache: Path, pins: list[Pin], *, allow_download: bool = True) -> CacheReport:
    """Make sure the cache holds a wheel for every pin; the folder is left read-only."""
    cache.mkdir(parents=True, exist_ok=True)
    report = CacheReport(cache)
    todo = []
    for pin in pins:
        (report.reused.append(str(pin)) if _cached(cache, pin) else todo.append(pin))
    if not todo:
        return report
    cache.chmod(0o755)
    try:
        for pin in todo:
            dist = _installed(pin)
            if dist is not None:
                rebuild_wheel(dist, cache)
                report.rebuilt.append(str(pin))
            elif allow_download and _download(pin, cache) is not None:
                report.downloaded.append(str(pin))
            else:
                report.missing.append(str(pin))
    finally:
        cache.chmod(0o555)  # devices share it read-only
    return report
