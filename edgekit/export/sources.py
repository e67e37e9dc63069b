"""Resolve SOURCE (a model file or a factory reference) into a live model object.

Loading a pickle runs arbitrary code, so joblib/pickle files need an explicit
`trust_pickle`; skops files are loaded with only scikit-learn, numpy and scipy types trusted.

`load_recorded` rebuilds the model a bundle's lineage names (for bench's native baseline).
The lineage is untrusted input, so code (a factory, a pickle, a .pt2 archive) runs only with the
user's consent (`trust_code`) and only when its file still has the sha256 recorded at export;
the bytes are hashed and then executed from that same read, so nothing can swap them between.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edge_agent.hashing import sha256_bytes, sha256_file
from edgekit.export.modules import module_file, module_from_file, module_from_source

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TORCH_SAVE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")  # torch.save / torch.jit.save files
TRUST_FLAG = "--trust-code"
CODE_KINDS = ("factory", "pickle", "pt2")  # what runs code when loaded
TRUSTED_SKOPS_PREFIXES = ("sklearn.", "numpy.", "scipy.", "collections.")
# functools.partial is a holder: skops lists the function it wraps as a type of its own (a
# partial of posix.system lists posix.system, refused), so trusting the holder trusts nothing
# more. scikit-learn stores one in HistGradientBoosting with categorical_features="from_dtype".
TRUSTED_SKOPS_NAMES = frozenset({"functools.partial"})
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
    if suffix in TORCH_SAVE_SUFFIXES and path.is_file():
        raise _torch_save_file(path)
    raise BadInputError(
        f"cannot tell what model {source!r} is",
        hint="give a .skops, .joblib/.pkl, .pt2 or .onnx file, or a factory as "
        "package.module:function or path/to/file.py:function",
    )


def _torch_save_file(path: Path) -> BadInputError:
    """What a .pt/.pth is (read from its zip listing, nothing unpickled) and the way in: a
    TorchScript archive or torch.save weights name no model edgekit can rebuild safely."""
    try:
        with zipfile.ZipFile(path) as archive:
            scripted = any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        scripted = False
    pt2 = (
        "or save torch.export.export(model, args, dynamic_shapes={'x': {0: "
        "torch.export.Dim('batch')}}) with torch.export.save(program, 'model.pt2')"
    )
    if scripted:
        return BadInputError(
            f"{path} is a TorchScript archive (torch.jit.save); edgekit exports an nn.Module "
            "or a torch.export program, not TorchScript",
            hint="give the module it was scripted from as a factory (file.py:function, with "
            f"--weights for a state_dict), {pt2}",
        )
    return BadInputError(
        f"{path} is a torch.save file (a state_dict or a pickled model): weights alone do not "
        "say which model they fit, and unpickling a model runs code",
        hint=f"give a factory that builds the model and these weights: edgekit export "
        f"file.py:make --weights {path} ... (a state_dict, loaded with weights_only=True), {pt2}",
    )


def _trusted_skops_type(name: str) -> bool:
    """scikit-learn, numpy and scipy names, and builtin *types* (never builtin functions
    such as eval or exec, which a FunctionTransformer could call)."""
    if name.startswith(TRUSTED_SKOPS_PREFIXES) or name in TRUSTED_SKOPS_NAMES:
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
            hint="pass `trust_pickle` only if you made the file yourself, "
            "or save the model with skops",
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
        try:
            module = module_from_file(f"edgekit_factory_{file.stem}", file)
        except Exception as exc:
            raise BadInputError(f"importing {file} failed: {type(exc).__name__}: {exc}") from exc
        origin: Path | None = file
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise BadInputError(
                f"cannot import module {module_ref!r}: {exc}",
                hint="check the name and that the package is on PYTHONPATH",
            ) from exc
        origin = module_file(module)
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
        # absolute, so bench finds the module from any folder; the digest guards it there
        info.update(path=str(origin.resolve()), sha256=sha256_file(origin))
    return LoadedSource(obj, "factory", info)


# -- rebuilding a source recorded in a bundle's lineage ------------------------------------------
class NotTrusted(BadInputError):
    """The lineage names code that may not run here; the message says why."""


def load_recorded(source: dict[str, Any], *, trust_code: bool = False) -> LoadedSource:
    """Rebuild the model recorded in a lineage's `source`, refusing code without consent or
    whose file no longer has the recorded sha256. Nothing runs before both checks pass."""
    kind = source.get("kind")
    if kind not in (*CODE_KINDS, "skops"):
        raise NotTrusted(f"no loadable source in the lineage (kind {kind!r})")
    if kind in CODE_KINDS and not trust_code:
        what = source.get("factory") or source.get("path") or "?"
        raise NotTrusted(
            f"rebuilding the source model would run code the bundle names ({kind} {what})",
            hint=f"pass {TRUST_FLAG} only for a bundle you made yourself",
        )
    expected = source.get("sha256")
    if not isinstance(expected, str) or len(expected) != 64:
        raise NotTrusted(f"the lineage records no sha256 for its {kind} source")
    if kind == "factory":
        return _load_recorded_factory(source, expected)
    path = Path(str(source.get("path", "")))
    data = _read_verified(path, expected, f"the {kind} source file")
    if kind == "pickle":
        import joblib

        try:
            obj = joblib.load(io.BytesIO(data))
        except Exception as exc:
            raise BadInputError(f"cannot load {path} as a joblib/pickle file: {exc}") from exc
        return LoadedSource(obj, "pickle", dict(source))
    if kind == "pt2":  # consented above; loaded from the verified bytes
        import torch

        try:
            program = torch.export.load(io.BytesIO(data))
        except Exception as exc:
            raise BadInputError(f"cannot load ExportedProgram {path}: {exc}") from exc
        return LoadedSource(program, "pt2", dict(source))
    return load_source(str(path))  # skops: trusted scikit-learn/numpy/scipy types only


def _read_verified(path: Path, expected: str, what: str) -> bytes:
    if not path.is_file():
        raise NotTrusted(f"{what} {path} recorded in the lineage is gone")
    data = path.read_bytes()
    if sha256_bytes(data) != expected:
        raise NotTrusted(f"{what} {path} changed since export (sha256 differs)")
    return data


def _load_recorded_factory(source: dict[str, Any], expected: str) -> LoadedSource:
    ref = str(source.get("factory") or "")
    match = _FACTORY.match(ref)
    if not match:
        raise NotTrusted(f"the lineage's factory {ref!r} is not module:function")
    module_ref, func_name = match["module"], match["func"]
    is_file = module_ref.endswith(".py")
    recorded = source.get("path")
    if is_file:
        origin = Path(str(recorded)) if recorded else Path(module_ref)
    else:
        origin = _locate_module(module_ref)
    data = _read_verified(origin, expected, "the factory module")
    loaded = sys.modules.get(module_ref) if not is_file else None
    if (
        loaded is not None
        and Path(getattr(loaded, "__file__", "") or "").resolve() == origin.resolve()
    ):
        module = loaded  # already running here, and its file is the verified one
    else:
        module = _exec_module(module_ref, origin, data, is_file)
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        raise NotTrusted(f"{module_ref} has no function {func_name!r}")
    try:
        obj = func()
    except Exception as exc:
        raise BadInputError(f"factory {ref} failed: {type(exc).__name__}: {exc}") from exc
    return LoadedSource(obj, "factory", dict(source))


def _locate_module(module_ref: str) -> Path:
    """The source file of a dotted module, found without importing (running) anything."""
    module = sys.modules.get(module_ref)
    loaded = None if module is None else module_file(module)
    if loaded is not None:
        return loaded
    parts = module_ref.split(".")
    search: list[str] | None = None
    spec = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = importlib.machinery.PathFinder.find_spec(name, search)
        if spec is None:
            raise NotTrusted(f"cannot find module {name!r} on the Python path")
        search = list(spec.submodule_search_locations or [])
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    if origin is None or origin.suffix != ".py":
        raise NotTrusted(
            f"module {module_ref!r} is not a Python source file, so it is not verified"
        )
    return origin


def _exec_module(module_ref: str, origin: Path, data: bytes, is_file: bool) -> Any:
    """Run the verified bytes as the module (its package imported first, for relative imports)."""
    name = f"edgekit_factory_{origin.stem}" if is_file else module_ref
    parent = "" if is_file else module_ref.rpartition(".")[0]
    if parent:
        importlib.import_module(parent)
    try:
        module = module_from_source(name, origin, data)  # verified, consented
    except Exception as exc:
        sys.modules.pop(name, None)
        raise BadInputError(f"importing {origin} failed: {type(exc).__name__}: {exc}") from exc
    return module
