"""KServe v2 over HTTP as real clients speak it: the official tritonclient (its defaults use the
binary tensor data extension) and plain httpx against a running agent, plus HTTP semantics
(401/404/405/411/413) and a stop that finishes the requests in flight."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from agent_helpers import config, kserve_body, sample_feeds
from tritonclient.utils import InferenceServerException

from edge_agent.agent import Agent
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine
from edge_agent.serving.rest import RestOptions, RestServer
from edge_agent.telemetry.transports.inprocess import Bus, InProcessTransport

TOKEN = "s3cret-token"


class _Bearer:
    """tritonclient's plugin hook: adds a header to every request."""

    def __init__(self, scheme: str = "Bearer") -> None:
        self.scheme = scheme

    def __call__(self, request) -> None:
        request.headers["Authorization"] = f"{self.scheme} {TOKEN}"


@pytest.fixture(scope="module")
def agent(cnn_bundle, tmp_path_factory):
    cfg = config(cnn_bundle, tmp_path_factory.mktemp("rest"), port=0, token=TOKEN, max_batch=16)
    agent = Agent(cfg, InProcessTransport(bus=Bus())).start()
    yield agent
    agent.stop(flush_timeout=1)


@pytest.fixture
def client(agent):
    host, port = agent.rest.address
    c = triton.InferenceServerClient(f"{host}:{port}")
    c.register_plugin(_Bearer())
    yield c
    c.close()


def _auth(scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {TOKEN}"}


def _url(agent, path: str) -> str:
    return agent.rest.url + path


def _in_process(agent, x):
    return agent.engine.infer({"input": x})[2][0]


def test_tritonclient_metadata_and_health(agent, client):
    name = agent.engine.model.name
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(name) and client.is_model_ready(name, "fp32")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata(name)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["versions"] == ["fp32"]


def test_tritonclient_default_infer_is_binary_both_ways(agent, client):
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)  # binary_data=True: the default
    result = client.infer(agent.engine.model.name, [tensor], request_id="req-42")
    response = result.get_response()
    assert response["id"] == "req-42"  # echoed, as the protocol says
    assert response["parameters"]["inference_id"]
    assert response["outputs"][0]["parameters"]["binary_data_size"] == 3 * 10 * 4
    np.testing.assert_array_equal(result.as_numpy("logits"), _in_process(agent, x))


def test_tritonclient_json_data_and_versioned_path(agent, client):
    x = np.random.default_rng(1).random((2, 1, 8, 8), dtype=np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    wanted = [triton.InferRequestedOutput("logits", binary_data=False)]
    result = client.infer(agent.engine.model.name, [tensor], model_version="fp32", outputs=wanted)
    response = result.get_response()
    assert "data" in response["outputs"][0] and "parameters" not in response["outputs"][0]
    # without a request id the response's id is the inference id (what /feedback takes)
    assert response["id"] == response["parameters"]["inference_id"]
    np.testing.assert_allclose(result.as_numpy("logits"), _in_process(agent, x), rtol=1e-6)


def test_tritonclient_compressed_request_and_response(agent, client):
    x = np.random.default_rng(2).random((4, 1, 8, 8), dtype=np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(agent.engine.model.name, [tensor], request_compression_algorithm="gzip")
    np.testing.assert_array_equal(result.as_numpy("logits"), _in_process(agent, x))


def test_tritonclient_refusals_are_clear(agent, client):
    name = agent.engine.model.name
    x = np.zeros((1, 1, 8, 8), dtype=np.float64)
    tensor = triton.InferInput("input", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x)
    with pytest.raises(
        InferenceServerException, match="'input' has datatype FP64 but the model expects FP32"
    ):
        client.infer(name, [tensor])
    ok = triton.InferInput("input", [1, 1, 8, 8], "FP32")
    ok.set_data_from_numpy(np.zeros((1, 1, 8, 8), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="no version 'int8'"):
        client.infer(name, [ok], model_version="int8")
    big = triton.InferInput("input", [17, 1, 8, 8], "FP32")
    big.set_data_from_numpy(np.zeros((17, 1, 8, 8), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="cap of 16.*--max-batch"):
        client.infer(name, [big])


def test_tabular_bytes_input_in_binary(tabular_bundle, tmp_path):
    """BYTES tensors in the extension's layout (4-byte length + UTF-8), next to numbers."""
    cfg = config(tabular_bundle, tmp_path, port=0)
    agent = Agent(cfg, InProcessTransport(bus=Bus())).start()
    try:
        feeds = sample_feeds(tabular_bundle, 3)
        host, port = agent.rest.address
        client = triton.InferenceServerClient(f"{host}:{port}")
        tensors = []
        for name, arr in feeds.items():
            is_text = arr.dtype.kind in "US"
            tensor = triton.InferInput(name, list(arr.shape), "BYTES" if is_text else "FP32")
            tensor.set_data_from_numpy(arr.astype(object) if is_text else arr)
            tensors.append(tensor)
        result = client.infer(agent.engine.model.name, tensors)
        _, names, local = agent.engine.infer(feeds)
        for out_name, expected in zip(names, local, strict=True):
            got = result.as_numpy(out_name)
            if expected.dtype.kind in "iuf":
                np.testing.assert_allclose(got, expected, rtol=1e-6)
            else:
                assert [v.decode() if isinstance(v, bytes) else v for v in got.ravel()] == [
                    str(v) for v in expected.ravel()
                ]
        client.close()
    finally:
        agent.stop(flush_timeout=1)


# -- HTTP semantics with plain httpx and raw sockets ---------------------------------------------
def test_401_says_bearer_and_the_scheme_is_case_insensitive(agent):
    url = _url(agent, f"/v2/models/{agent.engine.model.name}")
    refused = httpx.get(url)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert "bearer token" in refused.json()["error"]
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert httpx.get(url, headers=_auth(scheme)).status_code == 200
    assert httpx.get(_url(agent, "/v2/health/live")).json() == {"live": True}  # open for probes


def test_405_with_allow_and_404_as_json(agent):
    name = agent.engine.model.name
    wrong = httpx.post(_url(agent, "/v2/health/live"))
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
    wrong = httpx.get(_url(agent, f"/v2/models/{name}/infer"), headers=_auth())
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert "not allowed" in wrong.json()["error"]
    missing = httpx.get(_url(agent, "/v2/nothing"))
    assert missing.status_code == 404 and "no route" in missing.json()["error"]
    other = httpx.get(_url(agent, "/v2/models/other"), headers=_auth())
    assert other.status_code == 404 and "this agent serves" in other.json()["error"]


def _raw(agent, request: bytes, read_timeout: float = 10.0) -> bytes:
    with socket.create_connection(agent.rest.address, timeout=read_timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and b'"}' in data:
                break
        return b"".join(chunks)


def test_411_without_a_length(agent):
    path = f"/v2/models/{agent.engine.model.name}/infer"
    answer = _raw(
        agent,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 411") and b"Content-Length" in answer


def test_413_before_reading_the_body(agent):
    """The cap is known from the header: the answer comes while the body is still unsent."""
    path = f"/v2/models/{agent.engine.model.name}/infer"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {50 * 2**20}\r\n\r\n"
    )
    answer = _raw(agent, head.encode() + b"{")
    assert answer.startswith(b"HTTP/1.1 413") and b"exceeds the cap" in answer


def test_413_reaches_a_client_that_writes_the_whole_body(cnn_bundle, tmp_path):
    """http.client writes everything before reading: the server drains (bounded), then answers,
    so the client sees the 413, not EPIPE or a reset."""
    engine = Engine(config(cnn_bundle, tmp_path), model_mod.load(cnn_bundle))
    server = RestServer(
        engine, "127.0.0.1", 0, None, 1 << 20, RestOptions(max_inflight_bytes=4 << 20)
    )
    server.start()
    try:
        conn = http.client.HTTPConnection(*server.address, timeout=30)
        conn.request("POST", f"/v2/models/{engine.model.name}/infer", body=b" " * (8 << 20))
        resp = conn.getresponse()
        assert resp.status == 413 and b"exceeds the cap of 1048576" in resp.read()
        conn.close()
    finally:
        server.stop()
        engine.close()


def test_chunked_body_and_request_id(agent):
    body = kserve_body({"input": np.zeros((2, 1, 8, 8), dtype=np.float32)})
    body["id"] = "chunky"
    raw = json.dumps(body).encode()

    def parts():
        for i in range(0, len(raw), 1000):
            yield raw[i : i + 1000]

    resp = httpx.post(
        _url(agent, f"/v2/models/{agent.engine.model.name}/infer"), content=parts(), headers=_auth()
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == "chunky" and resp.json()["outputs"][0]["shape"] == [2, 10]


def test_bad_binary_framing_is_a_400(agent):
    url = _url(agent, f"/v2/models/{agent.engine.model.name}/infer")
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 1, 8, 8],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ]
        }
    ).encode()
    for tail, hlen, message in [
        (b"\0" * 255, len(header), "only 255 bytes"),
        (b"\0" * 300, len(header), "add up to 256"),
        (b"\0" * 256, len(header) + 10_000, "Inference-Header-Content-Length"),
        (b"\0" * 256, None, "no Inference-Header-Content-Length"),
    ]:
        headers = {**_auth()}
        if hlen is not None:
            headers["Inference-Header-Content-Length"] = str(hlen)
        resp = httpx.post(
            url, content=header + (tail if hlen is not None else b""), headers=headers
        )
        assert resp.status_code == 400 and message in resp.json()["error"], resp.text
    gz = gzip.compress(b"{" * 10)
    resp = httpx.post(url, content=gz, headers={**_auth(), "Content-Encoding": "gzip"})
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]


def test_stop_finishes_requests_in_flight(cnn_bundle, tmp_path):
    """A request the model is running when stop() is called still gets its 200."""

    class GatedEngine(Engine):  # the real engine, held at a gate so the timing is certain
        gate = threading.Event()
        entered = threading.Event()

        def infer_v2(self, *args, **kwargs):
            self.entered.set()
            self.gate.wait(20)
            return super().infer_v2(*args, **kwargs)

    engine = GatedEngine(config(cnn_bundle, tmp_path), model_mod.load(cnn_bundle))
    server = RestServer(engine, "127.0.0.1", 0, None, 1 << 20)
    server.start()
    body = json.dumps(kserve_body({"input": np.zeros((1, 1, 8, 8), dtype=np.float32)}))
    results: list[int] = []

    def call() -> None:
        conn = http.client.HTTPConnection(*server.address, timeout=30)
        conn.request("POST", f"/v2/models/{engine.model.name}/infer", body=body)
        results.append(conn.getresponse().status)

    caller = threading.Thread(target=call)
    caller.start()
    assert engine.entered.wait(20)
    address = server.address
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # shutdown has begun once the listener is gone
        try:
            socket.create_connection(address, timeout=1).close()
        except OSError:
            break
    else:
        pytest.fail("the server kept accepting connections after stop()")
    assert stopper.is_alive() and not results  # stop() waits on the request in flight
    engine.gate.set()
    caller.join(20)
    stopper.join(20)
    assert results == [200] and not stopper.is_alive()
    engine.close()


def test_torch_classifier_answers_with_label_and_probabilities(agent, client):
    """The CNN bundle (PyTorch, logits only in its graph) declares classification and labels:
    the answer carries label and probabilities as a scikit-learn classifier's does."""
    name = agent.engine.model.name
    outputs = {o["name"]: o for o in client.get_model_metadata(name)["outputs"]}
    assert outputs["label"] == {"name": "label", "datatype": "INT64", "shape": [-1]}
    assert outputs["probabilities"]["shape"] == [-1, 10]
    x = np.random.default_rng(3).random((5, 1, 8, 8), dtype=np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(name, [tensor])
    logits = result.as_numpy("logits")
    np.testing.assert_array_equal(result.as_numpy("label"), logits.argmax(axis=1))
    probabilities = result.as_numpy("probabilities")
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), logits.argmax(axis=1))
    only = client.infer(name, [tensor], outputs=[triton.InferRequestedOutput("label")])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["label"]


def test_string_labels_come_back_as_bytes(copy_bundle, cnn_bundle, tmp_path):
    bundle = copy_bundle(cnn_bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    manifest["signature"]["labels"] = names
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    engine = Engine(config(bundle, tmp_path), model_mod.load(bundle))
    try:
        x = np.random.default_rng(4).random((3, 1, 8, 8), dtype=np.float32)
        response = engine.infer_json(kserve_body({"input": x}))
        by_name = {o["name"]: o for o in response["outputs"]}
        top = np.asarray(by_name["logits"]["data"]).reshape(3, 10).argmax(axis=1)
        assert by_name["label"]["datatype"] == "BYTES"
        assert by_name["label"]["data"] == [names[i] for i in top]
    finally:
        engine.close()
