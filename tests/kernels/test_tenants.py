"""Two tenants share one gateway: notebooks alice (team-a) and bob (team-b), each a real Jupyter
Server in the pod the hooks render, each presenting its own projected ServiceAccount token to
the gateway's front door (in the gateway's pod, beside Enterprise Gateway); kernels are pods on the
real node. Neither tenant can list, attach to, interrupt, restart or delete the other's kernels;
ownership is read back from the kernel pods after the front door's container crashes and the
kubelet restarts it; a namespace the gateway stops allowing gets 403 once the kubelet has updated
the mounted access list, with nothing restarted; foreign tokens get 401.
"""

from __future__ import annotations

import time

import localrun as lr
import pytest
import stack as ks
import websocket
from controlplane import wait_for

from hooks.gateway import audience, sync_gateway

pytestmark = [pytest.mark.kernels, pytest.mark.node]

BOB_NS = "team-b"
GATEWAY_SPEC = {
    "cullIdleTimeout": 0,
    "allowedNamespaces": [ks.NOTEBOOK_NS, BOB_NS],
    "kernelLaunchTimeout": 60,
    "kernelProfiles": [
        {
            "name": "python_kubernetes",
            "image": ks.KERNEL_IMAGE,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "maxResources": {"cpu": "1", "memory": "1Gi"},
        }
    ],
}
REF = {"gateway": {"name": ks.GATEWAY, "namespace": ks.GATEWAY_NS}}
AUDIENCE = audience(ks.GATEWAY, ks.GATEWAY_NS)


@pytest.fixture(scope="module")
def shared(figures):
    with ks.start_stack("tenants", GATEWAY_SPEC, REF, others={"bob": (BOB_NS, REF)}) as running:
        figures.update({f"tenants.setup.{k}": v for k, v in running.timings.items()})
        yield running


def failure(stack: ks.KernelStack) -> str:
    return f"\n--- front door ---\n{stack.door.log_tail(20)}\n--- EG ---\n{stack.eg.log_tail(20)}"


def open_notebook(server: ks.PodServer, stack: ks.KernelStack, path: str) -> str:
    """A kernel as JupyterLab starts one (a session through the notebook's Jupyter Server)."""
    body = {"path": path, "type": "notebook", "name": path, "kernel": {}}
    status, session = server.api("POST", "/api/sessions", body, timeout=120)
    assert status == 201, f"{status} {session}{failure(stack)}"
    return session["kernel"]["id"]


@pytest.fixture(scope="module")
def kernels(shared):
    alice, bob = shared.jupyter, shared.notebooks["bob"]
    ids = {"alice": open_notebook(alice, shared, "a.ipynb"), "bob": open_notebook(bob, shared, "b.ipynb")}
    tokens = {
        "alice": shared.token("alice-notebook", ks.NOTEBOOK_NS, AUDIENCE),
        "bob": shared.token("bob-notebook", BOB_NS, AUDIENCE),
    }
    return {"ids": ids, "tokens": tokens}


def door_call(stack, token, method, path, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return lr.http(method, stack.door.url + path, headers=headers, body=body, timeout=60)


def test_each_kernel_pod_runs_in_its_notebooks_namespace_labelled_with_its_owner(shared, kernels):
    for who, namespace in (("alice", ks.NOTEBOOK_NS), ("bob", BOB_NS)):
        pod = shared.kernel_pod(kernels["ids"][who])
        assert pod["metadata"]["namespace"] == namespace
        assert pod["metadata"]["labels"]["kubeflow.tkestack.io/notebook"] == who


def test_a_client_cannot_start_a_kernel_in_another_tenants_name(shared, kernels):
    env = {"KERNEL_NAMESPACE": BOB_NS, "KERNEL_NOTEBOOK": "bob", "KERNEL_USERNAME": "bob"}
    status, kernel = door_call(shared, kernels["tokens"]["alice"], "POST", "/api/kernels", {"env": env})
    assert status == 201, f"{kernel}{failure(shared)}"
    try:
        pod = shared.kernel_pod(kernel["id"])
        assert pod["metadata"]["namespace"] == ks.NOTEBOOK_NS
        assert pod["metadata"]["labels"]["kubeflow.tkestack.io/notebook"] == "alice"
    finally:
        assert door_call(shared, kernels["tokens"]["alice"], "DELETE", f"/api/kernels/{kernel['id']}")[0] == 204


def test_each_notebook_lists_only_its_own_kernels(shared, kernels):
    alice_sees = {k["id"] for k in shared.jupyter.api("GET", "/api/kernels")[1]}
    bob_sees = {k["id"] for k in shared.notebooks["bob"].api("GET", "/api/kernels")[1]}
    assert kernels["ids"]["alice"] in alice_sees and kernels["ids"]["bob"] not in alice_sees
    assert kernels["ids"]["bob"] in bob_sees and kernels["ids"]["alice"] not in bob_sees
    assert set(kernels["ids"].values()) <= {k["id"] for k in shared.eg.api("GET", "/api/kernels")[1]}


def refused_everything(stack, token, kernel_id, code: int) -> None:
    for method, path in [
        ("GET", f"/api/kernels/{kernel_id}"),
        ("POST", f"/api/kernels/{kernel_id}/interrupt"),
        ("POST", f"/api/kernels/{kernel_id}/restart"),
        ("DELETE", f"/api/kernels/{kernel_id}"),
    ]:
        status, body = door_call(stack, token, method, path, {} if method == "POST" else None)
        assert status == code, (method, path, status, body)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        lr.KernelWS(stack.door.url, kernel_id, token=token, scheme="Bearer")
    assert refused.value.status_code == code


def test_alice_cannot_touch_bobs_kernel_and_bobs_kernel_still_works(shared, kernels):
    bob_kernel = kernels["ids"]["bob"]
    refused_everything(shared, kernels["tokens"]["alice"], bob_kernel, 404)
    assert shared.kernel_pod(bob_kernel) is not None, "bob's kernel pod is untouched"
    with lr.KernelWS(shared.notebooks["bob"].url, bob_kernel, shared.notebooks["bob"].token) as ws:
        assert ws.execute("6 * 7")["result"] == "42"


def test_ownership_survives_a_front_door_restart(shared, kernels):
    """The front door forgets what it recorded; it reads owners back from the kernel pods' labels.
    Its container is killed from the node (a crash); the kubelet restarts it in the same pod."""
    old = shared.door.restarts
    shared.door.kill()
    shared.door.wait_ready(after=old, timeout=120)
    assert shared.door.restarts == (old[0], old[1] + 1)
    refused_everything(shared, kernels["tokens"]["alice"], kernels["ids"]["bob"], 404)
    assert door_call(shared, kernels["tokens"]["alice"], "GET", f"/api/kernels/{kernels['ids']['alice']}")[0] == 200
    mine = {k["id"] for k in door_call(shared, kernels["tokens"]["bob"], "GET", "/api/kernels")[1]}
    assert kernels["ids"]["bob"] in mine and kernels["ids"]["alice"] not in mine
    with lr.KernelWS(shared.notebooks["bob"].url, kernels["ids"]["bob"], shared.notebooks["bob"].token) as ws:
        assert ws.execute("1 + 1")["result"] == "2"


def test_foreign_and_forged_tokens_get_401(shared, kernels):
    other_gateway = audience("other", ks.GATEWAY_NS)
    for token in (
        None,
        shared.token("alice-notebook", ks.NOTEBOOK_NS),  # the API server's own audience
        shared.token("alice-notebook", ks.NOTEBOOK_NS, other_gateway),
        kernels["tokens"]["alice"][:-4] + "AAAA",  # signature broken
    ):
        assert door_call(shared, token, "GET", "/api/kernels")[0] == 401


def test_a_namespace_the_gateway_stops_allowing_gets_403_on_its_next_request(shared, kernels, figures):
    """The gateway owner drops team-b: the hook renders the access ConfigMap without it, the kubelet
    updates the mounted file (on its next sync of the gateway pod), and bob's next request is
    refused; nothing restarts."""
    servers = (shared.door, shared.eg, shared.notebooks["bob"])
    restarts = [server.restarts for server in servers]
    bob = (kernels["tokens"]["bob"], "GET", f"/api/kernels/{kernels['ids']['bob']}")

    def render(allowed: list[str]) -> None:
        gateway = shared.cp.kubectl_json("get", "jupytergateway", ks.GATEWAY, "-n", ks.GATEWAY_NS)
        gateway["spec"]["allowedNamespaces"] = allowed
        role = shared.cp.kubectl_json("get", "clusterrole", "jupyter-gateway-kernels")
        result = sync_gateway(gateway, {}, {ks.CLUSTER_ROLES: {"jupyter-gateway-kernels": role}}, ks.NOW, "t" * 48)
        shared.apply_children([c for c in result["children"] if c["metadata"]["name"].endswith("-access")])
        assert shared.access_list() == sorted({ks.GATEWAY_NS, *allowed})

    t0 = time.monotonic()
    render([ks.NOTEBOOK_NS])
    try:
        wait_for(lambda: door_call(shared, *bob)[0] == 403, timeout=90, what="the kubelet to update the access list")
        figures["tenants.access_dropped_to_403_s"] = round(time.monotonic() - t0, 1)
        refused_everything(shared, kernels["tokens"]["bob"], kernels["ids"]["bob"], 403)
        assert door_call(shared, kernels["tokens"]["bob"], "GET", "/api/kernels")[0] == 403
        status, body = shared.notebooks["bob"].api("GET", "/api/kernels")
        assert status == 403, body  # Jupyter Server relays the gateway's answer
        assert door_call(shared, kernels["tokens"]["alice"], "GET", "/api/kernels")[0] == 200
    finally:
        render([ks.NOTEBOOK_NS, BOB_NS])
    wait_for(lambda: door_call(shared, *bob)[0] == 200, timeout=90, what="bob allowed again")
    assert [server.restarts for server in servers] == restarts, "nothing restarted"
