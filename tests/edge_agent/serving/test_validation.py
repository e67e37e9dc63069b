"""Strict request validation, fuzzed with hypothesis: any input gives a result or a RequestError,
and over HTTP a 200 or a 400, never a 500 and never a dead server."""

from __future__ import annotations

import contextlib
import http.client
import json

import numpy as np
import pytest
from agent_helpers import config, kserve_body, sample_feeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine
from edge_agent.serving.rest import RestServer
from edge_agent.serving.validation import RequestError


@pytest.fixture(scope="module")
def cnn_engine(cnn_bundle, tmp_path_factory):
    cfg = config(cnn_bundle, tmp_path_factory.mktemp("v"), max_batch=8, max_elements=4096)
    engine = Engine(cfg, model_mod.load(cnn_bundle))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def tabular_engine(tabular_bundle, tmp_path_factory):
    engine = Engine(
        config(tabular_bundle, tmp_path_factory.mktemp("t")), model_mod.load(tabular_bundle)
    )
    yield engine
    engine.close()


def test_valid_numpy_and_json_requests(cnn_engine, cnn_bundle):
    feeds = sample_feeds(cnn_bundle, 2)
    iid, names, outs = cnn_engine.infer(feeds)
    assert names == ["logits"] and outs[0].shape == (2, 10) and iid
    response = cnn_engine.infer_json(kserve_body(feeds))
    assert response["outputs"][0]["shape"] == [2, 10]
    assert np.allclose(response["outputs"][0]["data"], outs[0].ravel(), atol=1e-5)
    assert response["id"] != iid


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: {"nope": f["input"]}, "unknown input"),
        (lambda f: {"input": f["input"][0]}, "rank 3"),
        (lambda f: {"input": np.zeros((1, 1, 8, 9), np.float32)}, "axis 3"),
        (lambda f: {"input": np.full((1, 1, 8, 8), np.inf, np.float32)}, "infinite"),
        (lambda f: {"input": np.zeros((9, 1, 8, 8), np.float32)}, "exceeds the cap"),
        (lambda f: {"input": np.array([["a"] * 8] * 8)[None, None]}, "expects FP32"),
        (lambda f: {"input": np.zeros((0, 1, 8, 8), np.float32)}, "no rows"),
    ],
)
def test_bad_numpy_requests_say_why(cnn_engine, cnn_bundle, mutate, message):
    with pytest.raises(RequestError, match=message):
        cnn_engine.infer(mutate(sample_feeds(cnn_bundle, 1)))


def test_an_empty_dynamic_axis_is_a_bad_request():
    """A sequence of length 0 on a dynamic axis passed the checks and failed inside
    onnxruntime (a Conv1d: HTTP 500, "the model failed on a validated request")."""
    from edge_agent.serving.validation import Limits, TensorSpec, Validator

    v = Validator(
        [TensorSpec("signal", "FP32", np.dtype(np.float32), (None, 4, None))], [], Limits()
    )
    assert v.check({"signal": np.zeros((2, 4, 3), np.float32)})[1] == 2
    with pytest.raises(RequestError, match="size 0 on axis 2"):
        v.check({"signal": np.zeros((2, 4, 0), np.float32)})


def test_json_shape_and_type_mismatches(cnn_engine):
    base = {"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}
    cnn_engine.infer_json({"inputs": [base]})
    for change, message in [
        ({"data": [0.5] * 63}, "needs 64"),
        ({"datatype": "BYTES", "data": ["x"] * 64}, "datatype BYTES"),
        ({"datatype": "FP64"}, "has datatype FP64 but the model expects FP32"),
        ({"shape": [1] * 65, "data": [0.5]}, "rank 65"),
        ({"datatype": "FP99"}, "unknown datatype"),
        ({"shape": [1, 1, 8, -8]}, "non-negative"),
        ({"data": ["x"] * 64}, "must hold numbers"),
        ({"shape": [100000, 1, 8, 8]}, "elements"),
    ]:
        with pytest.raises(RequestError, match=message):
            cnn_engine.infer_json({"inputs": [{**base, **change}]})
    with pytest.raises(RequestError, match="unknown output"):
        cnn_engine.infer_json({"inputs": [base], "outputs": [{"name": "nope"}]})


def test_tabular_strings_and_missing_values(tabular_engine, tabular_bundle):
    feeds = sample_feeds(tabular_bundle, 3)
    body = kserve_body(feeds)
    response = tabular_engine.infer_json(body)
    assert [o["name"] for o in response["outputs"]] == ["label", "probabilities"]
    num = next(i for i in body["inputs"] if i["datatype"] == "FP32")
    # JSON has no NaN: null is a missing number (what strict encoders send), answered as NaN is
    num["data"][0] = None
    nulled = tabular_engine.infer_json(body)
    feeds[num["name"]] = feeds[num["name"]].copy()
    feeds[num["name"]].flat[0] = np.nan
    _iid, _names, outs = tabular_engine.infer(feeds)
    np.testing.assert_allclose(nulled["outputs"][1]["data"], outs[1].ravel(), rtol=1e-6)
    num["data"][0] = "n/a"  # any other non-number is still refused
    with pytest.raises(RequestError, match="must hold numbers"):
        tabular_engine.infer_json(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=40,
)
tensor_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["input", "x", ""]) | json_values,
        "shape": st.lists(st.integers(-2, 70), max_size=5) | json_values,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "FP16"])
        | json_values,
        "data": st.lists(st.floats(allow_nan=True) | st.integers(-(2**70), 2**70), max_size=80)
        | json_values,
    },
)
request_like = (
    st.fixed_dictionaries(
        {},
        optional={
            "inputs": st.lists(tensor_like, max_size=3) | json_values,
            "outputs": json_values,
            "id": json_values,
        },
    )
    | json_values
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=request_like)
def test_fuzz_validator_never_crashes(cnn_engine, body):
    try:
        response = cnn_engine.infer_json(body)
    except RequestError as exc:
        assert exc.status in (400, 413) and exc.message
    else:
        assert response["outputs"][0]["shape"][1] == 10


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    feeds=st.dictionaries(
        st.sampled_from(["input", "other"]), st.from_type(object) | json_values, max_size=2
    )
)
def test_fuzz_numpy_feeds_never_crash(cnn_engine, feeds):
    with contextlib.suppress(RequestError):
        cnn_engine.infer(feeds)


@pytest.fixture(scope="module")
def rest(cnn_engine):
    server = RestServer(cnn_engine, "127.0.0.1", 0, token=None, max_bytes=64 * 1024)
    server.start()
    yield server
    server.stop()


def _post(server, path, raw: bytes, headers=None):
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    conn.request("POST", path, body=raw, headers=headers or {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=request_like | st.binary(max_size=200).map(lambda b: b"RAW" + b))
def test_fuzz_http_never_500(rest, cnn_engine, body):
    raw = body[3:] if isinstance(body, bytes) else json.dumps(body).encode()
    status, data = _post(rest, f"/v2/models/{cnn_engine.model.name}/infer", raw)
    assert status in (200, 400, 413), data
    assert "error" in json.loads(data) or status == 200


def test_http_oversized_body_is_413(rest, cnn_engine):
    status, data = _post(
        rest, f"/v2/models/{cnn_engine.model.name}/infer", b"[" + b"1," * 40000 + b"1]"
    )
    assert status == 413 and b"exceeds the cap" in data


_arrays = st.builds(
    lambda rows, dtype, tail, fill, spot: _array(rows, dtype, tail, fill, spot),
    st.integers(0, 10),
    st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.bool_]),
    st.sampled_from([(1, 8, 8), (1, 8, 9), (8, 8), (1, 1, 8, 8)]),
    st.sampled_from([0.5, 3e19, 1e300, -7.0, 3e38, -1.7e308]),
    st.sampled_from([None, np.nan, np.inf, -np.inf]),
)


def _array(rows, dtype, tail, fill, spot):
    with np.errstate(over="ignore", invalid="ignore"):
        arr = np.full((rows, *tail), fill).astype(dtype)
        if spot is not None and arr.size and arr.dtype.kind == "f":
            arr.flat[arr.size // 2] = spot
    return arr


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(arr=_arrays, name=st.sampled_from(["input", "input", "other"]))
def test_fast_check_agrees_with_full_check(cnn_engine, arr, name):
    """The per-model closure only decides faster: same verdict and message as the full path
    (NaN/inf anywhere, overflowing squares, wrong dtype, rank, trailing dims, caps)."""
    validator = cnn_engine.active.validator
    outcomes = []
    for check in (validator.check, validator.check_feeds):
        try:
            feeds, rows = check({name: arr})
            outcomes.append(("ok", rows, feeds[name].dtype, feeds[name].tobytes()))
        except RequestError as exc:
            outcomes.append(("refused", exc.message))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_float_feeds_are_decided_by_their_bytes(dtype):
    """NaN/inf in a small float32/float64 feed is found by its bytes, without the full path;
    finite values whose top byte looks like a non-finite one (huge magnitudes) go to the full
    path and are accepted there, NaN and inf anywhere are refused."""
    from edge_agent.serving.validation import (
        BYTE_SCAN_VALUES,
        Limits,
        TensorSpec,
        Validator,
    )

    datatype = "FP32" if dtype is np.float32 else "FP64"
    spec = TensorSpec("x", datatype, np.dtype(dtype), (None, 256))
    validator = Validator([spec], [], Limits(max_batch=64, reject_nan=True, reject_inf=True))
    full_calls = []
    full = validator.check_feeds
    validator.check_feeds = lambda feeds: full_calls.append(1) or full(feeds)
    validator.limits = validator.limits  # recompile the closure around the counting full path
    rows = BYTE_SCAN_VALUES // 256
    x = np.random.default_rng(0).standard_normal((rows, 256)).astype(dtype)
    assert validator.check({"x": x}) == ({"x": x}, rows)
    assert not full_calls, "a small finite feed is decided on the fast path"
    huge = x.copy()
    huge[0, 5] = np.finfo(dtype).max  # finite, top byte 0x7F
    feeds, got = validator.check({"x": huge})
    assert got == rows and feeds["x"] is huge and full_calls == [1]
    for bad in (np.nan, np.inf, -np.inf):
        for row, col in ((0, 0), (rows - 1, 255), (rows // 2, 77)):
            y = x.copy()
            y[row, col] = bad
            with pytest.raises(RequestError):
                validator.check({"x": y})
            with pytest.raises(RequestError):  # and past the byte-scan size, vdot decides
                validator.check({"x": np.concatenate([y, x])})
    strided = np.asfortranarray(x)
    strided[rows - 1, 3] = np.nan
    with pytest.raises(RequestError):  # a non-contiguous feed is scanned in C order too
        validator.check({"x": strided})


def test_live_limits_reach_the_fast_check(cnn_bundle, tmp_path):
    engine = Engine(config(cnn_bundle, tmp_path), model_mod.load(cnn_bundle))
    try:
        feeds = sample_feeds(cnn_bundle, 3)
        engine.infer(feeds)
        engine.apply_config(engine.config.updated({"max_batch": 2}))
        with pytest.raises(RequestError, match="exceeds the cap of 2"):
            engine.infer(feeds)
        nan = {"input": feeds["input"][:1].copy()}
        nan["input"][0, 0, 0, 0] = np.nan
        engine.infer(nan)  # reject_nan is off by default: NaN is a missing value
        engine.apply_config(engine.config.updated({"reject_nan": True}))
        with pytest.raises(RequestError, match="NaN"):
            engine.infer(nan)
    finally:
        engine.close()


def test_request_path_calls_the_binding_with_the_same_results(cnn_engine, cnn_bundle):
    from edge_agent.serving.engine import session_runner

    session = cnn_engine.model.session
    assert session_runner(session) == session._sess.run  # CPU only: the compiled binding
    feeds = sample_feeds(cnn_bundle, 4)
    _, _, outs = cnn_engine.infer(feeds)
    np.testing.assert_array_equal(outs[0], session.run(None, feeds)[0])

    class Other:  # anything that is not a CPU-only onnxruntime session keeps its public run
        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def run(self, names, feeds, options=None):
            return []

    other = Other()
    assert session_runner(other) == other.run


def test_lazy_or_foreign_feeds_are_refused_before_any_allocation(cnn_engine):
    """np.asarray(range(10**10)) would build an 80 GB array before any cap was checked (a fuzz
    example once took the test process to 24 GB)."""
    for feed in (range(10**10), [range(10**10)], iter([1.0]), {"a": 1}):
        with pytest.raises(RequestError) as info:
            cnn_engine.infer({"input": feed})
        assert info.value.status in (400, 413), info.value.message
    with pytest.raises(RequestError) as info:
        cnn_engine.infer({"input": [[0.0] * 10] * 500_000})  # 5 M elements of plain lists
    assert info.value.status == 413 and "cap" in info.value.message
    out = cnn_engine.infer({"input": np.zeros((1, 1, 8, 8), np.float32).tolist()})
    assert out[2][0].shape[1] == 10  # nested lists still work
