"""The hook server: thin FastAPI routes around the pure hook functions.

Each route parses and checks the request, calls one pure function with the clock
and the randomness it needs, and returns its result. Request bodies are never
logged: observed children include the notebooks' token Secrets.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from .api import CustomizeRequest, SyncRequest
from .gateway import customize_gateway, sync_gateway
from .notebook import customize_notebook, sync_notebook

log = logging.getLogger("hooks")
app = FastAPI(title="elastic-jupyter hooks", docs_url=None, redoc_url=None)


class BadRequest(Exception):
    def __init__(self, status: int, message: str, details: list | None = None):
        self.status, self.message, self.details = status, message, details


def now() -> str:
    """The hooks' clock: whole seconds, as Kubernetes writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _parse(request: Request, model: type[BaseModel], kind: str) -> dict:
    body = await request.body()
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"request body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest(400, "request body must be a JSON object")
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        # No input echoed back: it may hold Secret data, and Metacontroller logs error bodies.
        details = exc.errors(include_input=False, include_url=False, include_context=False)
        raise BadRequest(422, "not a Metacontroller hook request", details) from None
    if raw["parent"]["kind"] != kind:
        raise BadRequest(422, f"this hook serves {kind}, not {raw['parent']['kind']}")
    return raw


def _json(result: dict) -> Response:
    return Response(content=orjson.dumps(result), media_type="application/json")


@app.exception_handler(BadRequest)
async def _bad_request(_: Request, exc: BadRequest) -> JSONResponse:
    content = {"error": exc.message, **({"details": exc.details} if exc.details else {})}
    return JSONResponse(status_code=exc.status, content=content)


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A 5xx makes Metacontroller keep every child and retry with backoff.
    log.exception("hook %s failed", request.url.path)
    return JSONResponse(status_code=500, content={"error": f"internal error: {type(exc).__name__}"})


@app.post("/sync/jupytergateway")
async def jupytergateway_sync(request: Request) -> Response:
    req = await _parse(request, SyncRequest, "JupyterGateway")
    return _json(sync_gateway(req["parent"], req.get("children") or {}, req.get("related") or {}, now()))


@app.post("/customize/jupytergateway")
async def jupytergateway_customize(request: Request) -> Response:
    req = await _parse(request, CustomizeRequest, "JupyterGateway")
    return _json(customize_gateway(req["parent"]))


@app.post("/sync/jupyternotebook")
async def jupyternotebook_sync(request: Request) -> Response:
    req = await _parse(request, SyncRequest, "JupyterNotebook")
    result = sync_notebook(
        req["parent"], req.get("children") or {}, req.get("related") or {}, now(), secrets.token_hex(24)
    )
    return _json(result)


@app.post("/customize/jupyternotebook")
async def jupyternotebook_customize(request: Request) -> Response:
    req = await _parse(request, CustomizeRequest, "JupyterNotebook")
    return _json(customize_notebook(req["parent"]))


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.get("/readyz")
async def readyz() -> dict:
    return {"status": "ready"}
