"""The KServe v2 gRPC service: ``grpc_predict_v2.proto``, protoc's descriptor set of it
(``grpc_predict_v2.binpb``, committed, never edited by hand: the command is in the .proto) and
``messages``, which builds the message classes from it in a descriptor pool of its own.
Imported only by ``edge_agent.serving.grpc_server``, i.e. only when the gRPC endpoint is on.
"""
