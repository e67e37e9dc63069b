"""The KServe v2 (Open Inference Protocol) HTTP routes, as a Starlette app.

Every request gets an HTTP answer with ``{"error": reason}`` when refused: 400 for a bad request,
401 (with ``WWW-Authenticate: Bearer``) without the token, 404 for another model, 405 (with
``Allow``) for a wrong method, 411 for a POST with no length, 413 over the body/batch/element
caps, 503 (with ``Retry-After``) when the in-flight body bytes would pass their cap. Bodies are
read here on the event loop, within the caps; decoding, the model and encoding run on a bounded
thread pool, so the synchronous engine never blocks the loop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge_agent.serving import wire
from edge_agent.serving.engine import Engine, ModelError
from edge_agent.serving.options import RestOptions
from edge_agent.serving.validation import RequestError

log = logging.getLogger("edge_agent.serving.rest")


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ByteBudget:
    """Body bytes held by requests in flight (received, decoding, running), under one cap.

    Only the event loop thread takes and gives, so a plain counter is enough."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.cap:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


@dataclass
class Context:
    engine: Engine
    token: str | None
    options: RestOptions
    pool: ThreadPoolExecutor
    budget: ByteBudget
    inline: InlineGate = field(default_factory=lambda: InlineGate())


class InlineGate:
    """Runs a request on the event loop itself when recent requests took well under a
    millisecond: for a fast model the two thread hand-offs (loop → pool → loop) cost more than
    the model (a 20 µs MLP served at a third of the stdlib server's rate through the pool).
    Slow or large requests keep going to the pool, so the loop never stalls on them. It starts
    on the pool and moves only after `warmup` fast requests in a row; one slow request sends
    it back."""

    def __init__(self, below_s: float = 0.0005, warmup: int = 16, max_bytes: int = 64 * 1024):
        self.below_s = below_s
        self.warmup = warmup
        self.max_bytes = max_bytes
        self.fast_in_a_row = 0

    def allows(self, size: int, encoded: bool) -> bool:
        return self.fast_in_a_row >= self.warmup and size <= self.max_bytes and not encoded

    def record(self, seconds: float) -> None:
        self.fast_in_a_row = self.fast_in_a_row + 1 if seconds < self.below_s else 0


def build_app(ctx: Context) -> Starlette:
    def models(path: str, endpoint: Callable[..., Any], method: str) -> list[Route]:
        return [
            Route(f"/v2/models/{{name}}{path}", endpoint, methods=[method]),
            Route(f"/v2/models/{{name}}/versions/{{version}}{path}", endpoint, methods=[method]),
        ]

    async def server_metadata(request: Request) -> Response:
        return _json(
            {"name": "edgekit-edge-agent", "version": "1", "extensions": ["binary_tensor_data"]}
        )

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        is_ready = ctx.engine.ready
        return _json({"ready": is_ready}, 200 if is_ready else 503)

    async def model_metadata(request: Request) -> Response:
        _check(ctx, request)
        return _json(ctx.engine.metadata())

    async def model_ready(request: Request) -> Response:
        _check(ctx, request)
        is_ready = ctx.engine.ready
        return _json(
            {"name": request.path_params["name"], "ready": is_ready}, 200 if is_ready else 503
        )

    async def infer(request: Request) -> Response:
        return await _post(ctx, request, _infer_sync, count_errors=True)

    async def feedback(request: Request) -> Response:
        return await _post(ctx, request, _feedback_sync, count_errors=False)

    async def http_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            message = (
                f"no route {request.method} {request.url.path}"
                if exc.status_code == 404
                else f"{request.method} is not allowed on {request.url.path}"
                if exc.status_code == 405
                else str(exc.detail)
            )
            return _error(ctx, request, exc.status_code, message, dict(exc.headers or {}))
        assert isinstance(exc, HttpError)
        return _error(ctx, request, exc.status, exc.message, exc.headers)

    routes = [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        *models("", model_metadata, "GET"),
        *models("/ready", model_ready, "GET"),
        *models("/infer", infer, "POST"),
        *models("/feedback", feedback, "POST"),
    ]
    return Starlette(
        routes=routes, exception_handlers={HTTPException: http_error, HttpError: http_error}
    )


# -- answers ---------------------------------------------------------------------------------
def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status)


def _error(
    ctx: Context, request: Request, status: int, message: str, headers: dict[str, str]
) -> Response:
    """An error answer. A body left unread is drained by the server after the answer (so that
    clients that write it all before reading see the answer) only up to ``drain_max_bytes``;
    past that, or when its size is unknown, the connection closes after the answer."""
    headers = dict(headers)
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="edge-agent"')
    if request.method == "POST" and not getattr(request, "_stream_consumed", False):
        length = request.headers.get("content-length")
        if length is None or int(length) > ctx.options.drain_max_bytes:
            headers["Connection"] = "close"
    return JSONResponse({"error": message}, status, headers)


def _check(ctx: Context, request: Request) -> None:
    """Bearer token first (RFC 6750; the scheme is case-insensitive), then the model name."""
    engine = ctx.engine
    if ctx.token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), ctx.token.encode()
        ):
            engine.record_error("unauthorized")
            raise HttpError(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)")
    model = engine.model
    name, version = request.path_params["name"], request.path_params.get("version")
    if name != model.name:
        raise HttpError(404, f"no model {name!r}; this agent serves {model.name!r}")
    if version is not None and version != model.variant:
        raise HttpError(
            404, f"model {name!r} has no version {version!r}; serving {model.variant!r}"
        )


async def _read_body(ctx: Context, request: Request) -> tuple[bytearray, int]:
    """The whole body within the caps; returns it and the bytes reserved from the budget."""
    opts = ctx.options
    cap = opts.max_request_bytes
    length = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if length is None and not chunked:
        raise HttpError(411, "POST needs a Content-Length header (or Transfer-Encoding: chunked)")
    declared = int(length) if length is not None else None  # h11 checked it is a number
    if declared is not None and declared > cap:
        raise HttpError(
            413,
            f"request body of {declared} bytes exceeds the cap of {cap} bytes "
            "(max_request_bytes in the agent's configuration)",
        )
    busy = HttpError(
        503,
        f"the agent holds {ctx.budget.used} bytes of requests in flight (cap "
        f"{ctx.budget.cap}, max_inflight_bytes); retry shortly",
        {"Retry-After": str(opts.retry_after_s)},
    )
    reserved = declared or 0
    if reserved and not ctx.budget.take(reserved):
        raise busy
    # one buffer, sized up front when the length is declared: no second copy by a join
    body = bytearray(declared or 0)
    received = 0
    try:
        async for chunk in request.stream():
            n = len(chunk)
            if received + n > cap:
                raise HttpError(413, f"request body exceeds the cap of {cap} bytes")
            if declared is None:
                if not ctx.budget.take(n):
                    raise busy
                reserved += n
                body += chunk
            elif received + n > declared:  # h11 prevents this; never write past the buffer
                raise HttpError(400, "request body is longer than its Content-Length")
            else:
                body[received : received + n] = chunk
            received += n
    except BaseException:
        ctx.budget.give(reserved)
        raise
    return body, reserved


async def _post(
    ctx: Context,
    request: Request,
    work: Callable[[Engine, bytearray, dict[str, str | None], float, int], Response],
    *,
    count_errors: bool,
) -> Response:
    received = time.perf_counter()
    _check(ctx, request)
    if count_errors and not ctx.engine.ready:
        ctx.engine.record_error("not_ready")
        raise HttpError(
            503, "the model is not ready", {"Retry-After": str(ctx.options.retry_after_s)}
        )
    try:
        raw, reserved = await _read_body(ctx, request)
    except ClientDisconnect:
        log.debug("client %s left before sending its whole request", request.client)
        return Response(status_code=400)  # nobody reads it: the connection is gone
    except HttpError as exc:
        if count_errors and exc.status == 413:
            ctx.engine.record_error("too_large")
        raise
    headers = {
        "encoding": request.headers.get("content-encoding", ""),
        "header_length": request.headers.get(wire.HEADER_LENGTH),
    }
    loop = asyncio.get_running_loop()
    args = (ctx.engine, raw, headers, received, ctx.options.max_request_bytes)
    try:
        if ctx.inline.allows(len(raw), bool(headers["encoding"])):
            started = time.perf_counter()
            try:
                return work(*args)
            finally:
                ctx.inline.record(time.perf_counter() - started)
        response = await loop.run_in_executor(ctx.pool, _timed, work, args)
        ctx.inline.record(response[1])
        return response[0]
    except Exception:  # a bug of ours, never the client's: say so once, keep serving
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error; see the agent's log"}, 500)
    finally:
        del raw
        ctx.budget.give(reserved)


def _timed(work: Callable[..., Response], args: tuple[Any, ...]) -> tuple[Response, float]:
    """The work and its own duration on the pool thread (queueing left out: it says how fast
    the model is, not how busy the pool was)."""
    started = time.perf_counter()
    return work(*args), time.perf_counter() - started


def _infer_sync(
    engine: Engine,
    raw: bytes | bytearray,
    headers: dict[str, str | None],
    received: float,
    cap: int,
) -> Response:
    try:
        raw = wire.decompress(raw, headers["encoding"] or None, cap)
        body, tail = wire.split_body(raw, headers["header_length"])
        binary = wire.split_inputs(body, tail)
    except RequestError as exc:
        engine.record_error(exc.kind)
        return JSONResponse({"error": exc.message}, exc.status)
    try:
        result = engine.infer_v2(body, received, binary)
        data, header_length = wire.encode_response(
            result.head,
            result.specs,
            result.names,
            result.arrays,
            wire.binary_outputs(body, result.names),
        )
    except RequestError as exc:
        return JSONResponse({"error": exc.message}, exc.status)
    except ModelError as exc:
        return JSONResponse({"error": str(exc)}, 500)
    if header_length is None:
        return Response(data, 200, media_type="application/json")
    return Response(
        data,
        200,
        {"Inference-Header-Content-Length": str(header_length)},
        media_type="application/octet-stream",
    )


def _feedback_sync(
    engine: Engine, raw: bytearray, headers: dict[str, str | None], received: float, cap: int
) -> Response:
    try:
        body, _ = wire.split_body(wire.decompress(raw, headers["encoding"] or None, cap), None)
        return JSONResponse(engine.feedback(body))
    except RequestError as exc:
        return JSONResponse({"error": exc.message}, exc.status)
