"""Bundle: digests catch every changed or missing file; paths cannot leave the folder;
every save validates the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BundleError, IntegrityError


@pytest.fixture
def bundle(regression_bundle: Path, copy_bundle) -> Bundle:
    return Bundle.open(copy_bundle(regression_bundle))


def test_a_fresh_bundle_verifies(bundle: Bundle):
    bundle.verify()
    assert set(bundle.expected_files()) == {"fp32.onnx", "baseline.json", "samples.npz"}


def test_modified_resized_and_missing_files_are_named(bundle: Bundle):
    onnx_file = bundle.path / "fp32.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    onnx_file.write_bytes(bytes(data))
    with open(bundle.path / "baseline.json", "a") as fh:
        fh.write(" ")
    (bundle.path / "samples.npz").unlink()
    problems = {p.file: p.problem for p in bundle.digest_problems()}
    assert problems == {"fp32.onnx": "modified", "baseline.json": "size", "samples.npz": "missing"}
    with pytest.raises(IntegrityError) as info:
        bundle.verify()
    assert info.value.exit_code == 1
    for name in problems:
        assert name in info.value.message
    assert len(info.value.details) == 3
    with pytest.raises(IntegrityError, match="samples.npz: missing"):
        bundle.load_samples()
    with pytest.raises(IntegrityError, match="fp32.onnx"):
        bundle.verify_variant("fp32")


@pytest.mark.parametrize("name", ["../escape.onnx", "/etc/passwd", "sub/x.onnx", "", "a\\b"])
def test_file_names_cannot_leave_the_bundle(bundle: Bundle, name: str):
    with pytest.raises(BundleError, match="not a plain file name"):
        bundle.file_path(name)


def test_add_variant_records_digest_and_save_validates(bundle: Bundle, tmp_path: Path):
    copy = tmp_path / "other.onnx"
    copy.write_bytes((bundle.path / "fp32.onnx").read_bytes())
    entry = bundle.add_variant("int8", copy, {"precision": "int8", "quantization": {"m": 1}})
    assert entry["file"] == "int8.onnx" and entry["sha256"] == bundle.variant("fp32")["sha256"]
    with pytest.raises(BundleError, match="already has a variant 'int8'"):
        bundle.add_variant("int8", copy, {"precision": "int8"})
    bundle.save()
    reopened = Bundle.open(bundle.path)
    assert "int8" in reopened.variants
    reopened.verify()


def test_save_refuses_a_manifest_that_breaks_the_schema(bundle: Bundle):
    before = (bundle.path / "manifest.json").read_bytes()
    bundle.variants["fp32"]["precision"] = "fp64"
    with pytest.raises(BundleError, match=r"\$\.variants\.fp32\.precision"):
        bundle.save()
    assert (bundle.path / "manifest.json").read_bytes() == before  # nothing written
    assert sorted(p.name for p in bundle.path.iterdir() if p.name.startswith(".")) == []


def test_unknown_variant_is_named(bundle: Bundle):
    with pytest.raises(BundleError, match="no variant 'fp16' \\(it has: fp32\\)"):
        bundle.variant("fp16")


def test_samples_and_baseline_load(bundle: Bundle):
    samples = bundle.load_samples()
    assert set(bundle.sample_inputs()) == {"X"}
    assert "__expected__/variable" in samples
    assert bundle.baseline()["schema_version"] == 1
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["samples"] = None
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="stores no sample inputs"):
        Bundle.open(bundle.path).load_samples()
