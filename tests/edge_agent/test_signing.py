"""Signed bundles: `edgekit keygen`/`sign` on the workstation, `edge-agent --verify-key` on the
device. A good signature serves; a changed manifest, another key or no signature is refused
(exit 1) before anything is loaded; without a verify key `cryptography` is never needed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli import _parser, build_config
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import IntegrityError
from edge_agent.hashing import sha256_file

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def signed(copy_bundle, regression_bundle, tmp_path: Path) -> tuple[Path, Path]:
    """A signed copy of the regression bundle, and the working folder holding keys/."""
    work = tmp_path / "work"
    (work / "keys").mkdir(parents=True)
    bundle = copy_bundle(regression_bundle)
    made = _run("edgekit", "keygen", "keys/dev.pem", cwd=work)
    assert made.returncode == 0, made.stderr
    done = _run("edgekit", "sign", "../bundle", "--key", "keys/dev.pem", "--json", cwd=work)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["key_id"]
    np.savez(work / "in.npz", X=np.zeros((3, 10), np.float32))
    return bundle, work


def _batch(work: Path, key: str | None, env: dict | None = None) -> subprocess.CompletedProcess:
    args = ["edge-agent", "batch", "--bundle", "../bundle", "--input", "in.npz", "-o", "out.npz",
            "--no-progress"]  # fmt: skip
    if key:
        args += ["--verify-key", key]
    return _run(*args, cwd=work, env=env)


def test_keygen_writes_a_private_key_only_its_owner_reads(signed) -> None:
    _bundle, work = signed
    assert stat.S_IMODE((work / "keys" / "dev.pem").stat().st_mode) == 0o600
    assert (work / "keys" / "dev.pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY")
    again = _run("edgekit", "keygen", "keys/dev.pem", cwd=work)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_good_signature_loads(signed) -> None:
    bundle, work = signed
    done = _batch(work, "keys/dev.pub.pem")
    assert done.returncode == 0, done.stderr
    assert (work / "out.npz").is_file()
    shown = _run("edgekit", "inspect", "../bundle", "--verify-key", "keys/dev.pub.pem", cwd=work)
    assert shown.returncode == 0 and "signature verified" in shown.stdout
    unchecked = _run("edgekit", "inspect", "../bundle", "--json", cwd=work)
    doc = json.loads(unchecked.stdout)
    assert doc["signed"] is True and doc["signed_by"] is None


def test_serve_verifies_with_the_key_from_the_environment(signed) -> None:
    bundle, work = signed
    env = {**os.environ, "EDGE_AGENT_VERIFY_KEY": str(work / "keys" / "dev.pub.pem")}
    proc = subprocess.Popen(
        [str(BIN / "edge-agent"), "serve", "--bundle", "../bundle", "--port", "-1",
         "--transport", "none", "--outbox", "o.sqlite"],
        cwd=work, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "ready in" not in line:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
        assert "ready in" in line and "regression" in line, line
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _attacker_swaps_the_model(bundle: Path) -> None:
    """Replace fp32.onnx and fix its digest in the manifest: only the signature catches it."""
    import onnx

    model = bundle / "fp32.onnx"
    proto = onnx.load(str(model))
    proto.doc_string = "the attacker's model"
    onnx.save(proto, str(model))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["variants"]["fp32"].update(sha256=sha256_file(model), bytes=model.stat().st_size)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_a_changed_manifest_is_refused(signed) -> None:
    bundle, work = signed
    _attacker_swaps_the_model(bundle)
    assert _batch(work, None).returncode == 0  # without a key the digests alone are fooled
    for args in (
        ("edge-agent", "serve", "--bundle", "../bundle", "--port", "-1", "--transport", "none",
         "--outbox", "o.sqlite", "--verify-key", "keys/dev.pub.pem"),
        ("edge-agent", "batch", "--bundle", "../bundle", "--input", "in.npz", "-o", "o2.npz",
         "--verify-key", "keys/dev.pub.pem"),
        ("edgekit", "inspect", "../bundle", "--verify-key", "keys/dev.pub.pem"),
    ):  # fmt: skip
        done = _run(*args, cwd=work)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "does not verify" in " ".join((done.stdout + done.stderr).split())
        assert "Traceback" not in done.stderr
    assert not (work / "o2.npz").exists()


def test_another_key_and_a_missing_signature_are_refused(signed) -> None:
    bundle, work = signed
    assert _run("edgekit", "keygen", "keys/other.pem", cwd=work).returncode == 0
    other = _batch(work, "keys/other.pub.pem")
    assert other.returncode == 1 and "signed by key" in other.stderr
    (bundle / "manifest.sig").unlink()
    missing = _batch(work, "keys/dev.pub.pem")
    assert missing.returncode == 1 and "not signed" in missing.stderr
    assert _batch(work, None).returncode == 0  # no key configured: nothing to check


def test_a_bad_key_file_is_bad_input(signed) -> None:
    _bundle, work = signed
    (work / "keys" / "junk.pem").write_text("not a key")
    for key in ("keys/none.pem", "keys/junk.pem", "keys/dev.pem"):  # dev.pem: the private key
        done = _batch(work, key)
        assert done.returncode == 2, (key, done.stderr)


def test_sign_refuses_a_bundle_whose_files_changed(copy_bundle, regression_bundle, tmp_path):
    bundle = copy_bundle(regression_bundle)
    assert _run("edgekit", "keygen", "k.pem", cwd=tmp_path).returncode == 0
    with open(bundle / "baseline.json", "a") as fh:
        fh.write(" ")
    done = _run("edgekit", "sign", "bundle", "--key", "k.pem", cwd=tmp_path)
    assert done.returncode == 1 and "baseline.json" in done.stderr
    assert not (bundle / "manifest.sig").exists()


def test_the_key_as_pem_text_in_greengrass_configuration(signed) -> None:
    bundle, work = signed
    pem = (work / "keys" / "dev.pub.pem").read_text()
    config = build_config(_parser().parse_args(["serve"]), env={}).updated({"verifyKey": pem})
    assert config.verify_key == pem
    assert Bundle.open(bundle, verify_key=config.verify_key).signed_by
    other = build_config(
        _parser().parse_args(["serve"]), env={"EDGE_AGENT_VERIFY_KEY": "keys/x.pem"}
    )
    assert other.verify_key == "keys/x.pem"
    (bundle / "manifest.json").write_bytes((bundle / "manifest.json").read_bytes() + b"\n")
    with pytest.raises(IntegrityError, match="does not verify"):
        Bundle.open(bundle, verify_key=pem)


BLOCKED_CRYPTO = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "cryptography":
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from edge_agent import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_cryptography_is_needed_only_with_a_verify_key(signed) -> None:
    bundle, work = signed
    batch = ["batch", "--bundle", "../bundle", "--input", "in.npz", "-o", "out.npz",
             "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", BLOCKED_CRYPTO, *batch], cwd=work, env=env,
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr
    keyed = subprocess.run(
        [sys.executable, "-c", BLOCKED_CRYPTO, *batch, "--verify-key", "keys/dev.pub.pem"],
        cwd=work, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert keyed.returncode == 2 and "cryptography" in keyed.stderr
