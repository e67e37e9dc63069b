"""Serving over the network: the KServe v2 HTTP endpoint on uvicorn + starlette.

- ``options``: the server's settings (caps, timeouts, pool size).
- ``wire``: the v2 body, JSON or with the binary tensor data extension.
- ``app``: the routes (Starlette), body caps, auth; the engine runs on a bounded pool.
- ``protocol``: uvicorn's h11 protocol plus a whole-request deadline and 503 + Retry-After.
- ``server``: binds the socket and runs uvicorn on a thread (``RestServer``).
"""
