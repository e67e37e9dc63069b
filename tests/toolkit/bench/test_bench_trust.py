"""No code runs from a bundle without consent: bench's native baseline and a tampered lineage.

The attacker controls manifest.json, so a tampered lineage names its own factory and records
that factory's own sha256. Without --trust-code nothing it names is imported; with it, the
module must still have the recorded digest. `inspect` never imports anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.hashing import sha256_file
from edgekit.export.sources import NotTrusted, load_recorded

EDGEKIT = str(Path(sys.executable).parent / "edgekit")

EVIL = """\
from pathlib import Path
Path({marker!r}).write_text("imported")


def make():
    Path({marker!r}).write_text("called")
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True).frame
    return Ridge().fit(frame.drop(columns=["target"]), frame["target"])
"""


def _evil_module(folder: Path, marker: Path) -> Path:
    evil = folder / "evil.py"
    evil.write_text(EVIL.format(marker=str(marker)))
    return evil


def _tamper_lineage(bundle: Path, source: dict) -> None:
    """What an attacker does: edit manifest.json by hand (no edgekit involved)."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["lineage"]["source"] = source
    path.write_text(json.dumps(manifest, indent=2))


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EDGEKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=os.environ
    )


def _bench(cwd: Path, bundle: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = _run(
        "bench", bundle, "--iterations", "20", "--warmup", "2", "--no-save", "--json",
        "-o", "report", *extra, cwd=cwd,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done, json.loads(done.stdout)


def _native_reason(doc: dict) -> str:
    reasons = [s["reason"] for s in doc["skipped"] if s["what"] == "native baseline"]
    assert len(reasons) == 1, doc["skipped"]
    return reasons[0]


@pytest.fixture
def tampered(copy_bundle, regression_bundle, tmp_path: Path) -> tuple[Path, Path, Path]:
    bundle = copy_bundle(regression_bundle)
    marker = tmp_path / "evil-ran"
    evil = _evil_module(tmp_path, marker)
    _tamper_lineage(
        bundle,
        {"kind": "factory", "factory": f"{evil}:make", "path": str(evil),
         "sha256": sha256_file(evil)},
    )  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    return bundle, marker, work


def test_a_tampered_factory_never_runs_without_consent(tampered) -> None:
    bundle, marker, work = tampered
    done, doc = _bench(work, os.path.relpath(bundle, work))
    assert not marker.exists(), "the evil factory ran"
    assert doc["records"] and all(r["system"] == "onnxruntime" for r in doc["records"])
    reason = _native_reason(doc)
    assert "--trust-code" in reason and "evil.py:make" in reason
    text = _run("bench", os.path.relpath(bundle, work), "--iterations", "20", "--no-save",
                "-o", "report2", cwd=work)  # fmt: skip
    assert (
        text.returncode == 0 and "native baseline" in text.stdout and "--trust-code" in text.stdout
    )
    assert not marker.exists()


def test_inspect_never_imports_from_the_bundle(tampered) -> None:
    bundle, marker, work = tampered
    done = _run("inspect", os.path.relpath(bundle, work), cwd=work)
    assert done.returncode == 0, done.stderr
    assert "every digest verified" in done.stdout
    doc = json.loads(_run("inspect", os.path.relpath(bundle, work), "--json", cwd=work).stdout)
    assert doc["manifest"]["lineage"]["source"]["factory"].endswith("evil.py:make")  # shown only
    assert not marker.exists()


def test_consent_still_needs_the_recorded_digest(tampered) -> None:
    bundle, marker, work = tampered
    manifest = json.loads((bundle / "manifest.json").read_text())
    evil = Path(manifest["lineage"]["source"]["path"])
    evil.write_text(evil.read_text() + "\n# changed after export\n")
    done, doc = _bench(work, os.path.relpath(bundle, work), "--trust-code")
    assert not marker.exists()
    assert "changed since export" in _native_reason(doc)


def test_consent_with_the_recorded_digest_runs_the_factory(tampered) -> None:
    """The flag is what stands between the manifest and the code: with it, the factory runs."""
    bundle, marker, work = tampered
    done, doc = _bench(work, os.path.relpath(bundle, work), "--trust-code")
    assert marker.read_text() == "called"
    assert any(r["system"] == "native:sklearn" for r in doc["records"])


@pytest.mark.parametrize("kind", ["factory", "pickle", "pt2"])
def test_code_kinds_need_consent(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = _evil_module(tmp_path, marker)
    source = {
        "kind": kind,
        "factory": f"{evil}:make",
        "path": str(evil),
        "sha256": sha256_file(evil),
    }
    with pytest.raises(NotTrusted, match="--trust-code"):
        load_recorded(source)
    assert not marker.exists()


def test_a_source_without_a_recorded_digest_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = _evil_module(tmp_path, marker)
    with pytest.raises(NotTrusted, match="no sha256"):
        load_recorded({"kind": "factory", "factory": f"{evil}:make"}, trust_code=True)
    assert not marker.exists()


def test_a_dotted_factory_is_checked_before_its_package_is_imported(
    tmp_path: Path, monkeypatch
) -> None:
    marker = tmp_path / "package-ran"
    pkg = tmp_path / "site" / "evilpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('init')\n")
    (pkg / "mod.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    source = {"kind": "factory", "factory": "evilpkg.mod:make", "sha256": "0" * 64}
    with pytest.raises(NotTrusted, match="changed since export"):
        load_recorded(source, trust_code=True)
    assert not marker.exists() and "evilpkg" not in sys.modules

    source["sha256"] = sha256_file(pkg / "mod.py")
    loaded = load_recorded(source, trust_code=True)
    assert marker.read_text() == "called" and loaded.kind == "factory"


def test_export_records_the_factory_module_digest(regression_bundle: Path) -> None:
    source = json.loads((regression_bundle / "manifest.json").read_text())["lineage"]["source"]
    assert source["kind"] == "factory"
    assert Path(source["path"]).is_absolute()
    assert source["sha256"] == sha256_file(source["path"])


def test_a_consented_pickle_loads_only_with_its_recorded_digest(tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import Ridge

    path = tmp_path / "model.joblib"
    joblib.dump(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]), path)
    source = {"kind": "pickle", "path": str(path), "sha256": sha256_file(path)}
    assert isinstance(load_recorded(source, trust_code=True).obj, Ridge)
    with pytest.raises(NotTrusted, match="changed since export"):
        load_recorded({**source, "sha256": "f" * 64}, trust_code=True)


def test_an_unknown_source_kind_is_skipped_with_the_reason() -> None:
    with pytest.raises(NotTrusted, match="no loadable source"):
        load_recorded({"kind": "shell", "sha256": "0" * 64}, trust_code=True)
