"""One loader checks every bundle for every command: plain file names, no `..`, no symbolic
links, baseline and samples vouched for by a digest, and samples read without pickle.

A tampered manifest is written by hand here, as an attacker would, and every command that
reads a bundle (serve, batch, bench, evaluate, inspect) must refuse it before using it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError, BundleError
from edge_agent.hashing import sha256_file

BIN = Path(sys.executable).parent


def _edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def _outside_entry(bundle: Path) -> None:
    """A `files` entry that reaches out of the bundle, with a correct digest (the attacker
    wrote both): `package` would have zipped the secret into the device artifact."""
    secret = bundle.parent / "secret.txt"
    secret.write_text("ssh key or the like")
    entry = {"sha256": sha256_file(secret), "bytes": secret.stat().st_size}
    _edit_manifest(bundle, lambda m: m["files"].update({"../secret.txt": entry}))


def _symlink_entry(bundle: Path) -> None:
    """baseline.json swapped for a link to a copy with the same bytes: digests still match."""
    real = bundle.parent / "baseline-copy.json"
    real.write_bytes((bundle / "baseline.json").read_bytes())
    (bundle / "baseline.json").unlink()
    (bundle / "baseline.json").symlink_to(real)


def _stray_symlink(bundle: Path) -> None:
    (bundle / "notes.txt").symlink_to("/etc/hostname")


TAMPERS = {"dotdot": _outside_entry, "symlink": _symlink_entry, "stray-link": _stray_symlink}
REFUSALS = {
    "dotdot": "not a plain file name",
    "symlink": "symbolic link",
    "stray-link": "symbolic link",
}


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["files"].update({"../x": {"sha256": "0" * 64, "bytes": 1}}),
        lambda m: m["files"].update({"/etc/passwd": {"sha256": "0" * 64, "bytes": 1}}),
        lambda m: m["variants"]["fp32"].update(file="../fp32.onnx"),
        lambda m: m.update(baseline="../baseline.json"),
        lambda m: m.update(samples="sub/samples.npz"),
        lambda m: m["files"].update({"manifest.sig": {"sha256": "0" * 64, "bytes": 1}}),
    ],
    ids=["files-dotdot", "files-absolute", "variant-dotdot", "baseline", "samples", "reserved"],
)
def test_open_refuses_names_that_leave_the_bundle(change, copy_bundle, regression_bundle):
    bundle = copy_bundle(regression_bundle)
    _edit_manifest(bundle, change)
    with pytest.raises(BundleError, match="plain file name|reserved|does not match"):
        Bundle.open(bundle)


def test_open_refuses_a_baseline_without_a_digest(copy_bundle, regression_bundle):
    bundle = copy_bundle(regression_bundle)
    _edit_manifest(bundle, lambda m: m["files"].pop("baseline.json"))
    with pytest.raises(BundleError, match="no digest vouches"):
        Bundle.open(bundle)


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_open_refuses_symlinks_and_traversal(tamper, copy_bundle, regression_bundle):
    bundle = copy_bundle(regression_bundle)
    TAMPERS[tamper](bundle)
    with pytest.raises(BundleError, match=REFUSALS[tamper]):
        Bundle.open(bundle)


def test_a_linked_manifest_is_refused(copy_bundle, regression_bundle, tmp_path):
    bundle = copy_bundle(regression_bundle)
    moved = tmp_path / "elsewhere.json"
    (bundle / "manifest.json").rename(moved)
    (bundle / "manifest.json").symlink_to(moved)
    with pytest.raises(BundleError, match="symbolic link"):
        Bundle.open(bundle)


def _command(name: str, bundle: str, tmp: Path) -> list[str]:
    if name == "serve":
        return [str(BIN / "edge-agent"), "serve", "--bundle", bundle, "--port", "-1",
                "--transport", "none", "--outbox", str(tmp / "o.sqlite")]  # fmt: skip
    if name == "batch":
        return [str(BIN / "edge-agent"), "batch", "--bundle", bundle, "--input",
                str(tmp / "in.npz"), "-o", str(tmp / "out.npz"), "--no-progress"]  # fmt: skip
    if name == "bench":
        return [str(BIN / "edgekit"), "bench", bundle, "--iterations", "5", "--no-save",
                "-o", str(tmp / "rep")]  # fmt: skip
    if name == "evaluate":
        return [str(BIN / "edgekit"), "evaluate", bundle, "--data", str(tmp / "data.csv")]
    return [str(BIN / "edgekit"), "inspect", bundle]


@pytest.mark.parametrize("tamper", list(TAMPERS))
@pytest.mark.parametrize("command", ["serve", "batch", "bench", "evaluate", "inspect"])
def test_every_command_refuses_a_tampered_bundle(
    command, tamper, copy_bundle, regression_bundle, regression_data, tmp_path
):
    bundle = copy_bundle(regression_bundle)
    TAMPERS[tamper](bundle)
    work = tmp_path / "work"
    work.mkdir()
    np.savez(work / "in.npz", X=np.zeros((2, 10), np.float32))
    (work / "data.csv").write_bytes(Path(regression_data).read_bytes())
    done = subprocess.run(
        _command(command, os.path.relpath(bundle, work), work),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert REFUSALS[tamper] in " ".join((done.stdout + done.stderr).split())
    assert "Traceback" not in done.stderr
    assert not (work / "rep").exists() and not (work / "out.npz").exists()


def test_pickled_samples_are_refused_even_with_a_matching_digest(
    copy_bundle, regression_bundle, tmp_path
):
    """The attacker rewrites samples.npz as a pickle and its digest in the manifest."""
    marker = tmp_path / "pickle-ran"
    bundle = copy_bundle(regression_bundle)
    np.savez(bundle / "samples.npz", X=np.array([_Boom(str(marker))], dtype=object))
    entry = {"sha256": sha256_file(bundle / "samples.npz"), "bytes": 0}
    entry["bytes"] = (bundle / "samples.npz").stat().st_size
    _edit_manifest(bundle, lambda m: m["files"].update({"samples.npz": entry}))
    with pytest.raises(BadInputError, match="pickled data"):
        Bundle.open(bundle).load_samples()
    assert not marker.exists()


class _Boom:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))
