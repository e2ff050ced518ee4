"""The hook server as `make run` starts it (`python -m hooks serve`): real uvicorn, real sockets."""

import base64
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.builders import ROOT, child_types, gateway, kernel_role


@pytest.fixture
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hooks", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "hook server not ready in 30 s"
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_served_hooks_answer_and_count_their_calls(server):
    base, proc = server
    request = {
        "controller": {},
        "parent": gateway(),
        "children": {t: {} for t in child_types("jupytergateway.yaml")},
        "related": kernel_role(),
        "finalizing": False,
    }
    response = httpx.post(f"{base}/sync/jupytergateway", content=json.dumps(request))
    # ServiceAccount, RoleBinding, three ConfigMaps (EG, kernelspecs, front door), the access
    # ConfigMap, Secret, Deployment, Service, NetworkPolicy.
    assert response.status_code == 200 and len(response.json()["children"]) == 10
    assert httpx.post(f"{base}/sync/jupytergateway", content=b"not json").status_code == 400
    metrics = httpx.get(f"{base}/metrics").text
    assert 'elastic_jupyter_hook_calls_total{code="200",hook="sync/jupytergateway"} 1.0' in metrics
    assert 'elastic_jupyter_hook_errors_total{hook="sync/jupytergateway",kind="bad_json"} 1.0' in metrics
    proc.terminate()
    log = proc.communicate(timeout=10)[0]
    secret = next(c for c in response.json()["children"] if c["kind"] == "Secret")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert "Uvicorn running" in log or "Application startup complete" in log, log
    assert "WARNING: no --token-file: the hooks answer anyone" in log, "serving without auth is said"
    assert token not in log and secret["data"]["token"] not in log, "the server logs no request or response body"
