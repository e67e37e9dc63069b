"""Resolve SOURCE (a model file or a factory reference) into a live model object.

Loading a pickle runs arbitrary code, so joblib/pickle files need an explicit
`trust_pickle`; skops files are loaded with only scikit-learn, numpy and scipy types trusted.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edge_agent.hashing import sha256_file

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TRUSTED_SKOPS_PREFIXES = ("sklearn.", "numpy.", "scipy.", "collections.")
_FACTORY = re.compile(r"^(?P<module>[^:]+):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass
class LoadedSource:
    obj: Any
    kind: str  # "skops", "pickle", "pt2", "onnx", "factory"
    info: dict[str, Any] = field(default_factory=dict)


def _file_info(path: Path, kind: str) -> dict[str, Any]:
    return {"kind": kind, "path": str(path), "sha256": sha256_file(path)}


def load_source(source: str, *, trust_pickle: bool = False) -> LoadedSource:
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in (".skops", ".pt2", ".onnx", *PICKLE_SUFFIXES):
        if not path.is_file():
            raise BadInputError(f"model file {path} does not exist")
        loader = {".skops": _load_skops, ".pt2": _load_pt2, ".onnx": _load_onnx_file}.get(suffix)
        if loader is None:
            return _load_pickle(path, trust_pickle)
        return loader(path)
    match = _FACTORY.match(source)
    if match and not path.is_file():
        return _load_factory(match["module"], match["func"])
    raise BadInputError(
        f"cannot tell what model {source!r} is",
        hint="give a .skops, .joblib/.pkl, .pt2 or .onnx file, or a factory as "
        "package.module:function or path/to/file.py:function",
    )


def _trusted_skops_type(name: str) -> bool:
    """scikit-learn, numpy and scipy names, and builtin *types* (never builtin functions
    such as eval or exec, which a FunctionTransformer could call)."""
    if name.startswith(TRUSTED_SKOPS_PREFIXES):
        return True
    module, _, attr = name.rpartition(".")
    if module == "builtins":
        import builtins

        return isinstance(getattr(builtins, attr, None), type)
    return False


def _load_skops(path: Path) -> LoadedSource:
    import zipfile

    import skops.io as sio

    if not zipfile.is_zipfile(path):
        raise BadInputError(f"{path} is not a skops file (not a zip archive)")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises a variety of errors on a damaged file
        raise BadInputError(f"cannot read skops file {path}: {exc}") from exc
    refused = [t for t in untrusted if not _trusted_skops_type(t)]
    if refused:
        raise BadInputError(
            f"skops file {path} contains types outside scikit-learn/numpy/scipy: {', '.join(refused)}",
            hint="edgekit only loads skops files made of scikit-learn objects; use a factory for custom code",
        )
    try:
        obj = sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise BadInputError(f"cannot load skops file {path}: {type(exc).__name__}: {exc}") from exc
    return LoadedSource(obj, "skops", _file_info(path, "skops"))


def _load_pickle(path: Path, trust_pickle: bool) -> LoadedSource:
    if not trust_pickle:
        raise BadInputError(
            f"{path} is a pickle/joblib file: loading it runs any code it contains",
            hint="pass --trust-pickle only if you made the file yourself, or save the model with skops",
        )
    import joblib

    try:
        obj = joblib.load(path)
    except Exception as exc:
        raise BadInputError(
            f"{path} is not a model saved with joblib or pickle: {_what_it_holds(path)}",
            hint="give the file that joblib.dump(model, path) wrote for a fitted estimator, "
            "or save the model with skops.io.dump",
        ) from exc
    return LoadedSource(obj, "pickle", _file_info(path, "pickle"))


def _what_it_holds(path: Path) -> str:
    """A plain description of a file that failed to unpickle, instead of the unpickler's
    internals ("invalid load key 'h'")."""
    with open(path, "rb") as fh:
        head = fh.read(256)
    if not head:
        return "the file is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        return f"it holds text ({first!r}), not a pickled model"
    return f"it is not a pickle stream (it starts with {head[:8]!r}) or it is truncated"


def _load_pt2(path: Path) -> LoadedSource:
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        raise BadInputError(f"{path} is not a saved ExportedProgram (.pt2 is a zip archive)")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise BadInputError(f"cannot load ExportedProgram {path}: {exc}") from exc
    return LoadedSource(program, "pt2", _file_info(path, "pt2"))


def _load_onnx_file(path: Path) -> LoadedSource:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise BadInputError(f"{path} is not an ONNX model: {exc}") from exc
    if model.ir_version == 0 or not model.HasField("graph"):  # protobuf parses "" as a message
        raise BadInputError(f"{path} is not an ONNX model (no IR version or graph)")
    return LoadedSource(model, "onnx", {**_file_info(path, "onnx"), "dir": str(path.parent)})


def _load_factory(module_ref: str, func_name: str) -> LoadedSource:
    if module_ref.endswith(".py"):
        file = Path(module_ref)
        if not file.is_file():
            raise BadInputError(f"factory file {file} does not exist")
        spec = importlib.util.spec_from_file_location(f"edgekit_factory_{file.stem}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise BadInputError(f"importing {file} failed: {type(exc).__name__}: {exc}") from exc
        origin = file
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise BadInputError(
                f"cannot import module {module_ref!r}: {exc}",
                hint="check the name and that the package is on PYTHONPATH",
            ) from exc
        origin = Path(module.__file__) if getattr(module, "__file__", None) else None
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        raise BadInputError(f"{module_ref} has no function {func_name!r}")
    try:
        obj = func()
    except Exception as exc:
        raise BadInputError(
            f"factory {module_ref}:{func_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    info = {"kind": "factory", "factory": f"{module_ref}:{func_name}"}
    if origin is not None and origin.is_file():
        info.update(path=str(origin), sha256=sha256_file(origin))
    return LoadedSource(obj, "factory", info)
