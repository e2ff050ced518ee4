"""How `python -m hooks serve` runs uvicorn, with the limits uvicorn lacks.

uvicorn's httptools protocol (kept for its speed, bench/RESULTS.md) accepts request
headers of any size and waits forever for a request that never finishes arriving: its
only timer is the keep-alive one between requests. (uvicorn's h11 protocol bounds headers
with h11_max_incomplete_event_size but has no such deadline either, and parses in pure
Python.) ``GuardedHttpToolsProtocol`` adds:

- a header limit: more than ``MAX_HEADER_BYTES`` before the end of the headers gets a 431
  and the connection is closed (a 200 MB header used to be buffered whole);
- a request deadline: a request whose headers and body have not all arrived
  ``REQUEST_TIMEOUT`` seconds after it began (or after the connection opened) is dropped.
  Metacontroller gives up on a hook call after 10 s anyway (our CompositeControllers' timeout).

The body limit is the app's (hooks/app.py), which reads the body as a stream.
"""

from __future__ import annotations

import asyncio
import os
import sys

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import TOKEN_FILE_ENV  # hooks.app reads the token at startup, not import

MAX_HEADER_BYTES = 64 * 1024
REQUEST_TIMEOUT = 10.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._deadline: asyncio.TimerHandle | None = None
        self._arm_deadline()

    def _arm_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(REQUEST_TIMEOUT, self._too_slow)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            msg = b'{"error": "request headers exceed %d bytes"}' % MAX_HEADER_BYTES
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(msg), msg)
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._arm_deadline()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests uvicorn's keep-alive timer closes an idle connection.
        self._in_head, self._head_bytes = True, 0


def serve(host: str, port: int, workers: int, token_file: str | None) -> None:
    import uvicorn

    if token_file:
        os.environ[TOKEN_FILE_ENV] = token_file  # read by hooks.app in every worker
    else:
        os.environ.pop(TOKEN_FILE_ENV, None)
        print(
            "WARNING: no --token-file: the hooks answer anyone who can reach "
            f"{host}:{port} (fine on 127.0.0.1 for `make run`; the manifests always give one)",
            file=sys.stderr,
        )
    uvicorn.run(
        "hooks.app:app",
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        loop=event_loop(workers),
        http=GuardedHttpToolsProtocol,
        # No limit_concurrency: it counts open connections, so 1,000 idle clients would make
        # every request, /healthz included, answer 503; the request deadline drops them instead.
    )


def event_loop(workers: int) -> str:
    """The event loop uvicorn should use (measured in bench/RESULTS.md).

    One worker (the manifests' setting): the stdlib loop, because under a burst of new
    connections uvloop starved a few of them behind the CPU-bound handlers for up to 0.8 s.
    Several workers: uvloop, because there the stdlib loop leaves TCP_NODELAY off on the
    shared socket and every answer waits 40 ms for a delayed ACK.
    """
    return "asyncio" if workers == 1 else "uvloop"
