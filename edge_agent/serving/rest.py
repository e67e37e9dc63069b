"""The local REST endpoint (KServe v2 over HTTP): see ``edge_agent.serving``.

Kept as the name the agent and the benchmarks import."""

from edge_agent.serving.options import RestOptions
from edge_agent.serving.server import RestServer

__all__ = ["RestOptions", "RestServer"]
