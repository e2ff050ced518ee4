"""Reference (a): the ceiling of the stack. Same FastAPI/uvicorn, same routes, same body read,
but the route returns precomputed response bytes (from $BENCH_RESPONSES, a JSON file
{path: response text}) instead of calling the hooks."""

import json
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

RESPONSES = {path: body.encode() for path, body in json.loads(Path(os.environ["BENCH_RESPONSES"]).read_text()).items()}
app = FastAPI(docs_url=None, redoc_url=None)


async def _answer(request: Request) -> Response:
    await request.body()
    return Response(content=RESPONSES[request.url.path], media_type="application/json")


for _path in RESPONSES:
    app.add_api_route(_path, _answer, methods=["POST"])
