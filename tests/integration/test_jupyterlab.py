"""JupyterLab, unmodified, in Chromium, through the rendered notebook and gateway.

Lab offers the kernel websocket subprotocol ``v1.kernel.websocket.jupyter.org``; the
rendered notebook server (its ConfigMap's jupyter_server_config.py) accepts it and
translates to the JSON protocol Enterprise Gateway 3.3 speaks. Nothing in the page is
patched and nothing is retried: every notebook must run its first cell on the first try.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid

import identity
import localrun as lr
import pytest
from jupyterlab import JupyterLab
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from rendered import gateway_cr, notebook_cr, render_gateway, render_notebook

pytestmark = pytest.mark.integration

V1 = "v1.kernel.websocket.jupyter.org"
PARTS = ("header", "parent_header", "metadata", "content")
RUNS = 20  # fresh notebooks (and kernels) per notebook server


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One gateway and two users' notebooks on it, all started from what the hooks render."""
    gateway = gateway_cr("gw", cullIdleTimeout=0, cullInterval=1)
    gateway_children = render_gateway(gateway)
    notebook_children = {
        user: render_notebook(notebook_cr(user, gateway={"name": "gw"}), gateway, gateway_children)
        for user in ("alice", "bob")
    }
    workdir = tmp_path_factory.mktemp("lab")
    with identity.local_cluster(workdir) as ids, lr.LocalStack(workdir) as stack:
        rendered = [gateway_children, *notebook_children.values()]
        ids.install([c for children in rendered for key, c in children.items() if "/" in key])
        eg, door = identity.start_gateway_pod(stack, ids, gateway_children)
        notebooks = {}
        for user, children in notebook_children.items():
            assert "ConfigMap" in children, "the notebook's server configuration is rendered"
            # the runner's work directory and log are named after the container
            notebooks[user] = identity.start_notebook(stack, ids, children, door, name=f"notebook-{user}")
        yield {"eg": eg, "door": door, **notebooks}


def gateway_kernels(eg: lr.LocalProcess) -> set[str]:
    status, kernels = eg.api("GET", "/api/kernels")
    assert status == 200, kernels
    return {k["id"] for k in kernels}


def token_of(server: lr.LocalProcess) -> str:
    return server.headers["Authorization"].split()[-1]


# --- the v1 protocol on the wire (a plain websocket client, not a browser) ---------------------


def v1_frame(channel: str, msg: dict, buffers: list[bytes] = ()) -> bytes:
    """The v1 kernel websocket frame, written from its specification (little-endian u64 offsets)."""
    parts = [channel.encode()] + [json.dumps(msg[k]).encode() for k in PARTS]
    parts += list(buffers)
    offsets = [8 * (1 + len(parts) + 1)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + b"".join(parts)


def from_v1(frame: bytes) -> dict:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    parts = [frame[a:b] for a, b in itertools.pairwise(offsets)]
    msg = {k: json.loads(p) for k, p in zip(PARTS, parts[1:5], strict=True)}
    return {**msg, "channel": parts[0].decode(), "buffers": parts[5:]}


def request(msg_type: str, channel: str, content: dict, session: str) -> dict:
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session, "username": "t",
              "version": "5.3", "date": "2026-01-01T00:00:00Z"}  # fmt: skip
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": channel}


def replies(ws, parent_id: str, until: str, timeout: float = 30) -> list[dict]:
    """v1 messages caused by ``parent_id``, until one of type ``until`` and the kernel's idle status
    have both come (shell and iopub are not ordered with each other). Each must be a binary v1 frame."""
    import websocket

    got, deadline = [], time.monotonic() + timeout
    ws.settimeout(1)  # short reads: the server's pings must not keep one recv() waiting forever
    while time.monotonic() < deadline:
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        assert isinstance(frame, bytes), f"a text frame on a v1 connection: {frame[:200]!r}"
        msg = from_v1(frame)
        if msg["parent_header"].get("msg_id") == parent_id:
            got.append(msg)
            types = [(m["header"]["msg_type"], m["content"].get("execution_state")) for m in got]
            if ("status", "idle") in types and until in [t for t, _ in types]:
                return got
    raise AssertionError(f"no {until} and idle for {parent_id} in {timeout}s: {[m['header']['msg_type'] for m in got]}")


def first(messages: list[dict], msg_type: str) -> dict:
    found = [m for m in messages if m["header"]["msg_type"] == msg_type]
    assert found, f"no {msg_type} among {[m['header']['msg_type'] for m in messages]}"
    return found[0]


def test_the_notebook_speaks_v1_to_clients_that_offer_it_and_json_to_the_gateway(shared):
    import websocket

    server = shared["alice"]
    status, kernel = server.api("POST", "/api/kernels", {})
    assert status == 201, kernel
    session = uuid.uuid4().hex
    url = server.url.replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels?session_id={session}"
    ws = websocket.create_connection(url, header=[f"Authorization: token {token_of(server)}"], subprotocols=[V1])
    try:
        assert ws.getsubprotocol() == V1, "the server selects the subprotocol the browser offers"
        run = request("execute_request", "shell", {"code": "6 * 7", "silent": False}, session)
        ws.send_binary(v1_frame("shell", run))
        messages = replies(ws, run["header"]["msg_id"], "execute_reply")
        result = first(messages, "execute_result")
        assert (result["channel"], result["content"]["data"]["text/plain"]) == ("iopub", "42")
        reply = first(messages, "execute_reply")
        assert (reply["channel"], reply["content"]["status"]) == ("shell", "ok")
        # Binary buffers from the browser reach the kernel: a comm the kernel opens echoes them as text.
        # (Not the other way: Jupyter Server's gateway client fails on binary frames from the gateway;
        # see README, Known limits.)
        code = (
            "from comm import create_comm\n"
            "echo = create_comm(target_name='echo', data={})\n"
            "echo.on_msg(lambda m: echo.send({'got': [bytes(b).decode() for b in m['buffers']]}))"
        )
        opening = request("execute_request", "shell", {"code": code, "silent": False}, session)
        ws.send_binary(v1_frame("shell", opening))
        opened = replies(ws, opening["header"]["msg_id"], "execute_reply")
        comm_id = first(opened, "comm_open")["content"]["comm_id"]
        echo = request("comm_msg", "shell", {"comm_id": comm_id, "data": {}}, session)
        ws.send_binary(v1_frame("shell", echo, [b"buffer-1", b"buffer-2"]))
        answer = first(replies(ws, echo["header"]["msg_id"], "comm_msg"), "comm_msg")
        assert answer["content"]["data"] == {"got": ["buffer-1", "buffer-2"]}
    finally:
        ws.close()
    assert server.api("DELETE", f"/api/kernels/{kernel['id']}")[0] == 204


# --- the browser ---------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_jupyterlab_runs_the_first_cell_on_the_first_try_in_every_new_notebook(shared, user, artifacts_dir):
    """RUNS new notebooks in a row, each with a fresh kernel on the shared gateway; no retry."""
    eg, server = shared["eg"], shared[user]
    timings = []
    with JupyterLab(server.url, token_of(server), failure_shot=artifacts_dir / f"jupyterlab-{user}-failed.png") as lab:
        for run in range(RUNS):
            before = gateway_kernels(eg)
            started = time.monotonic()
            lab.new_notebook()
            result = lab.run("1+1")
            timings.append(round(time.monotonic() - started, 2))
            assert result == {"output": "2", "prompt": "[1]:"}, f"run {run + 1}: {result}\n" + "\n".join(lab.console)
            assert len(gateway_kernels(eg) - before) == 1, "each notebook runs on a new kernel on the gateway"
            if run == RUNS - 1:
                shot = lab.screenshot(artifacts_dir / f"jupyterlab-{user}-1plus1.png")
            lab.close_and_shut_down()
    assert shot.stat().st_size > 10_000
    assert "Replacing stale connection" not in eg.log(), "Lab connected once per kernel, no second connection raced"
    report = {"runs": RUNS, "lab_load_s": round(lab.load_seconds, 2), "first_cell_s": timings}
    (artifacts_dir / f"jupyterlab-{user}-timings.json").write_text(json.dumps(report, indent=1))


def test_restart_and_interrupt_from_lab_menu_work_through_the_gateway(shared, artifacts_dir):
    server = shared["alice"]
    with JupyterLab(server.url, token_of(server), failure_shot=artifacts_dir / "jupyterlab-restart-failed.png") as lab:
        lab.new_notebook()
        assert lab.run("x = 1") == {"output": "", "prompt": "[1]:"}
        sleeping = lab.cells
        lab.run("import time; time.sleep(60)", wait=False)
        lab.wait_status("busy")
        lab.menu("Kernel", "Interrupt Kernel")
        interrupted = lab.result(sleeping)
        assert "KeyboardInterrupt" in interrupted["output"], interrupted
        assert interrupted["prompt"] == "[2]:"
        lab.wait_status("idle")

        lab.menu("Kernel", "Restart Kernel", accept=True)
        with contextlib.suppress(PlaywrightTimeout):  # only to not run the next cell on the old kernel
            lab.wait_status("restarting", timeout_ms=5000)
        lab.wait_status("idle")
        assert lab.run("1+1") == {"output": "2", "prompt": "[1]:"}, "execution count starts again after a restart"
        forgotten = lab.run("x")
        assert "NameError" in forgotten["output"] and forgotten["prompt"] == "[2]:", "the kernel's state is gone"
        lab.screenshot(artifacts_dir / "jupyterlab-restart-interrupt.png")
        lab.close_and_shut_down()
