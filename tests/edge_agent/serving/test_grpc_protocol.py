"""KServe v2 over gRPC as the official client speaks it (``tritonclient.grpc``) against a real
``edge-agent serve --grpc-port 0`` process: health, metadata, infer (raw and typed contents),
the request id echo, the datatype refusal, the batch cap and the token, all shared with REST;
off by default; a clear error without the grpc extra.

The agent runs in its own process here, as users run it; test_grpc_inprocess.py serves the
same client from inside the test process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import psutil
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "grpc-s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class Served:
    """``edge-agent serve`` with its own current folder; parses the ready line's endpoints."""

    def __init__(self, tmp_path: Path, bundle: Path, *args: str) -> None:
        cwd = tmp_path / "cwd"
        cwd.mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path / "state")}
        for key in ("EDGE_AGENT_STATE_DIR", "SVCUID", "AWS_IOT_THING_NAME", "EDGE_AGENT_TOKEN"):
            env.pop(key, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "serve", "--bundle", str(bundle), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("edge-agent ready"):
                fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
                self.rest, self.grpc = fields["rest"], fields["grpc"]
                return
        self.proc.wait(30)
        raise AssertionError("the agent did not start:\n" + "".join(self.lines))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self.proc.stderr.close()
        return rc


@pytest.fixture(scope="module")
def served(cnn_bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpc")
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    agent = Served(
        tmp,
        cnn_bundle,
        *("--port", "0", "--grpc-port", "0", "--token-file", str(token_file)),
        *("--max-batch", "8"),
    )
    yield agent
    assert agent.stop() == 0


@pytest.fixture(scope="module")
def name(cnn_bundle) -> str:
    from edge_agent.contracts.bundle import Bundle

    return Bundle.open(cnn_bundle).manifest["name"]


@pytest.fixture
def client(served):
    c = tgrpc.InferenceServerClient(served.grpc)
    yield c
    c.close()


def _input(x: np.ndarray, datatype: str = "FP32") -> tgrpc.InferInput:
    tensor = tgrpc.InferInput("input", list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    return tensor


def _over_http(served, name: str, x: np.ndarray) -> np.ndarray:
    """The same request over REST: both endpoints answer from the one Engine."""
    c = thttp.InferenceServerClient(served.rest.removeprefix("http://"))
    tensor = thttp.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    try:
        # a copy: tritonclient.http adds its own headers to the dict it is given
        return c.infer(name, [tensor], headers=dict(AUTH)).as_numpy("logits")
    finally:
        c.close()


def test_health_and_metadata(client, name):
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata().name == "edgekit-edge-agent"
    assert client.is_model_ready(name, headers=AUTH)
    assert client.is_model_ready(name, "fp32", headers=AUTH)
    meta = client.get_model_metadata(name, headers=AUTH, as_json=True)
    assert meta["versions"] == ["fp32"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "1", "8", "8"]}]
    assert {o["name"] for o in meta["outputs"]} >= {"logits"}


def test_infer_fp32_echoes_the_request_id(served, client, name):
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    result = client.infer(name, [_input(x)], request_id="req-42", headers=AUTH)
    response = result.get_response()
    assert response.id == "req-42"
    assert response.model_name == name and response.model_version == "fp32"
    assert response.parameters["inference_id"].string_param
    logits = result.as_numpy("logits")
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, _over_http(served, name, x))


def test_without_a_request_id_the_id_is_the_inference_id(client, name):
    x = np.zeros((1, 1, 8, 8), dtype=np.float32)
    wanted = [tgrpc.InferRequestedOutput("logits")]
    response = client.infer(name, [_input(x)], outputs=wanted, headers=AUTH).get_response()
    assert response.id == response.parameters["inference_id"].string_param
    assert [o.name for o in response.outputs] == ["logits"]


def test_typed_contents_answer_as_raw_does(served, name):
    """The protocol's other encoding (InferTensorContents), sent with tritonclient's stub."""
    x = np.random.default_rng(1).random((2, 1, 8, 8), dtype=np.float32)
    with grpc.insecure_channel(served.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=name, id="typed")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
        response = stub.ModelInfer(request, metadata=list(AUTH.items()))
        assert response.id == "typed"
        out = response.outputs[0]
        got = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(list(out.shape))
        np.testing.assert_array_equal(got, _over_http(served, name, x))

        # values in the field of another datatype: refused, naming both
        request.inputs[0].contents.Clear()
        request.inputs[0].contents.fp64_contents.extend(x.ravel().tolist())
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(request, metadata=list(AUTH.items()))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "fp64_contents" in err.value.details() and "fp32_contents" in err.value.details()


def test_wrong_datatype_is_refused_naming_input_and_types(client, name):
    x = np.zeros((1, 1, 8, 8), dtype=np.float64)
    with pytest.raises(InferenceServerException) as err:
        client.infer(name, [_input(x, "FP64")], headers=AUTH)
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'input' has datatype FP64 but the model expects FP32" in err.value.message()


def test_batch_over_the_cap_says_the_cap_and_the_option(client, name):
    x = np.zeros((9, 1, 8, 8), dtype=np.float32)
    with pytest.raises(InferenceServerException) as err:
        client.infer(name, [_input(x)], headers=AUTH)
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "cap of 8" in err.value.message() and "--max-batch" in err.value.message()


def test_raw_contents_of_the_wrong_size_are_refused(client, name):
    tensor = _input(np.zeros((1, 1, 8, 8), dtype=np.float32))
    tensor.set_shape([2, 1, 8, 8])  # the bytes of one row for a shape of two
    with pytest.raises(InferenceServerException) as err:
        client.infer(name, [tensor], headers=AUTH)
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'input'" in err.value.message()


def test_token_is_required_on_model_calls(client, name):
    x = np.zeros((1, 1, 8, 8), dtype=np.float32)
    for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        with pytest.raises(InferenceServerException) as err:
            client.infer(name, [_input(x)], headers=headers)
        assert err.value.status() == "StatusCode.UNAUTHENTICATED"
        assert "bearer token" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        client.get_model_metadata(name)
    assert err.value.status() == "StatusCode.UNAUTHENTICATED"
    # the scheme is case-insensitive (RFC 6750), as over REST
    assert client.is_model_ready(name, headers={"authorization": f"bearer {TOKEN}"})


def test_another_model_is_not_found(client, name):
    with pytest.raises(InferenceServerException) as err:
        client.get_model_metadata("not-" + name, headers=AUTH)
    assert err.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as err:
        client.get_model_metadata(name, "int8-nope", headers=AUTH)
    assert err.value.status() == "StatusCode.NOT_FOUND"


def test_sixteen_concurrent_clients_get_their_own_answers(served, name):
    rng = np.random.default_rng(3)
    xs = [rng.random((1, 1, 8, 8), dtype=np.float32) for _ in range(16)]
    expected = [_over_http(served, name, x) for x in xs]

    def one_client(i: int) -> int:
        c = tgrpc.InferenceServerClient(served.grpc)
        try:
            for j in range(10):
                result = c.infer(name, [_input(xs[i])], request_id=f"c{i}-{j}", headers=AUTH)
                assert result.get_response().id == f"c{i}-{j}"
                np.testing.assert_array_equal(result.as_numpy("logits"), expected[i])
            return 10
        finally:
            c.close()

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(one_client, range(16))) == 160


def test_over_max_request_bytes_and_a_quick_stop(cnn_bundle, tmp_path):
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"grpc_port": 0, "max_request_bytes": 4096}))  # the config key
    agent = Served(tmp_path, cnn_bundle, "--port", "-1", "--config", str(config))
    try:
        c = tgrpc.InferenceServerClient(agent.grpc)
        name = c.get_model_metadata("cnn").name  # no token configured: none needed
        ok = c.infer(name, [_input(np.zeros((2, 1, 8, 8), np.float32))])  # 512 bytes
        assert ok.as_numpy("logits").shape == (2, 10)
        with pytest.raises(InferenceServerException) as err:
            c.infer(name, [_input(np.zeros((20, 1, 8, 8), np.float32))])  # 5120 bytes
        assert err.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        c.close()
    finally:
        started = time.monotonic()
        assert agent.stop() == 0
    assert time.monotonic() - started < 5  # idle with gRPC on: no wait for a grace period


def _listening(pid: int) -> set[int]:
    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_grpc_is_off_by_default(cnn_bundle, tmp_path, served):
    agent = Served(tmp_path, cnn_bundle, "--port", "0")
    try:
        assert agent.grpc == "off"
        rest_port = int(agent.rest.rsplit(":", 1)[1])
        assert _listening(agent.proc.pid) == {rest_port}  # REST only, nothing else listens
    finally:
        assert agent.stop() == 0
    # while the one with --grpc-port listens on both
    grpc_port = int(served.grpc.rsplit(":", 1)[1])
    assert grpc_port in _listening(served.proc.pid)


def test_a_grpc_port_in_use_is_a_clear_error(cnn_bundle, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "edge_agent", "serve", "--bundle", str(cnn_bundle)]
            + ["--port", "-1", "--grpc-port", str(port)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    assert f"port {port}" in result.stderr and "--grpc-port" in result.stderr
    assert "Traceback" not in result.stderr


NO_GRPC = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "grpc" or name.startswith("google.protobuf"):
            raise ImportError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Block())
from edge_agent.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_grpcio_the_config_key_names_the_extra(cnn_bundle, tmp_path):
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"grpc_port": 0, "port": -1}))
    result = subprocess.run(
        [sys.executable, "-c", NO_GRPC, "serve", "--bundle", str(cnn_bundle)]
        + ["--config", str(config)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "edgekit[grpc]" in result.stderr and "Traceback" not in result.stderr
