"""SOURCE resolution: skops (safe), pickle only when trusted, factories, and files that lie."""

from __future__ import annotations

import builtins
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from edge_agent.errors import BadInputError
from edgekit.export.sources import load_source

FACTORIES = Path(__file__).parents[1] / "factories.py"


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    return LogisticRegression().fit(x, x[:, 0] > 0)


def test_skops_file(fitted, tmp_path: Path):
    sio.dump(fitted, tmp_path / "m.skops")
    loaded = load_source(str(tmp_path / "m.skops"))
    assert loaded.kind == "skops" and isinstance(loaded.obj, LogisticRegression)
    assert loaded.info["sha256"] and loaded.info["path"].endswith("m.skops")


def test_skops_with_a_builtin_function_is_refused(tmp_path: Path):
    model = make_pipeline(FunctionTransformer(builtins.exec))
    sio.dump(model, tmp_path / "evil.skops")
    with pytest.raises(BadInputError, match="builtins.exec"):
        load_source(str(tmp_path / "evil.skops"))


def test_pickle_needs_trust(fitted, tmp_path: Path):
    for name in ("m.joblib", "m.pkl"):
        path = tmp_path / name
        joblib.dump(fitted, path) if name.endswith("joblib") else path.write_bytes(
            pickle.dumps(fitted)
        )
        with pytest.raises(BadInputError, match="runs any code") as info:
            load_source(str(path))
        assert (
            "`trust_pickle`" in info.value.hint and "skops" in info.value.hint
        )  # CLI: --trust-pickle
        loaded = load_source(str(path), trust_pickle=True)
        assert loaded.kind == "pickle" and isinstance(loaded.obj, LogisticRegression)


def test_trusted_pickle_that_is_not_a_pickle(tmp_path: Path):
    """A text file named .joblib: what was expected and what the file holds, not the
    unpickler's internals ("invalid load key")."""
    (tmp_path / "m.joblib").write_text("hello, I am a model card\n")
    with pytest.raises(BadInputError) as caught:
        load_source(str(tmp_path / "m.joblib"), trust_pickle=True)
    message = str(caught.value)
    assert "is not a model saved with joblib or pickle" in message
    assert "holds text ('hello, I am a model card')" in message
    assert "load key" not in message and "joblib.dump" in message
    (tmp_path / "b.pkl").write_bytes(bytes(range(200, 256)))
    with pytest.raises(BadInputError, match="not a pickle stream"):
        load_source(str(tmp_path / "b.pkl"), trust_pickle=True)
    (tmp_path / "e.pkl").write_bytes(b"")
    with pytest.raises(BadInputError, match="the file is empty"):
        load_source(str(tmp_path / "e.pkl"), trust_pickle=True)


def test_factories():
    loaded = load_source(f"{FACTORIES}:diabetes_ridge")
    assert loaded.kind == "factory" and loaded.info["factory"].endswith(":diabetes_ridge")
    assert loaded.info["path"] == str(FACTORIES)
    module = load_source("edgekit.toolkit.demo.models:digits_cnn")
    assert type(module.obj).__name__ == "Sequential"
    assert module.info["path"].endswith("edgekit/toolkit/demo/models.py")


@pytest.mark.parametrize(
    "source, message",
    [
        ("no_such_pkg.models:make", "cannot import module 'no_such_pkg.models'"),
        ("edgekit.toolkit.demo.models:no_such_function", "has no function 'no_such_function'"),
        ("missing/file.py:make", "factory file missing/file.py does not exist"),
        ("model.h5", "cannot tell what model 'model.h5' is"),
        ("missing.skops", "model file missing.skops does not exist"),
    ],
)
def test_bad_sources(source: str, message: str):
    with pytest.raises(BadInputError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_source(source)


def test_torch_save_files_say_what_they_are_and_the_way_in(tmp_path: Path):
    """A .pt/.pth (what torch users have) got "cannot tell what model it is"; it now says
    whether it is TorchScript or torch.save weights, and how to hand the model over."""
    import torch

    model = torch.nn.Linear(3, 2)
    torch.jit.script(model).save(tmp_path / "scripted.pt")
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    with pytest.raises(BadInputError, match="is a TorchScript archive") as info:
        load_source(str(tmp_path / "scripted.pt"))
    assert ".pt2" in info.value.hint and "factory" in info.value.hint
    with pytest.raises(BadInputError, match="is a torch.save file") as info:
        load_source(str(tmp_path / "weights.pth"))
    assert "--weights" in info.value.hint
    (tmp_path / "text.pt").write_text("not a zip")
    with pytest.raises(BadInputError, match="is a torch.save file"):
        load_source(str(tmp_path / "text.pt"))


def test_a_factory_that_raises(tmp_path: Path):
    (tmp_path / "f.py").write_text("def make():\n    raise ValueError('no data here')\n")
    with pytest.raises(BadInputError, match="factory .*:make failed: ValueError: no data here"):
        load_source(f"{tmp_path / 'f.py'}:make")
    (tmp_path / "g.py").write_text("import not_installed_anywhere\n")
    with pytest.raises(BadInputError, match="importing .*g.py failed"):
        load_source(f"{tmp_path / 'g.py'}:make")


@pytest.mark.parametrize("suffix", [".skops", ".pt2"])
def test_model_files_that_are_not_zip_archives(suffix: str, tmp_path: Path):
    path = tmp_path / f"model{suffix}"
    path.write_text("plain text, not an archive")
    with pytest.raises(BadInputError, match="is not a"):
        load_source(str(path))


def test_a_zip_that_is_not_a_skops_file(tmp_path: Path):
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(BadInputError, match="cannot read skops file"):
        load_source(str(path))
