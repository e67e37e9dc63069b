"""The pipeline asks a method what it needs (pre-processing, calibration, a check that it
changed anything) instead of knowing methods by name: a new method is one file."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from edge_agent.errors import BadInputError
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle, registry


@dataclasses.dataclass
class CopyConfig:
    pass


def _copy(config: CopyConfig, ctx: registry.MethodContext) -> dict[str, object]:
    shutil.copyfile(ctx.source, ctx.output)
    return {"saw_source": ctx.source.name, "calibrated": ctx.calibration is not None}


@pytest.fixture
def copy_method():
    seen: list[Path] = []

    def unchanged(path: Path) -> str | None:
        seen.append(path)
        return "the copy method changed nothing (as it must)"

    method = registry.register(
        registry.Method(
            name="copy-for-test",
            config_type=CopyConfig,
            run=_copy,
            precision=lambda c: "fp32",
            default_name=lambda c: "copy",
            integer=False,
            needs_calibration=False,
            description="copies the model",
            unchanged=unchanged,
        )
    )
    yield method, seen
    registry._METHODS.pop(method.name)


def test_a_registered_method_is_asked_not_named(cnn_bundle, copy_bundle, copy_method) -> None:
    method, seen = copy_method
    assert method.name in registry.names()
    path = copy_bundle(cnn_bundle)
    with pytest.raises(BadInputError, match="changed nothing"):
        quantize_bundle(path, QuantizeRequest(method=method.name))
    assert len(seen) == 1  # its own check ran on its output


def test_builtin_methods_declare_their_needs() -> None:
    static, dynamic, fp16 = (registry.get(n) for n in ("static", "dynamic", "fp16"))
    assert static.needs_preprocess and dynamic.needs_preprocess and not fp16.needs_preprocess
    assert static.prepare_calibration is not None and dynamic.prepare_calibration is None
    assert fp16.unchanged is not None and "float32" in fp16.trees
