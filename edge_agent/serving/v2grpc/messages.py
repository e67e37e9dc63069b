"""The KServe v2 gRPC messages and service, built in a descriptor pool of their own.

protoc's Python modules register their symbols (``inference.ModelInferRequest``, ...) in
protobuf's process-wide default pool, where tritonclient.grpc registers Triton's version of the
same package: importing both in one process fails with duplicate symbols. This module builds the
messages from ``grpc_predict_v2.binpb`` (protoc's descriptor set of ``grpc_predict_v2.proto``;
the command is in the .proto) into a private ``DescriptorPool`` instead, so the agent's gRPC
endpoint and tritonclient.grpc live side by side (an in-process test, a user's application).
The wire format depends only on field numbers and the method paths on the service's full
name, so clients see no difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "inference.GRPCInferenceService"
DESCRIPTOR_SET = Path(__file__).with_name("grpc_predict_v2.binpb")

POOL = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file:
    POOL.Add(_file)


def message(name: str) -> Any:
    """The message class of ``inference.<name>`` (nested types are its attributes)."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"inference.{name}"))


ServerLiveRequest = message("ServerLiveRequest")
ServerLiveResponse = message("ServerLiveResponse")
ServerReadyRequest = message("ServerReadyRequest")
ServerReadyResponse = message("ServerReadyResponse")
ModelReadyRequest = message("ModelReadyRequest")
ModelReadyResponse = message("ModelReadyResponse")
ServerMetadataRequest = message("ServerMetadataRequest")
ServerMetadataResponse = message("ServerMetadataResponse")
ModelMetadataRequest = message("ModelMetadataRequest")
ModelMetadataResponse = message("ModelMetadataResponse")
ModelInferRequest = message("ModelInferRequest")
ModelInferResponse = message("ModelInferResponse")
InferParameter = message("InferParameter")
InferTensorContents = message("InferTensorContents")

# method name -> (request class, response class), in the service's declared order
METHODS: dict[str, tuple[Any, Any]] = {
    m.name: (
        message_factory.GetMessageClass(m.input_type),
        message_factory.GetMessageClass(m.output_type),
    )
    for m in POOL.FindServiceByName(SERVICE).methods
}


def add_to_server(servicer: Any, server: grpc.Server) -> None:
    """Serve every method of the service (all unary) from ``servicer``'s methods of that name."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in METHODS.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


class Stub:
    """A client of the service on ``channel``: ``Stub(channel).ModelInfer(request)``."""

    def __init__(self, channel: grpc.Channel) -> None:
        for name, (request, response) in METHODS.items():
            setattr(
                self,
                name,
                channel.unary_unary(
                    f"/{SERVICE}/{name}",
                    request_serializer=request.SerializeToString,
                    response_deserializer=response.FromString,
                ),
            )
