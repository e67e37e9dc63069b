"""The KServe v2 gRPC endpoint (``inference.GRPCInferenceService``), optional, next to REST.

The same ``Engine`` answers both: a ``ModelInferRequest`` becomes the v2 request the REST path
hands to ``Engine.infer_v2`` (``raw_input_contents`` as binary tensors, typed ``contents`` as
JSON-like ``data``), so validation, the datatype refusal, the batch cap, the request id echo and
the monitor are the very same. Errors are gRPC statuses with the same messages: a refused
request INVALID_ARGUMENT, no or a wrong token (``authorization: Bearer TOKEN`` metadata)
UNAUTHENTICATED, another model NOT_FOUND, not ready UNAVAILABLE, a model fault INTERNAL, a
message over ``max_request_bytes`` or more than ``rest_max_connections`` calls at once
RESOURCE_EXHAUSTED (grpcio's own checks).

grpcio (and protobuf) are the ``grpc`` extra: this module imports them, and the agent imports
this module only when the endpoint is on (``--grpc-port N``, ``grpc_port`` in the config).
"""

from __future__ import annotations

import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edge_agent.serving import wire
from edge_agent.serving.engine import Engine, ModelError
from edge_agent.serving.validation import KSERVE_TO_NUMPY, RequestError, datatype_of

try:
    import grpc

    from edge_agent.serving.v2grpc import messages as pb
except ImportError as exc:  # grpcio or protobuf missing
    raise BadInputError(
        f"the gRPC endpoint needs the agent's grpc extra ({exc}); install it with "
        "pip install 'edgekit[grpc]', or leave --grpc-port unset"
    ) from None
except RuntimeError as exc:  # the generated code's version check (grpcio too old)
    raise BadInputError(
        f"the gRPC endpoint cannot start: {exc}; pip install 'edgekit[grpc]'"
    ) from None

log = logging.getLogger("edge_agent.grpc")

SERVER_NAME = "edgekit-edge-agent"

# The typed field of InferTensorContents that holds each datatype (FP16 only travels raw).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class Refused(Exception):
    """A request answered with a gRPC status other than OK."""

    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- request → v2 body -----------------------------------------------------------------------
def request_body(request: Any) -> tuple[dict[str, Any], dict[int, memoryview]]:
    """A ``ModelInferRequest`` → the v2 request body and the raw bytes by input position."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError(
            f"raw_input_contents has {len(raw)} entries but the request has "
            f"{len(request.inputs)} inputs; send one per input, in order"
        )
    inputs: list[dict[str, Any]] = []
    binary: dict[int, memoryview] = {}
    for i, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        has_contents = tensor.HasField("contents") and bool(tensor.contents.ListFields())
        if raw:
            if has_contents:
                raise RequestError(
                    f"input {tensor.name!r} has contents but the request also uses "
                    "raw_input_contents; send one or the other"
                )
            binary[i] = memoryview(raw[i])
        else:
            item["data"] = _contents_data(tensor)
        inputs.append(item)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    if request.outputs:
        body["outputs"] = [{"name": o.name} for o in request.outputs]
    return body, binary


def _contents_data(tensor: Any) -> list[Any]:
    """The typed contents as a flat list; the validator then checks datatype, count and range."""
    filled = [(f.name, values) for f, values in tensor.contents.ListFields()]
    if not filled:
        return []
    field = CONTENTS_FIELD.get(tensor.datatype)
    if len(filled) > 1 or (field is not None and filled[0][0] != field):
        where = ", ".join(name for name, _ in filled)
        expected = f"{field}" if field else "raw_input_contents"
        raise RequestError(
            f"input {tensor.name!r} ({tensor.datatype}) carries its values in {where}; "
            f"{tensor.datatype} goes in {expected}",
            wrong_type=True,
        )
    name, values = filled[0]
    if name == "bytes_contents":
        try:
            return [bytes(v).decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise RequestError(
                f"input {tensor.name!r} (BYTES) holds an element that is not UTF-8"
            ) from None
    return list(values)


# -- v2 result → response --------------------------------------------------------------------
def raw_bytes(arr: np.ndarray, datatype: str) -> bytes:
    """One output as ``raw_output_contents``, in the numpy type of its v2 datatype."""
    if datatype != "BYTES":
        arr = np.asarray(arr, dtype=KSERVE_TO_NUMPY[datatype])
    return wire.encode_raw(arr, datatype)


def infer_response(result: Any) -> Any:
    head = result.head
    response = pb.ModelInferResponse(
        model_name=head["model_name"], model_version=head["model_version"], id=head["id"]
    )
    for key, value in head["parameters"].items():
        response.parameters[key].string_param = str(value)
    for name, arr in zip(result.names, result.arrays, strict=True):
        arr = np.asarray(arr)
        spec = result.specs.get(name)
        datatype = spec.datatype if spec else datatype_of(arr)
        response.outputs.add(name=name, datatype=datatype, shape=list(arr.shape))
        response.raw_output_contents.append(raw_bytes(arr, datatype))
    return response


# -- the service -----------------------------------------------------------------------------
class InferenceService:
    """The six v2 RPCs over one Engine; health and server metadata need no token (as REST)."""

    def __init__(self, engine: Engine, token: str | None) -> None:
        self.engine = engine
        self.token = token

    # health and metadata
    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.engine.ready)

    def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version="1", extensions=[])

    def ModelReady(self, request: Any, context: Any) -> Any:
        with _answer(context):
            self._check(context, request.name, request.version)
            return pb.ModelReadyResponse(ready=self.engine.ready)

    def ModelMetadata(self, request: Any, context: Any) -> Any:
        with _answer(context):
            self._check(context, request.name, request.version)
            meta = self.engine.metadata()
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[tensor(**t) for t in meta["inputs"]],
                outputs=[tensor(**t) for t in meta["outputs"]],
            )

    def ModelInfer(self, request: Any, context: Any) -> Any:
        received = time.perf_counter()
        with _answer(context):
            self._check(context, request.model_name, request.model_version)
            engine = self.engine
            if not engine.ready:
                engine.record_error("not_ready")
                raise Refused(grpc.StatusCode.UNAVAILABLE, "the model is not ready")
            try:
                body, binary = request_body(request)
            except RequestError as exc:
                engine.record_error(exc.kind)
                raise
            return infer_response(engine.infer_v2(body, received, binary or None))

    # the token, then the model
    def _check(self, context: Any, name: str, version: str) -> None:
        if self.token:
            given = ""
            for key, value in context.invocation_metadata():
                if key == "authorization":
                    given = value if isinstance(value, str) else value.decode("latin-1")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credential.strip().encode(), self.token.encode()
            ):
                self.engine.record_error("unauthorized")
                raise Refused(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "missing or wrong bearer token (metadata authorization: Bearer TOKEN)",
                )
        model = self.engine.model
        if name != model.name:
            raise Refused(
                grpc.StatusCode.NOT_FOUND, f"no model {name!r}; this agent serves {model.name!r}"
            )
        if version and version != model.variant:
            raise Refused(
                grpc.StatusCode.NOT_FOUND,
                f"model {name!r} has no version {version!r}; serving {model.variant!r}",
            )


class _answer:
    """Turns what the engine raises into the call's status (a context manager, no traceback
    for what a client got wrong; a bug of ours is logged once and answered INTERNAL)."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:  # type: ignore[exit-return]
        if exc is None:
            return False
        if isinstance(exc, Refused):
            code, message = exc.code, exc.message
        elif isinstance(exc, RequestError):
            code, message = grpc.StatusCode.INVALID_ARGUMENT, exc.message
        elif isinstance(exc, ModelError):
            code, message = grpc.StatusCode.INTERNAL, str(exc)
        elif isinstance(exc, Exception):
            log.error("a gRPC call failed", exc_info=(kind, exc, tb))
            code, message = grpc.StatusCode.INTERNAL, "internal error; see the agent's log"
        else:
            return False
        self.context.abort(code, message)  # raises: grpcio ends the call with this status
        return False


# -- the server ------------------------------------------------------------------------------
class GrpcServer:
    """grpcio's server on its own thread pool; ``port`` 0 picks a free one."""

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        token: str | None,
        max_bytes: int,
        workers: int,
        shutdown_timeout_s: float = 5.0,
        max_calls: int = 256,
    ) -> None:
        self.host = host
        self.shutdown_timeout_s = shutdown_timeout_s
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="edge-agent-grpc")
        self.server = grpc.server(
            self.pool,
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.max_send_message_length", -1),
                # without this a second agent on the same port would share it silently
                ("grpc.so_reuseport", 0),
            ],
            # calls running or queued for the pool; past it grpcio answers RESOURCE_EXHAUSTED
            maximum_concurrent_rpcs=max_calls,
        )
        pb.add_to_server(InferenceService(engine, token), self.server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            self.pool.shutdown(wait=False)
            raise BadInputError(
                f"cannot listen for gRPC on {host} port {port} (in use, or not an address of "
                "this machine); pick another with --grpc-port N (0 = any free port)"
            )

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def url(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """Refuse new calls, let those in flight finish (up to the shutdown timeout)."""
        self.server.stop(self.shutdown_timeout_s).wait(self.shutdown_timeout_s + 5)
        self.pool.shutdown(wait=False, cancel_futures=True)
