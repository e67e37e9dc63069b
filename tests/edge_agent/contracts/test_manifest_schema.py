"""manifest.json: read errors name the problem, the schema is enforced on read and write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.contracts import manifest
from edge_agent.errors import BundleError


@pytest.fixture
def folder(regression_bundle: Path, copy_bundle) -> Path:
    return copy_bundle(regression_bundle)


def _edit(folder: Path, change) -> None:
    doc = json.loads((folder / "manifest.json").read_text())
    change(doc)
    (folder / "manifest.json").write_text(json.dumps(doc))


def test_read_a_valid_manifest(folder: Path):
    doc = manifest.read(folder)
    assert doc["schema_version"] == manifest.SCHEMA_VERSION
    assert doc["files"]["baseline.json"]["bytes"] > 0


def test_not_a_bundle(tmp_path: Path):
    with pytest.raises(BundleError, match="is not a bundle folder"):
        manifest.read(tmp_path / "nothing")
    with pytest.raises(BundleError, match="has no manifest.json"):
        manifest.read(tmp_path)


def test_broken_json(folder: Path):
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="is not valid JSON"):
        manifest.read(folder)
    (folder / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="must hold a JSON object"):
        manifest.read(folder)


def test_other_schema_version(folder: Path):
    _edit(folder, lambda d: d.update(schema_version=2))
    with pytest.raises(BundleError, match="schema_version 2") as info:
        manifest.read(folder)
    assert "re-export" in info.value.hint


@pytest.mark.parametrize(
    "change, path",
    [
        (lambda d: d.pop("lineage"), "$: 'lineage' is a required property"),
        (lambda d: d.update(task="ranking"), "$.task"),
        (lambda d: d["variants"]["fp32"].update(sha256="xyz"), "$.variants.fp32.sha256"),
        (lambda d: d["signature"]["inputs"][0].update(dtype="complex64"), "$.signature.inputs[0]"),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
)
def test_schema_violations_are_listed_by_path(folder: Path, change, path: str):
    _edit(folder, change)
    with pytest.raises(BundleError) as info:
        manifest.read(folder)
    assert path in info.value.message and info.value.exit_code == 2


def test_write_validates_and_stamps_updated(folder: Path):
    doc = manifest.read(folder)
    manifest.append_history(doc, "test", "pytest", note="x")
    manifest.write(folder, doc)
    again = manifest.read(folder)
    assert again["history"][-1]["stage"] == "test" and again["updated"].endswith("Z")
    doc["name"] = "bad name with spaces"
    with pytest.raises(BundleError, match=r"\$\.name"):
        manifest.write(folder, doc)
    assert manifest.read(folder)["name"] != "bad name with spaces"
