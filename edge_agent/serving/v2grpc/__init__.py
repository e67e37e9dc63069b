"""Python modules generated from ``grpc_predict_v2.proto`` (the KServe v2 gRPC service).

Generated, committed, never edited by hand: the regeneration command is in the .proto file.
Imported only by ``edge_agent.serving.grpc_server``, i.e. only when the gRPC endpoint is on.
"""
