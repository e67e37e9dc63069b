"""tritonclient.grpc and the agent's gRPC endpoint in one process: the agent's messages live in
a descriptor pool of their own, so importing both no longer fails on duplicate ``inference.*``
symbols in protobuf's default pool."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from agent_helpers import config, sample_feeds
from google.protobuf import descriptor_pool
from tritonclient.grpc import service_pb2, service_pb2_grpc

from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine
from edge_agent.serving.grpc_server import GrpcServer
from edge_agent.serving.v2grpc import messages


@pytest.fixture
def served(tmp_path, cnn_bundle):
    engine = Engine(config(cnn_bundle, tmp_path), model_mod.load(cnn_bundle))
    server = GrpcServer(engine, "127.0.0.1", 0, None, 1 << 20, workers=4)
    server.start()
    yield engine, server
    server.stop()
    engine.close()


def test_both_sets_of_messages_coexist():
    default = descriptor_pool.Default().FindMessageTypeByName("inference.ModelInferRequest")
    assert default.file.name != messages.ModelInferRequest.DESCRIPTOR.file.name
    assert messages.POOL is not descriptor_pool.Default()
    assert service_pb2.ModelInferRequest is not messages.ModelInferRequest
    assert set(messages.METHODS) >= {"ServerLive", "ModelMetadata", "ModelInfer"}


def test_tritonclient_grpc_in_process(served):
    engine, server = served
    x = sample_feeds(engine.model.bundle.path, 2)["input"]
    name = engine.model.name
    client = tgrpc.InferenceServerClient(server.url)
    try:
        assert client.is_server_live() and client.is_model_ready(name)
        meta = client.get_model_metadata(name)
        assert [i.name for i in meta.inputs] == ["input"]
        tensor = tgrpc.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(name, [tensor], request_id="in-process")
        assert result.get_response().id == "in-process"
        got = result.as_numpy("logits")
    finally:
        client.close()
    _, names, arrays = engine.infer({"input": x})
    np.testing.assert_allclose(got, arrays[names.index("logits")], rtol=1e-6)


def test_triton_stub_and_ours_speak_the_same_wire(served):
    import grpc

    engine, server = served
    x = sample_feeds(engine.model.bundle.path, 1)["input"]
    with grpc.insecure_channel(server.url) as channel:
        theirs = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=engine.model.name, id="typed")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
        typed = theirs.ModelInfer(request, timeout=30)
        ours = messages.Stub(channel)
        raw = messages.ModelInferRequest(model_name=engine.model.name, id="raw")
        raw.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
        raw.raw_input_contents.append(x.astype(np.float32).tobytes())
        answer = ours.ModelInfer(raw, timeout=30)
        assert ours.ServerReady(messages.ServerReadyRequest(), timeout=10).ready
    assert typed.id == "typed" and answer.id == "raw"
    assert [o.name for o in answer.outputs] == [o.name for o in typed.outputs]
    first = np.frombuffer(answer.raw_output_contents[0], np.float32)
    np.testing.assert_allclose(first, np.frombuffer(typed.raw_output_contents[0], np.float32))
