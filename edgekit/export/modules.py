"""The one way edgekit loads Python code named by the user (`module:function` references and
module files): export's factories and the pipeline's training and data functions both use it.

A file is loaded afresh under the given name (so a long-lived process runs the code as it is
now on disk); a dotted name goes through the normal import system.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def spec_for(name: str, file: Path) -> importlib.machinery.ModuleSpec:
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} cannot be loaded as a Python module")
    return spec


def module_from_file(name: str, file: Path) -> ModuleType:
    """Run `file` as module `name` (registered in sys.modules first, as an import does)."""
    spec = spec_for(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    assert spec.loader is not None  # spec_for refuses a spec without one
    spec.loader.exec_module(module)
    return module


def module_from_source(name: str, file: Path, source: bytes) -> ModuleType:
    """Run already-read (and verified) bytes as module `name`, with `file` as its origin."""
    module = importlib.util.module_from_spec(spec_for(name, file))
    sys.modules[name] = module
    exec(compile(source, str(file), "exec"), module.__dict__)  # noqa: S102 - verified by caller
    return module


def module_file(module: ModuleType) -> Path | None:
    """Where a module was loaded from, when it came from a file."""
    file = getattr(module, "__file__", None)
    return Path(file) if file else None
