"""The hook server: thin FastAPI routes around the pure hook functions.

Each route checks the caller's bearer token, reads the body within a size limit, parses
and checks the request, calls one pure function with the clock and the randomness it
needs, and returns its result. Request bodies are never logged: observed children
include the notebooks' token Secrets.
"""

from __future__ import annotations

import gc
import hmac
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from . import metrics
from .api import CustomizeRequest, SyncRequest
from .gateway import customize_gateway, sync_gateway
from .models import API_VERSION
from .notebook import customize_notebook, sync_notebook

log = logging.getLogger("hooks")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Tune the garbage collector once the server has imported everything.

    Each request allocates thousands of short-lived containers, which trigger full
    collections that rescan the whole long-lived heap (FastAPI, pydantic): freezing that
    heap and collecting less often took p99 at concurrency 64 from 37-355 ms to about
    22 ms (bench/RESULTS.md). Request objects are freed by reference counting anyway.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    hook_auth["token"] = read_token(os.environ.get(TOKEN_FILE_ENV))
    yield


app = FastAPI(title="elastic-jupyter hooks", docs_url=None, redoc_url=None, lifespan=lifespan)

# Largest request body accepted: more than twice a notebook request observing 1,000 children as
# the API server returns them (bench/payloads.py many_children_request, large pod template:
# 6.75 MiB). Real requests are 16-40 KB: a parent owns a handful of children. Parsing 16 MiB
# peaks at about 165 MB RSS, within the 256Mi limit of a replica.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Bodies above this are parsed with the cyclic GC paused (see _loads). /healthz waits while a
# body is parsed: about 70-230 ms for a 7-8 MiB request, up to about 250 ms at the limit, well within
# the probes' 1 s timeout. Parsing on a worker thread did not shorten that wait (measured):
# orjson holds the GIL for the whole parse.
BIG_BODY_BYTES = 256 * 1024

TOKEN_FILE_ENV = "ELASTIC_JUPYTER_HOOKS_TOKEN_FILE"
# The bearer token callers must send; None serves anyone (only `make run` starts so). Read once
# at startup: rotating it restarts the hook server and Metacontroller (README).
hook_auth: dict[str, bytes | None] = {"token": None}


def read_token(path: str | None) -> bytes | None:
    """The bearer token Metacontroller must send, from a file mounted from a Secret (None: no auth)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            token = f.read().strip()  # Metacontroller trims the Secret's value the same way
    except OSError as exc:
        raise SystemExit(f"--token-file {path}: {exc.strerror}") from None
    if not token:
        raise SystemExit(f"--token-file {path} is empty")
    return token


class BadRequest(Exception):
    def __init__(self, status: int, kind: str, message: str, details: list | None = None):
        self.status, self.kind, self.message, self.details = status, kind, message, details


def now() -> str:
    """The hooks' clock: whole seconds, as Kubernetes writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _authorized(request: Request) -> bool:
    token = hook_auth["token"]
    if token is None:
        return True
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return hmac.compare_digest(credentials.strip().encode(), token) and scheme.lower() == "bearer"


async def _read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as it is known to exceed MAX_BODY_BYTES.

    With a Content-Length the HTTP parser delivers no more than it declares, so a declared
    size within the limit is read as is; a chunked body is counted as it arrives.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit():
        if int(declared) > MAX_BODY_BYTES:
            raise BadRequest(413, "too_large", f"request body of {declared} bytes exceeds {MAX_BODY_BYTES} bytes")
        return await request.body()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(413, "too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _loads(body: bytes):
    """orjson.loads, with the cyclic GC paused for a big body.

    The parse holds the GIL, so /healthz waits for it; the collections it triggers only rescan
    objects that reference counting frees anyway, and pausing them parses 8 MB 40% faster.
    """
    if len(body) <= BIG_BODY_BYTES:
        return orjson.loads(body)
    gc.disable()
    try:
        return orjson.loads(body)
    finally:
        gc.enable()


def _parse(body: bytes, model: type[BaseModel], kind: str) -> dict:
    try:
        raw = _loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, "bad_json", f"request body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest(400, "bad_json", "request body must be a JSON object")
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        # No input echoed back: it may hold Secret data, and Metacontroller logs error bodies.
        details = exc.errors(include_input=False, include_url=False, include_context=False)
        raise BadRequest(422, "bad_request", "not a Metacontroller hook request", details) from None
    if raw["parent"]["kind"] != kind:
        raise BadRequest(422, "wrong_kind", f"this hook serves {kind}, not {raw['parent']['kind']}")
    if raw["parent"]["apiVersion"] != API_VERSION:
        message = f"this hook serves {kind} of {API_VERSION}, not of {raw['parent']['apiVersion']}"
        raise BadRequest(422, "wrong_kind", message)
    return raw


def _hook(path: str, model: type[BaseModel], kind: str, call: Callable[[dict], dict]) -> None:
    """Register POST ``path``: check the token, read and parse, call the pure function, answer, measure."""
    name = path.strip("/")
    latency = metrics.LATENCY.labels(name)

    async def route(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if not _authorized(request):
                raise BadRequest(401, "unauthorized", "missing or wrong bearer token")
            result = call(_parse(await _read_body(request), model, kind))
        except BadRequest as exc:
            metrics.ERRORS.labels(name, exc.kind).inc()
            metrics.CALLS.labels(name, str(exc.status)).inc()
            content = {"error": exc.message, **({"details": exc.details} if exc.details else {})}
            # A refused body may still be arriving: close rather than read it.
            headers = {"connection": "close"} if exc.status == 413 else None
            return JSONResponse(status_code=exc.status, content=content, headers=headers)
        except ClientDisconnect:
            metrics.ERRORS.labels(name, "disconnected").inc()
            return Response(status_code=400)  # nobody reads it: the client is gone
        except Exception as exc:
            # A 5xx makes Metacontroller keep every child and retry with backoff.
            log.exception("hook %s failed", path)
            metrics.ERRORS.labels(name, "internal").inc()
            metrics.CALLS.labels(name, "500").inc()
            return JSONResponse(status_code=500, content={"error": f"internal error: {type(exc).__name__}"})
        body = orjson.dumps(result)
        metrics.record_result(name, result)
        metrics.CALLS.labels(name, "200").inc()
        latency.observe(time.perf_counter() - started)
        return Response(content=body, media_type="application/json")

    app.add_api_route(path, route, methods=["POST"], name=name)


def _related(req: dict) -> dict:
    return req.get("related") or {}


_hook(
    "/sync/jupytergateway",
    SyncRequest,
    "JupyterGateway",
    lambda req: sync_gateway(req["parent"], req.get("children") or {}, _related(req), now(), secrets.token_hex(24)),
)
_hook("/customize/jupytergateway", CustomizeRequest, "JupyterGateway", lambda req: customize_gateway(req["parent"]))
_hook(
    "/sync/jupyternotebook",
    SyncRequest,
    "JupyterNotebook",
    lambda req: sync_notebook(req["parent"], req.get("children") or {}, _related(req), now(), secrets.token_hex(24)),
)
_hook("/customize/jupyternotebook", CustomizeRequest, "JupyterNotebook", lambda req: customize_notebook(req["parent"]))


@app.exception_handler(HTTPException)
async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
    """404, 405 and the like in the same shape as every other error."""
    return JSONResponse(status_code=exc.status_code, content={"error": exc.detail}, headers=exc.headers)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.get("/readyz")
async def readyz() -> dict:
    return {"status": "ready"}


@app.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(content=generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
