"""The rendered gateway and notebook really work: real Enterprise Gateway 3.3 and Jupyter Server 2.21.

Each server is started from nothing but what the hooks render for a JupyterGateway and a
JupyterNotebook: its command, arguments, environment and mounted ConfigMap/Secret files.
What cannot exist outside a cluster is substituted in one table (localrun.SUBSTITUTIONS).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import identity
import localrun as lr
import pytest
from controlplane import wait_for  # tests/e2e, on sys.path through identity
from rendered import container_and_files, gateway_cr, notebook_cr, render_gateway, render_notebook, secret_value

from hooks import kernel_ends
from hooks.gateway import KERNEL_ENDS_DIR, audience
from hooks.notebook_identity import TOKEN_DIR

pytestmark = pytest.mark.integration

# No kernel name: the gateway's default (python_kubernetes in the cluster, python3 here).
KERNEL = {"env": {"KERNEL_USERNAME": "tester"}}


def gone_within(process: lr.LocalProcess, kernel_id: str, seconds: float) -> float:
    """Seconds until the kernel is no longer on the gateway; fails past ``seconds``."""
    started = time.monotonic()
    while process.api("GET", f"/api/kernels/{kernel_id}")[0] == 200:
        assert time.monotonic() - started < seconds, f"kernel {kernel_id} still there after {seconds}s"
        time.sleep(0.2)
    return time.monotonic() - started


def new_kernel(gateway: lr.LocalProcess) -> str:
    status, kernel = gateway.api("POST", "/api/kernels", KERNEL)
    assert status == 201, kernel
    return kernel["id"]


# --- culling: cullIdleTimeout 3, cullInterval 1 ------------------------------------------------


@pytest.fixture(scope="module")
def culling(tmp_path_factory):
    cr = gateway_cr("culler", cullIdleTimeout=3, cullInterval=1)
    children = render_gateway(cr)
    container, files = container_and_files(children)
    with lr.LocalStack(tmp_path_factory.mktemp("culling")) as stack:
        yield stack.start_gateway(container, files, token=secret_value(children))


def test_an_idle_kernel_is_culled_as_configured_and_journaled_for_its_owner(culling):
    kernel = new_kernel(culling)
    profile = culling.api("GET", f"/api/kernels/{kernel}")[1]["name"]
    waited = gone_within(culling, kernel, 3 + 1 + 4)
    assert waited >= 2.5, f"culled after {waited:.1f}s, before its idle timeout"
    culling.wait_for_log(r"Culling kernels with idle durations > 3 seconds at 1 second intervals")
    culling.wait_for_log(rf"Culling '\w+' kernel '\w+' \({kernel}\) with 0 connections due to 3 seconds of inactivity")
    # kernel_ends: the line the front door reads to tell the kernel's owner in their next kernel.
    journal = culling.mounts[KERNEL_ENDS_DIR] / kernel_ends.FILE_NAME

    def journaled() -> list[dict]:
        text = journal.read_text() if journal.exists() else ""
        return [r for r in kernel_ends.parse(text) if r["kernel_id"] == kernel]

    wait_for(journaled, timeout=5, what="the culled kernel in the journal")
    (line,) = journaled()
    assert line["profile"] == profile and 3 <= line["idle_seconds"] <= 3 + 1 + 4, line
    assert abs(line["at"] - time.time()) < 30, line


def test_busy_and_connected_kernels_are_not_culled(culling):
    """cullBusy and cullConnected are false (the defaults)."""
    token = {"token": culling.headers["Authorization"].split()[-1]}
    busy, connected, idle = new_kernel(culling), new_kernel(culling), new_kernel(culling)
    with lr.KernelWS(culling.url, busy, **token) as ws:
        ws.execute("pass")  # warm the connection first: EG 3.3 turns busy into idle on control messages
        running = ws.start("import time; time.sleep(60)")
        ws.wait_for_state(running, "busy")
    assert culling.api("GET", f"/api/kernels/{busy}")[1]["execution_state"] == "busy"
    with lr.KernelWS(culling.url, connected, **token) as ws:
        ws.execute("pass")
        gone_within(culling, idle, 3 + 1 + 4)
        time.sleep(1 + 1)  # one more cull interval and a margin
        assert culling.api("GET", f"/api/kernels/{connected}")[0] == 200, "a connected kernel was culled"
        assert culling.api("GET", f"/api/kernels/{busy}")[0] == 200, "a busy kernel was culled"


# --- a notebook on a gateway that never culls (cullIdleTimeout 0) -------------------------------


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    gateway = gateway_cr("gw", cullIdleTimeout=0, cullInterval=1)
    gateway_children = render_gateway(gateway)
    notebook = notebook_cr(
        "alice", gateway={"name": "gw"}, auth={"passwordSecretRef": {"name": "alice-password"}},
        kernelResources={"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"nvidia.com/gpu": 1}},
    )  # fmt: skip
    notebook_children = render_notebook(
        notebook, gateway, gateway_children, {"alice-password": {"password": "correct horse"}}
    )
    workdir = tmp_path_factory.mktemp("serving")
    with identity.local_cluster(workdir) as ids, lr.LocalStack(workdir) as stack:
        ids.install([c for key, c in [*gateway_children.items(), *notebook_children.items()] if "/" in key])
        eg, door = identity.start_gateway_pod(stack, ids, gateway_children)
        jupyter = identity.start_notebook(stack, ids, notebook_children, door)
        projected = (jupyter.mounts[TOKEN_DIR] / "token").read_text()
        yield {"eg": eg, "door": door, "jupyter": jupyter, "ids": ids, "secrets": [secret_value(gateway_children),
               secret_value(notebook_children), "correct horse", projected]}  # fmt: skip


def test_with_cull_idle_timeout_zero_nothing_is_culled(serving):
    eg = serving["eg"]
    kernel = new_kernel(eg)
    time.sleep(3 + 1 + 1)
    assert eg.api("GET", f"/api/kernels/{kernel}")[0] == 200
    assert "Culling kernels with idle durations" not in eg.log()
    assert eg.api("DELETE", f"/api/kernels/{kernel}")[0] == 204


def test_the_notebook_runs_its_kernels_on_the_gateway(serving):
    eg, jupyter = serving["eg"], serving["jupyter"]
    assert re.search(r"Kernels will be managed by the Gateway server", jupyter.log())
    status, kernel = jupyter.api("POST", "/api/kernels", {})
    assert status == 201, kernel
    assert f"kernel {kernel['id']} started for default/alice" in serving["door"].log(), "through the front door"
    assert kernel["id"] in [k["id"] for k in eg.api("GET", "/api/kernels")[1]]
    with lr.KernelWS(jupyter.url, kernel["id"], jupyter.headers["Authorization"].split()[-1]) as ws:
        result = ws.execute(
            "import os\n"
            "print(os.getppid(), *(os.environ.get(k, '-') for k in ('KERNEL_USERNAME', 'KERNEL_CPUS', "
            "'KERNEL_MEMORY', 'KERNEL_GPUS_LIMIT')))\n"
            "6 * 7"
        )
    assert (result["status"], result["result"]) == ("ok", "42"), result
    ppid, user, cpus, memory, gpus = result["stdout"].split()
    assert int(ppid) == eg.pid, "the kernel runs in the gateway's process tree"
    assert not lr.descendants(jupyter.pid), "and not in the notebook's"
    assert (user, cpus, memory, gpus) == ("alice", "500m", "1Gi", "1"), "kernelResources reach the gateway"


def test_the_notebook_and_gateway_require_their_tokens_and_leak_none(serving):
    eg, jupyter = serving["eg"], serving["jupyter"]
    assert jupyter.api("GET", "/api/kernels", auth=False)[0] in (401, 403)
    assert eg.api("GET", "/api/kernels", auth=False)[0] == 401
    # The UI path (POST /api/sessions) makes Jupyter Server log its whole environment.
    status, session = jupyter.api("POST", "/api/sessions", {"path": "leak.ipynb", "type": "notebook", "kernel": {}})
    assert status == 201, session
    assert "started kernel" in jupyter.log()
    for process in (eg, jupyter, serving["door"]):
        for where in (process.log(), Path(f"/proc/{process.pid}/cmdline").read_bytes().decode(errors="replace"),
                      Path(f"/proc/{process.pid}/environ").read_bytes().decode(errors="replace")):  # fmt: skip
            for secret in serving["secrets"]:
                assert secret not in where, f"a secret leaked from {process.name}"


def test_the_notebook_rereads_its_projected_token_before_each_request(serving):
    """The kubelet replaces the token before it expires; Jupyter Server (the config's token renewer)
    reads the file again for each request to the gateway, with no restart. Shown with a token of a
    namespace the gateway does not allow (403), then a renewed token of the notebook's own (200)."""
    jupyter, ids = serving["jupyter"], serving["ids"]
    path = jupyter.mounts[TOKEN_DIR] / "token"
    original, pid = path.read_text(), jupyter.pid
    ids.cp.create_namespace("elsewhere")
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x-notebook", "namespace": "elsewhere"},
    }
    ids.cp.apply(account)

    def write(token: str) -> None:
        new = path.with_suffix(".new")
        new.write_text(token)
        new.replace(path)

    try:
        assert jupyter.api("GET", "/api/kernels")[0] == 200
        write(ids.token("x-notebook", "elsewhere", audience("gw", "default")))
        status, body = jupyter.api("GET", "/api/kernels")
        assert status == 403, body
        write(ids.token("alice-notebook", "default", audience("gw", "default")))
        assert jupyter.api("GET", "/api/kernels")[0] == 200
    finally:
        write(original)
    assert jupyter.pid == pid and jupyter.proc.poll() is None


def test_teardown_stops_every_process_it_started(tmp_path):
    children = render_gateway(gateway_cr("shortlived", cullIdleTimeout=0))
    container, files = container_and_files(children)
    with lr.LocalStack(tmp_path) as stack:
        eg = stack.start_gateway(container, files, token=secret_value(children))
        new_kernel(eg)
        pids = [eg.pid, *lr.descendants(eg.pid)]
        assert len(pids) >= 2, "the kernel is a child of the gateway"
    time.sleep(0.5)
    assert not [pid for pid in pids if lr._alive(pid)]
