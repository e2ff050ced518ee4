"""The front door (hooks/front_door.py) for real: a real kube-apiserver reviews real projected
ServiceAccount tokens, a real Enterprise Gateway 3.3.0 runs the kernels behind it.

Two notebooks of two namespaces share the gateway: each sees and controls only its own
kernels (list, get, interrupt, restart, delete, websocket); a namespace the gateway does not
allow gets 403, and loses access on its next request when the gateway owner revokes it; a token
of another audience, a forged one or none gets 401; a kernel the gateway culled is told to its
owner alone, once, in the first cell of their next kernel. The gateway here runs its kernels as local
processes (the integration suite's LocalProcessProxy): ownership is the front door's, whatever
runs the kernel. tests/kernels/test_kernel_pods.py covers kernel pods.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid

import localrun as lr
import pytest
import rendered
import websocket
from controlplane import ControlPlane
from identity import Identities
from stack import OUTPUT, missing_parts

from hooks import kernel_ends
from hooks.gateway import ACCESS_DIR, ALLOWED_FILE, KERNEL_ENDS_DIR

GATEWAY_NS, GATEWAY = "gateways", "gw"
AUDIENCE = f"kubeflow.tkestack.io/gateway/{GATEWAY_NS}/{GATEWAY}"
TENANTS = {"alice": "team-a", "bob": "team-b", "carol": "team-c"}  # team-c is not allowed


class FrontDoorStack:
    def __init__(self, workdir):
        self.workdir = workdir
        self.cp = ControlPlane(workdir / "cluster")
        self.local = lr.LocalStack(workdir / "processes")
        self.tokens: dict[str, str] = {}

    def start(self) -> None:
        self.cp.start()
        self.ids = Identities(self.cp)
        gateway = rendered.gateway_cr(GATEWAY, GATEWAY_NS, allowedNamespaces=["team-a", "team-b"])
        children = rendered.render_gateway(gateway)
        notebooks = [
            rendered.render_notebook(
                rendered.notebook_cr(nb, TENANTS[nb], gateway={"name": GATEWAY, "namespace": GATEWAY_NS}),
                gateway,
                children,
            )
            for nb in ("alice", "bob")
        ]
        # carol's namespace is not allowed: the hook renders her nothing, but anyone with edit there can
        # make a ServiceAccount named like a notebook's and get it a token for this gateway.
        carol = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "carol-notebook", "namespace": "team-c"},
        }
        objects = [c for group in [children, *notebooks] for key, c in group.items() if "/" in key]
        self.ids.install([*objects, carol])
        for nb, ns in TENANTS.items():
            self.tokens[nb] = self.ids.token(f"{nb}-notebook", ns, AUDIENCE)
        # Enterprise Gateway and the front door, as the hooks render the gateway pod; EG's own token
        # is known to the front door only.
        container, files = rendered.container_and_files(children)
        self.eg_token = rendered.secret_value(children)
        self.eg = self.local.start_gateway(container, files, token=self.eg_token)
        self.door = self.ids.start_front_door(self.local, children, self.eg)
        self.proc, self.log = self.door.proc, self.door.log_path
        self.allowed_file = self.door.mounts[ACCESS_DIR] / ALLOWED_FILE
        assert json.loads(self.allowed_file.read_text()) == [GATEWAY_NS, "team-a", "team-b"]

    def stop(self) -> None:
        self.local.stop_all()  # the front door, then Enterprise Gateway
        self.cp.stop()

    def allow(self, namespaces: list[str]) -> None:
        """Replace the file as a kubelet updates a ConfigMap volume: a new file swapped in."""
        new = self.allowed_file.with_suffix(".new")
        new.write_text(json.dumps(namespaces))
        new.replace(self.allowed_file)  # a new inode, as the kubelet's symlink swap

    @property
    def url(self) -> str:
        return self.door.url

    def call(self, who: str | None, method: str, path: str, body=None, token: str | None = None):
        token = token or (self.tokens[who] if who else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return lr.http(method, self.url + path, headers=headers, body=body, timeout=120)

    def start_kernel(self, who: str, env: dict | None = None) -> str:
        # No name: the gateway's default kernel (locally python3, see localrun row kernelspec-name)
        status, body = self.call(who, "POST", "/api/kernels", {"env": env or {}})
        assert status == 201, (status, body, self.log_tail())
        return body["id"]

    def ws(self, who: str, kernel_id: str) -> lr.KernelWS:
        return lr.KernelWS(self.url, kernel_id, token=self.tokens[who], scheme="Bearer")

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


@pytest.fixture(scope="module")
def door():
    missing = missing_parts()
    if missing:
        pytest.fail("the front-door test needs: " + "; ".join(missing))
    stack = FrontDoorStack(OUTPUT / time.strftime("front-door-%Y%m%d-%H%M%S"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def test_a_kernel_start_is_stamped_with_the_callers_identity(door):
    kid = door.start_kernel("alice", {"KERNEL_NAMESPACE": "team-b", "KERNEL_NOTEBOOK": "bob", "KERNEL_USERNAME": "bob"})
    with door.ws("alice", kid) as ws:
        out = ws.execute(
            "import os; print(*(os.environ[f'KERNEL_{v}'] for v in ('NAMESPACE', 'NOTEBOOK', 'USERNAME')))"
        )
    assert out["stdout"].split() == ["team-a", "alice", "alice"], out


def test_a_client_cannot_choose_its_kernel_id(door):
    wanted = str(uuid.uuid4())
    kid = door.start_kernel("alice", {"KERNEL_ID": wanted})
    assert kid != wanted


def test_each_notebook_sees_and_controls_only_its_own_kernels(door):
    a, b = door.start_kernel("alice"), door.start_kernel("bob")
    assert a in {k["id"] for k in door.call("alice", "GET", "/api/kernels")[1]}
    listed_a = {k["id"] for k in door.call("alice", "GET", "/api/kernels")[1]}
    listed_b = {k["id"] for k in door.call("bob", "GET", "/api/kernels")[1]}
    assert a in listed_a and b not in listed_a
    assert b in listed_b and a not in listed_b
    # Enterprise Gateway itself lists both: the filter is the front door's
    assert {a, b} <= {k["id"] for k in door.eg.api("GET", "/api/kernels")[1]}
    # Alice on Bob's kernel: as if it did not exist, for every verb
    for method, path in [
        ("GET", f"/api/kernels/{b}"),
        ("POST", f"/api/kernels/{b}/interrupt"),
        ("POST", f"/api/kernels/{b}/restart"),
        ("DELETE", f"/api/kernels/{b}"),
    ]:
        status, body = door.call("alice", method, path, {} if method == "POST" else None)
        assert status == 404, (method, path, status, body)
        assert door.call("alice", "GET", f"/api/kernels/{uuid.uuid4()}")[0] == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        door.ws("alice", b)
    assert refused.value.status_code == 404
    # Bob's kernel is untouched and his own
    assert door.call("bob", "GET", f"/api/kernels/{b}")[0] == 200
    with door.ws("bob", b) as ws:
        assert ws.execute("6 * 7")["result"] == "42"
    for method, path in [("POST", f"/api/kernels/{b}/interrupt"), ("POST", f"/api/kernels/{b}/restart")]:
        status, body = door.call("bob", method, path, {})
        assert status in (200, 204), (method, status, body)
    assert door.call("bob", "DELETE", f"/api/kernels/{b}")[0] == 204
    assert door.call("bob", "GET", f"/api/kernels/{b}")[0] == 404
    assert b not in {k["id"] for k in door.eg.api("GET", "/api/kernels")[1]}
    assert door.call("alice", "GET", f"/api/kernels/{a}")[0] == 200


def test_sessions_and_other_endpoints_are_hidden(door):
    for path in ("/api/sessions", "/api/swagger.yaml", "/"):
        assert door.call("alice", "GET", path)[0] == 404, path
    assert door.call("alice", "GET", "/api")[0] == 200
    specs = door.call("bob", "GET", "/api/kernelspecs")[1]
    assert specs["default"] in specs["kernelspecs"]


def test_no_token_a_forged_one_or_one_of_another_audience_is_401(door):
    assert door.call(None, "GET", "/api/kernels")[0] == 401
    other_audience = door.ids.token("alice-notebook", "team-a")  # the API server's own audience
    header, payload, signature = door.tokens["alice"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "system:serviceaccount:team-b:bob-notebook"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    forged = f"{header}.{forged_payload}.{signature}"
    for token in (other_audience, forged, secrets.token_urlsafe(32), door.eg_token):
        status, body = door.call(None, "GET", "/api/kernels", token=token)
        assert status == 401, body
    # Enterprise Gateway's own token opens nothing at the front door, and no token leaks to its log
    log = door.log.read_text()
    for token in (*door.tokens.values(), door.eg_token, forged):
        assert token not in log


def test_a_namespace_the_gateway_does_not_allow_gets_403(door):
    status, body = door.call("carol", "GET", "/api/kernels")
    assert status == 403, body
    status, _ = door.call("carol", "POST", "/api/kernels", {})
    assert status == 403


def test_a_kernel_the_gateway_culled_is_told_to_its_owner_once_and_to_no_one_else(door):
    """kernel_ends: EG journals each kernel it culls (tests/integration and tests/kernels show it
    does); here the journal is written as EG writes it, after a line nested too deep and before a
    torn one, and each kernel is deleted at EG itself, as EG's culler does, not through the door."""
    a, b = door.start_kernel("alice"), door.start_kernel("bob")
    profile = door.eg.api("GET", f"/api/kernels/{a}")[1]["name"]
    for kid in (a, b):
        assert door.eg.api("DELETE", f"/api/kernels/{kid}")[0] == 204
    journal = str(door.door.mounts[KERNEL_ENDS_DIR] / kernel_ends.FILE_NAME)
    kernel_ends.append(journal, "[" * 100_000)
    kernel_ends.append(journal, kernel_ends.culled_line(a, profile, 3600.2, time.time()))
    kernel_ends.append(journal, '{"kernel_id": "torn')

    def first_cells(who: str) -> list[dict]:
        kid = door.start_kernel(who)
        try:
            with door.ws(who, kid) as ws:
                return [ws.execute("1+1"), ws.execute("2+2")]
        finally:
            assert door.call(who, "DELETE", f"/api/kernels/{kid}")[0] == 204

    bob = first_cells("bob")
    assert [(c["result"], c["stderr"]) for c in bob] == [("2", ""), ("4", "")], "Bob is not told of Alice's kernel"
    first, second = first_cells("alice")
    assert (first["result"], second["result"], second["stderr"]) == ("2", "4", ""), (first, second)
    assert first["stderr"].startswith(f"The gateway culled your kernel {profile} at "), first["stderr"]
    assert "after 3600 idle seconds" in first["stderr"], first["stderr"]
    assert [c["stderr"] for c in first_cells("alice")] == ["", ""], "told once"
    assert "journal of culled kernels cannot be read" not in door.log.read_text()


def test_revocation_applies_on_the_next_request_without_a_restart(door):
    kid = door.start_kernel("bob")
    pid = door.proc.pid
    try:
        door.allow([GATEWAY_NS, "team-a"])
        assert door.call("bob", "GET", "/api/kernels")[0] == 403
        assert door.call("bob", "GET", f"/api/kernels/{kid}")[0] == 403
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            door.ws("bob", kid)
        assert refused.value.status_code == 403
        assert door.call("alice", "GET", "/api/kernels")[0] == 200
    finally:
        door.allow([GATEWAY_NS, "team-a", "team-b"])
    assert door.call("bob", "GET", f"/api/kernels/{kid}")[0] == 200
    assert door.proc.pid == pid and door.proc.poll() is None
