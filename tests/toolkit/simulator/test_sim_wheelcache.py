"""The shared wheel cache: pins read from a component's artifacts, wheels rebuilt from installed
distributions that pip really installs with --no-index, a read-only folder reused across runs."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import zipfile

import pytest

from edgekit.toolkit.simulator import wheelcache as wc


def test_pins_follow_markers_and_skip_comments(tmp_path):
    text = (
        "# the agent's runtime\n"
        "numpy==2.4.6\n"
        'onnxruntime==1.32.0 ; platform_machine == "no-such-cpu"\n'
        "packaging==26.4  # via onnxruntime\n"
        "--no-index\n"
        "loose>=1.0\n"
    )
    assert [str(p) for p in wc.parse_pins(text)] == ["numpy==2.4.6", "packaging==26.4"]
    art = tmp_path / "artifacts" / "com.x" / "1.0.0"
    art.mkdir(parents=True)
    with zipfile.ZipFile(art / "agent.zip", "w") as zf:
        zf.writestr("requirements.txt", "awscrt==0.36.1\n")
        zf.writestr("edge_agent/__init__.py", "")
    (art / "requirements-extra.txt").write_text("Flat_Buffers==25.12.19\n")
    pins = wc.pins_in_artifacts(tmp_path / "artifacts")
    assert [str(p) for p in pins] == ["awscrt==0.36.1", "flat-buffers==25.12.19"]


def test_rebuilt_wheel_installs_offline_and_imports(tmp_path):
    dist = md.distribution("packaging")
    cache = tmp_path / "cache"
    report = wc.fill(cache, [wc.Pin("packaging", dist.version)], allow_download=False)
    assert report.rebuilt == [f"packaging=={dist.version}"] and not report.missing
    (wheel,) = cache.glob("*.whl")
    assert wheel.name == f"packaging-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        record = zf.read(f"packaging-{dist.version}.dist-info/RECORD").decode()
    assert not any(n.endswith(".pyc") or "INSTALLER" in n for n in names)
    assert f"packaging-{dist.version}.dist-info/METADATA" in names
    assert "packaging/version.py,sha256=" in record
    # pip checks every file against RECORD while installing: a wrong hash fails here
    target = tmp_path / "site"
    env = {**os.environ, **wc.pip_env(cache)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            f"packaging=={dist.version}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        [sys.executable, "-c", "import packaging, sys; print(packaging.__file__)"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": os.environ["PATH"]},
    )
    assert check.stdout.strip().startswith(str(target)), check


def test_cache_is_reused_read_only_and_reports_what_it_cannot_serve(tmp_path):
    cache = tmp_path / "cache"
    pin = wc.Pin("packaging", md.distribution("packaging").version)
    wc.fill(cache, [pin], allow_download=False)
    assert cache.stat().st_mode & 0o777 == 0o555
    again = wc.fill(
        cache,
        [pin, wc.Pin("packaging", "0.0.1"), wc.Pin("no-such-dist", "1.0")],
        allow_download=False,
    )
    assert again.reused == [str(pin)] and not again.rebuilt
    # an installed version that differs from the pin is never passed off as the pinned one
    assert again.missing == ["packaging==0.0.1", "no-such-dist==1.0"]
    assert len(list(cache.glob("*.whl"))) == 1


def test_wheel_tags_are_compressed_or_supported():
    assert wc._wheel_tag("Tag: py2-none-any\nTag: py3-none-any\n") == "py2.py3-none-any"
    tags = "Tag: cp311-abi3-manylinux_2_17_x86_64\nTag: cp311-abi3-manylinux2014_x86_64\n"
    assert wc._wheel_tag(tags) == "cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64"
    with pytest.raises(Exception, match="no Tag"):
        wc._wheel_tag("Wheel-Version: 1.0\n")
