"""Metacontroller calls the hooks with the bearer token of the install's Secret, and nothing else gets in.

Real kube-apiserver, kube-controller-manager and Metacontroller ($METACONTROLLER_BIN, CRDs from
$METACONTROLLER_CRDS); the hook server is `python -m hooks serve --token-file` on 127.0.0.1. The
install follows the README: namespace, the token Secret made by the documented one-liner, then
`kubectl apply -k` (through an overlay whose only change is the hook URLs).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from controlplane import REPO_ROOT, ControlPlane, Process, free_port, shipped_metacontroller_flags, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.metacontroller]

GROUP = "kubeflow.tkestack.io"
NAMESPACE = "auth-e2e"
SYSTEM = "elastic-jupyter-system"
# README, "Install into a cluster", step 3 (`kubectl` is the harness's binary and kubeconfig).
MAKE_TOKEN = (
    "openssl rand -hex 32 | kubectl -n elastic-jupyter-system create secret generic "
    "elastic-jupyter-hooks-auth --from-file=token=/dev/stdin"
)
HOOKS = {
    ("jupytergateway-controller", "sync"): "/sync/jupytergateway",
    ("jupytergateway-controller", "customize"): "/customize/jupytergateway",
    ("jupyternotebook-controller", "sync"): "/sync/jupyternotebook",
    ("jupyternotebook-controller", "customize"): "/customize/jupyternotebook",
}
GATEWAY_CHILDREN = ["serviceaccount/gw-gateway", "rolebinding/gw-gateway", "configmap/gw-gateway"]
GATEWAY_CHILDREN += ["deployment/gw-gateway", "service/gw", "secret/gw-gateway-auth", "networkpolicy/gw-gateway"]
NOTEBOOK_CHILDREN = ["deployment/nb-notebook", "service/nb-notebook", "secret/nb-notebook-auth"]


def hook_server(workdir: Path, port: int, token: str, name: str) -> Process:
    token_file = workdir / f"{name}.token"
    token_file.write_text(token)
    log = workdir / f"{name}.log"
    argv = [sys.executable, "-m", "hooks", "serve", "--port", str(port), "--token-file", str(token_file)]
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    proc = Process(name, popen, log)

    def ready() -> bool:
        proc.check_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200

    try:
        wait_for(ready, timeout=30, what=f"hook server {name}")
    except BaseException:
        proc.stop()  # a failed start leaks no process
        raise
    return proc


def unauthorized_calls(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    prefix = "elastic_jupyter_hook_errors_total{"
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(prefix) and "unauthorized" in ln)


def overlay(workdir: Path, port: int) -> Path:
    directory = workdir / "overlay"
    directory.mkdir(exist_ok=True)
    patches = [
        {
            "target": {"group": "metacontroller.k8s.io", "kind": "CompositeController", "name": controller},
            "patch": json.dumps(
                [{"op": "add", "path": f"/spec/hooks/{hook}/webhook/url", "value": f"http://127.0.0.1:{port}{path}"}]
            ),
        }
        for (controller, hook), path in HOOKS.items()
    ]
    kustomization = {"resources": [os.path.relpath(REPO_ROOT / "manifests", directory)], "patches": patches}
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization))
    return directory


def uids(cp: ControlPlane, names: list[str]) -> dict[str, str] | None:
    res = cp.kubectl("get", *names, "-n", NAMESPACE, "-o", "json", check=False)
    if res.returncode != 0:
        return None
    items = json.loads(res.stdout).get("items") or [json.loads(res.stdout)]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["uid"] for i in items}


def cull_idle_timeout(cp: ControlPlane) -> int:
    data = cp.kubectl_json("-n", NAMESPACE, "get", "configmap", "gw-gateway")["data"]
    return json.loads(data["jupyter_enterprise_gateway_config.json"])["RemoteMappingKernelManager"]["cull_idle_timeout"]


def sync_errors(cp: ControlPlane, name: str) -> list[str]:
    events = cp.kubectl_json("get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={name}")
    return [e["message"] for e in events["items"] if e["reason"] == "SyncError"]


@pytest.fixture
def installed(control_plane: ControlPlane, tmp_path: Path):
    if not os.environ.get("METACONTROLLER_BIN") or not os.environ.get("METACONTROLLER_CRDS"):
        pytest.fail("set METACONTROLLER_BIN and METACONTROLLER_CRDS to a Metacontroller v4.17.2 binary and its CRDs")
    cp = control_plane
    cp.kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "namespace.yaml"))
    cp.kubectl("-n", SYSTEM, "delete", "secret", "elastic-jupyter-hooks-auth", "--ignore-not-found")
    kubectl = f"{cp.binary('kubectl')} --kubeconfig={cp.kubeconfig}"
    subprocess.run(["bash", "-o", "pipefail", "-c", MAKE_TOKEN.replace("kubectl", kubectl)], check=True)
    secret = cp.kubectl_json("-n", SYSTEM, "get", "secret", "elastic-jupyter-hooks-auth")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token.strip()) == 64, "the one-liner makes a 256-bit hex token"

    port = free_port()
    state = {"cp": cp, "port": port, "token": token, "workdir": tmp_path, "hooks": None}
    try:  # everything started inside: stopped on every path
        state["hooks"] = hook_server(tmp_path, port, token, "hooks-right-token")
        cp.apply_metacontroller_crds()
        cp.kubectl("apply", "-k", str(overlay(tmp_path, port)))
        for crd in ("jupytergateways", "jupyternotebooks"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{GROUP}", "--timeout=60s")
            cp.wait_for_resource(f"{crd}.{GROUP}")
        # Started once our CRDs exist, so that its first discovery finds them (the shipped
        # --discovery-interval is 20 s).
        cp.start_metacontroller(shipped_metacontroller_flags())
        cp.create_namespace(NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"})
        yield state
    finally:
        cp.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=90s", check=False)
        if state["hooks"] is not None:
            state["hooks"].stop()
        cp.stop_metacontroller()


def test_with_the_install_token_crs_converge_and_with_a_wrong_one_nothing_is_deleted(installed):
    cp, port, workdir = installed["cp"], installed["port"], installed["workdir"]
    cp.apply(
        [
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "JupyterGateway",
                "metadata": {"name": "gw", "namespace": NAMESPACE},
                "spec": {"cullIdleTimeout": 600},
            },
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "JupyterNotebook",
                "metadata": {"name": "nb", "namespace": NAMESPACE},
                "spec": {"gateway": {"name": "gw"}},
            },
        ]
    )
    # Right token: Metacontroller read the Secret and every hook call got through.
    before = wait_for(
        lambda: (u := uids(cp, GATEWAY_CHILDREN + NOTEBOOK_CHILDREN)) and len(u) == 10 and u,
        timeout=90,
        what="the gateway's and the notebook's children",
    )
    assert unauthorized_calls(port) == 0
    assert not sync_errors(cp, "gw")

    # Wrong token: the hook server now expects another one (a rotation Metacontroller has not seen).
    installed["hooks"].stop()
    installed["hooks"] = hook_server(workdir, port, "x" * 64, "hooks-other-token")
    change = '{"spec": {"cullIdleTimeout": 60}}'
    cp.kubectl("-n", NAMESPACE, "patch", "jupytergateway", "gw", "--type=merge", "-p", change)
    cp.kubectl("-n", NAMESPACE, "annotate", "jupyternotebook", "nb", "e2e/touch=1")
    for parent in ("gw", "nb"):
        errors = wait_for(
            lambda p=parent: [e for e in sync_errors(cp, p) if "401" in e],
            timeout=60,
            what=f"a SyncError event on {parent} for the hook's 401",
        )
        assert "missing or wrong bearer token" in errors[0], errors
    assert unauthorized_calls(port) >= 2
    # Every child is still there, the same objects, and the refused spec change reached none.
    assert uids(cp, GATEWAY_CHILDREN + NOTEBOOK_CHILDREN) == before
    assert cull_idle_timeout(cp) == 600

    # The install's token again: the pending change goes through.
    installed["hooks"].stop()
    installed["hooks"] = hook_server(workdir, port, installed["token"], "hooks-right-token-again")
    cp.kubectl("-n", NAMESPACE, "annotate", "jupytergateway", "gw", "e2e/touch=2")  # skip the retry backoff
    wait_for(
        lambda: cull_idle_timeout(cp) == 60,
        timeout=120,
        what="the gateway's ConfigMap to follow the spec once the token matches",
    )
    assert uids(cp, GATEWAY_CHILDREN + NOTEBOOK_CHILDREN) == before
