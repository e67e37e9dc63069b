"""The manifest's locked read-modify-write: a second writer waits, or fails clearly."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest

from edge_agent import locking
from edge_agent.contracts import manifest as manifest_io
from edge_agent.locking import LockTimeoutError


def _update_in_child(bundle: str, timeout: float, queue) -> None:
    try:
        with manifest_io.update(bundle, timeout=timeout) as manifest:
            manifest.setdefault("selection", {})["child"] = {"variant": "fp32"}
        queue.put("ok")
    except LockTimeoutError as exc:
        queue.put(f"timeout: {exc.message}")


def _child(bundle: Path, timeout: float) -> str:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_update_in_child, args=(str(bundle), timeout, queue))
    proc.start()
    result = queue.get(timeout=120)
    proc.join(60)
    return result


def test_a_second_writer_cannot_enter_while_the_first_holds_the_lock(regression_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(regression_bundle, bundle)
    with manifest_io.update(bundle) as manifest:
        manifest.setdefault("selection", {})["parent"] = {"variant": "fp32"}
        result = _child(bundle, timeout=0.5)
    assert result.startswith("timeout:") and str(bundle) in result
    assert "another edgekit command" in result
    # once released, the child's update lands on top of the parent's: both stay
    assert _child(bundle, timeout=30) == "ok"
    selection = manifest_io.read(bundle)["selection"]
    assert {"parent", "child"} <= set(selection)
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        p.name for p in regression_bundle.iterdir()
    )  # flock on the folder leaves no lock file behind


def test_a_failed_update_writes_nothing(regression_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(regression_bundle, bundle)
    before = (bundle / "manifest.json").read_text()
    with pytest.raises(RuntimeError), manifest_io.update(bundle) as manifest:
        manifest["selection"]["x"] = {"variant": "fp32"}
        raise RuntimeError("stage failed")
    assert (bundle / "manifest.json").read_text() == before
    with locking.locked(bundle, timeout=1):  # and the lock was released
        pass
