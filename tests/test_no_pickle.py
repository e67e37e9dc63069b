"""Nothing in the code base unpickles data by accident: every np.load passes
allow_pickle=False, every torch.load weights_only=True, and joblib/pickle loading exists only
behind the consent check in edgekit/export/sources.py. Generated scripts (strings) count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge_agent", "edgekit", "benchmarks")
CONSENTED = {"edgekit/export/sources.py"}  # joblib.load only after trust_code/trust_pickle


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def _problems(tree: ast.AST, rel: str) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if "np.load(" in text and "allow_pickle=False" not in text:
                out.append(f"{rel}:{node.lineno}: a generated script calls np.load with pickle")
            if "allow_pickle=True" in text:
                out.append(f"{rel}:{node.lineno}: allow_pickle=True in a string")
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        where = f"{rel}:{node.lineno}"
        if name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
            out.append(f"{where}: {name} without allow_pickle=False")
        if name == "torch.load" and _keyword(node, "weights_only") is not True:
            out.append(f"{where}: torch.load without weights_only=True")
        if name in ("pickle.load", "pickle.loads", "joblib.load") and rel not in CONSENTED:
            out.append(f"{where}: {name} outside the consent check")
    return out


def test_the_scan_sees_the_code_base() -> None:
    assert len(_sources()) > 100


@pytest.mark.parametrize(
    ("code", "found"),
    [
        ("import numpy as np\nnp.load('x')", True),
        ("import numpy as np\nnp.load('x', allow_pickle=True)", True),
        ("import numpy as np\nnp.load('x', allow_pickle=False)", False),
        ("S = '''with np.load(data) as z: pass'''", True),
        ("import torch\ntorch.load('w')", True),
        ("import joblib\njoblib.load('m')", True),
    ],
)
def test_the_scan_catches_unsafe_loads(code: str, found: bool) -> None:
    assert bool(_problems(ast.parse(code), "x.py")) is found


def test_no_load_unpickles_without_consent() -> None:
    problems = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        problems += _problems(ast.parse(path.read_text("utf-8")), rel)
    assert problems == []
