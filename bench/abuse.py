"""The hook server under abuse: huge bodies and headers, 1,000 slow clients, random child kinds.

``python -m bench.abuse`` runs the real server (``python -m hooks serve`` with a token file, on
127.0.0.1 only), prints the figures, and exits non-zero if a target is missed:

- a 200 MB body is refused (413) and the server's peak RSS stays under twice its idle RSS;
- ``/healthz`` answers in under 100 ms while 1,000 slow clients are connected, and the server
  drops them once the request deadline passes;
- the number of metric series stays bounded after 10,000 requests claiming random child kinds.

``tests/test_hook_server_abuse.py`` runs the same scenarios and asserts what does not depend on
timing. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import payloads
from hooks.app import MAX_BODY_BYTES
from hooks.serving import MAX_HEADER_BYTES, REQUEST_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
HOOK = "/sync/jupytergateway"
NOTEBOOK_HOOK = "/sync/jupyternotebook"


@dataclass
class Server:
    port: int
    token: str
    proc: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def status(self, field: str) -> float:
        """A /proc/<pid>/status memory field (VmRSS, VmHWM) in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        """Make VmHWM start again from the current RSS (Linux clear_refs 5)."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(workdir: Path) -> Iterator[Server]:
    """``python -m hooks serve`` with a token file, as the manifests run it (one worker)."""
    token = "abuse-test-" + "7" * 40
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    log = workdir / "hooks.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hooks", "serve", "--port", str(port), "--token-file", str(token_file)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, token, proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hook server exited: {log.read_text()}")
            try:
                if httpx.get(f"{server.base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hook server not ready in 30 s")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _response(sock: socket.socket, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """(status, body) of the response on ``sock``, or (None, b"") if the server reset it."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError, BrokenPipeError):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, b""
    return int(data.split()[1]), data.partition(b"\r\n\r\n")[2]


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _stream(sock: socket.socket, head: bytes, pieces: Iterator[bytes]) -> int:
    """Send ``head`` then ``pieces`` until the server answers or hangs up; bytes of ``pieces`` sent."""
    sent = 0
    try:
        sock.sendall(head)
        for piece in pieces:
            if _readable(sock):
                break
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def _warm_up(server: Server) -> None:
    body = json.dumps(payloads.gateway_request()).encode()
    for _ in range(20):
        response = httpx.post(server.base + HOOK, content=body, headers=server.auth(), timeout=10)
        assert response.status_code == 200, response.text


def huge_body(server: Server, size: int = 200 * MB) -> dict:
    """A ``size`` body declared by Content-Length, then one sent chunked: both refused, RSS flat."""
    _warm_up(server)
    idle = server.status("VmRSS")
    server.reset_peak()
    auth = f"authorization: Bearer {server.token}\r\n".encode()
    piece = b"x" * MB

    with _connect(server.port) as sock:
        head = b"POST %s HTTP/1.1\r\nhost: h\r\n%scontent-length: %d\r\n\r\n" % (HOOK.encode(), auth, size)
        declared_sent = _stream(sock, head, (piece for _ in range(size // MB)))
        declared, declared_body = _response(sock)

    with _connect(server.port) as sock:
        head = b"POST %s HTTP/1.1\r\nhost: h\r\n%stransfer-encoding: chunked\r\n\r\n" % (HOOK.encode(), auth)
        chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
        chunked_sent = _stream(sock, head, (chunk for _ in range(size // MB)))
        chunked, chunked_body = _response(sock)

    return {
        "idle RSS MB": round(idle, 1),
        "peak RSS MB": round(server.status("VmHWM"), 1),
        "declared: status": declared,
        "declared: error": json.loads(declared_body)["error"] if declared_body else None,
        "declared: MB sent before refusal": round(declared_sent / MB, 1),
        "chunked: status": chunked,
        "chunked: MB sent before refusal": round(chunked_sent / MB, 1),
        "chunked: error": json.loads(chunked_body)["error"] if chunked_body else None,
        "alive": server.proc.poll() is None,
    }


def huge_headers(server: Server, size: int = 200 * MB) -> dict:
    """One header of ``size`` bytes, sent 1 MB at a time: answered 431 and the connection closed."""
    server.reset_peak()
    idle = server.status("VmRSS")
    with _connect(server.port) as sock:
        head = b"POST %s HTTP/1.1\r\nhost: h\r\nx-big: " % HOOK.encode()
        sent = _stream(sock, head, (b"a" * MB for _ in range(size // MB)))
        status, _ = _response(sock)
    return {
        "idle RSS MB": round(idle, 1),
        "peak RSS MB": round(server.status("VmHWM"), 1),
        "status": status,
        "MB sent before refusal": round(sent / MB, 1),
        "alive": server.proc.poll() is None,
    }


def _healthz_ms(port: int) -> float:
    started = time.perf_counter()
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: h\r\n\r\n")
        status, body = _response(sock, timeout=5)
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 200 and json.loads(body) == {"status": "ok"}, (status, body)
    return elapsed


def slow_clients(server: Server, clients: int = 1000, probes: int = 20) -> dict:
    """``clients`` connections that send half a request and stall; /healthz meanwhile; when dropped."""
    socks: list[socket.socket] = []
    opened = time.monotonic()
    try:
        for i in range(clients):
            sock = _connect(server.port)
            if i % 2:  # headers never finish
                sock.sendall(b"POST %s HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\n" % HOOK.encode())
            else:  # authorized, headers done, body never finishes
                head = f"POST {HOOK} HTTP/1.1\r\nhost: h\r\nauthorization: Bearer {server.token}\r\n"
                sock.sendall(head.encode() + b'content-length: 100000\r\n\r\n{"parent": ')
            socks.append(sock)
        # The first probe queues behind the burst of 1,000 connections the server has not taken
        # in yet (it accepts in order): once it is answered, every slow client is connected.
        behind_burst = _healthz_ms(server.port)
        latencies = [_healthz_ms(server.port) for _ in range(probes)]
        connected = sum(not _readable(s) for s in socks)  # none answered or closed yet
        # The server drops every stalled request at its deadline: wait for all EOFs, bounded.
        open_socks, limit = set(socks), opened + REQUEST_TIMEOUT + 30
        while open_socks and time.monotonic() < limit:
            ready = select.select(list(open_socks)[:900], [], [], 0.5)[0]
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, TimeoutError):
                    data = b""
                if not data:
                    open_socks.discard(sock)
        dropped_after = time.monotonic() - opened
        return {
            "slow clients": clients,
            "still connected during probes": connected,
            "healthz ms, first probe behind the connection burst": round(behind_burst, 1),
            "healthz median ms": round(statistics.median(latencies), 1),
            "healthz max ms": round(max(latencies), 1),
            "not dropped": len(open_socks),
            "all dropped after s": round(dropped_after, 1),
            "alive": server.proc.poll() is None,
        }
    finally:
        for sock in socks:
            sock.close()


def big_valid_request(server: Server, children: int = 1000) -> dict:
    """/healthz, probed back to back while the server answers a request observing ``children``."""
    body = json.dumps(payloads.many_children_request(children)).encode()
    answered: dict = {}

    def post() -> None:
        started = time.perf_counter()
        response = httpx.post(server.base + NOTEBOOK_HOOK, content=body, headers=server.auth(), timeout=60)
        answered.update(status=response.status_code, seconds=time.perf_counter() - started)

    server.reset_peak()
    idle = server.status("VmRSS")
    poster = threading.Thread(target=post)
    poster.start()
    latencies = []
    while poster.is_alive() and len(latencies) < 10_000:
        latencies.append(_healthz_ms(server.port))
    poster.join(60)
    return {
        "request MB": round(len(body) / MB, 2),
        "status": answered.get("status"),
        "answered in s": round(answered.get("seconds", 0), 2),
        "idle RSS MB": round(idle, 1),
        "peak RSS MB": round(server.status("VmHWM"), 1),
        "healthz probes": len(latencies),
        "healthz median ms": round(statistics.median(latencies), 1) if latencies else None,
        "healthz max ms": round(max(latencies), 1) if latencies else None,
    }


def _random_kinds_request(rng: random.Random) -> bytes:
    """An invalid gateway spec (the hook keeps every observed child) with children of made-up kinds."""
    children = {}
    for _ in range(3):
        kind = f"Kind{rng.getrandbits(40):x}"
        name = f"c{rng.getrandbits(20):x}"
        obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "default"}}
        children[f"{kind}.v1"] = {f"default/{name}": obj}
    parent = {
        "apiVersion": "kubeflow.tkestack.io/v1alpha1",
        "kind": "JupyterGateway",
        "metadata": {"name": "gw", "namespace": "default", "uid": "u"},
        "spec": {"cullInterval": "often"},
    }
    return json.dumps({"controller": {}, "parent": parent, "children": children, "related": {}}).encode()


def _series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("elastic_jupyter_"))


def random_kinds(server: Server, requests: int = 10_000, seconds: float = 120.0) -> dict:
    """``requests`` sync calls whose kept children claim random kinds; series before and after."""
    rng = random.Random(9)
    with httpx.Client(base_url=server.base, headers=server.auth(), timeout=10) as client:
        before = client.get("/metrics").text
        rss_before = server.status("VmRSS")
        ok, deadline = 0, time.monotonic() + seconds
        for _ in range(requests):
            ok += client.post(HOOK, content=_random_kinds_request(rng)).status_code == 200
            if time.monotonic() > deadline:
                break
        after = client.get("/metrics").text
    return {
        "requests answered 200": ok,
        "series before": _series(before),
        "series after": _series(after),
        "/metrics KB after": round(len(after) / 1024, 1),
        "RSS growth MB": round(server.status("VmRSS") - rss_before, 1),
    }


def main() -> int:
    targets = []
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        print(
            f"body limit {MAX_BODY_BYTES / MB:.0f} MB, header limit {MAX_HEADER_BYTES // 1024} KB, "
            f"request deadline {REQUEST_TIMEOUT:.0f} s"
        )
        body = huge_body(server)
        print("200 MB body:", body)
        targets.append(
            (
                "200 MB body refused, RSS < 2x idle",
                body["declared: status"] == 413 and body["peak RSS MB"] < 2 * body["idle RSS MB"],
            )
        )
        headers = huge_headers(server)
        print("200 MB header:", headers)
        targets.append(("200 MB header refused", headers["status"] == 431 and headers["alive"]))
        big = big_valid_request(server)
        # No target: the parse holds the GIL (hooks/app.py BIG_BODY_BYTES), so this is a figure.
        print("a valid request with 1,000 observed children:", big)
        slow = slow_clients(server)
        print("1,000 slow clients:", slow)
        targets.append(("/healthz < 100 ms with 1,000 slow clients", slow["healthz max ms"] < 100))
        targets.append(("slow clients dropped", slow["not dropped"] == 0))
        kinds = random_kinds(server)
        print("10,000 requests with random kinds:", kinds)
        targets.append(("metric series bounded", kinds["series after"] <= kinds["series before"] + 10))
    for name, met in targets:
        print(f"{'met ' if met else 'MISSED'}  {name}")
    return 0 if all(met for _, met in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
