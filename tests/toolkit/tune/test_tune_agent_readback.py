"""The selection tune writes is what the edge agent serves: edge_agent.serving.model reads
manifest["selection"][target] and applies its session options to the session it loads."""

from __future__ import annotations

import onnxruntime as ort

from edge_agent.contracts.bundle import Bundle
from edge_agent.serving import model as agent_model
from edgekit.toolkit.tune.space import SessionOptions
from edgekit.toolkit.tune.tuner import TuneRequest, record, tune

FAST = {"graph_levels": ("all",), "base_duration_s": 0.03, "create_missing": False}
LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _assert_applied(so, options: dict) -> None:
    assert so.intra_op_num_threads == options["intra_op_num_threads"]
    assert so.inter_op_num_threads == options["inter_op_num_threads"]
    mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if options["execution_mode"] == "parallel"
        else (ort.ExecutionMode.ORT_SEQUENTIAL)
    )
    assert so.execution_mode == mode
    assert so.graph_optimization_level == LEVELS[options["graph_optimization_level"]]


def test_agent_loads_the_tuned_selection(cnn_bundle, copy_bundle):
    path = copy_bundle(cnn_bundle)
    result = tune(TuneRequest(path, "local", **FAST))
    options = result.selected.candidate.options.to_manifest()
    choice = agent_model.choose(Bundle.open(path), target="local")
    assert choice.variant == result.selected.candidate.variant
    assert choice.provider == result.selected.candidate.provider
    assert choice.session_options == options
    loaded = agent_model.load(path, target="local")
    assert loaded.variant == result.selected.candidate.variant
    assert loaded.self_test["passed"]
    _assert_applied(loaded.session.get_session_options(), options)


def test_agent_applies_non_default_options(cnn_bundle, copy_bundle):
    """Every field the agent applies, with values that differ from onnxruntime's defaults."""
    path = copy_bundle(cnn_bundle)
    result = tune(TuneRequest(path, "local", write=False, **FAST))
    chosen = SessionOptions(1, 2, "parallel", "basic")
    result.selected.candidate = type(result.selected.candidate)(
        result.selected.candidate.variant, "CPUExecutionProvider", chosen
    )
    record(Bundle.open(path), result, TuneRequest(path, "local"))
    loaded = agent_model.load(path, target="local")
    _assert_applied(loaded.session.get_session_options(), chosen.to_manifest())
