"""Smoke tests proving the e2e control plane is a real Kubernetes API (no mocks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from controlplane import METACONTROLLER_SERVICE_ACCOUNT, ControlPlane, wait_for

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.e2e.example.com}
spec:
  group: e2e.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
          status:
            type: object
            properties:
              ready: {type: boolean}
"""


def widget(name: str, size: object) -> dict:
    return {
        "apiVersion": "e2e.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"size": size},
    }


def test_crd_schema_and_status_subresource(control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.apply(WIDGET_CRD)
    cp.kubectl("wait", "--for=condition=Established", "crd/widgets.e2e.example.com", "--timeout=60s")
    cp.wait_for_resource("widgets.e2e.example.com")

    cp.apply(widget("good", 3))
    assert cp.kubectl_json("get", "widget", "good")["spec"]["size"] == 3

    for bad in (0, "three"):
        res = cp.kubectl("apply", "-f", "-", input=json.dumps(widget("bad", bad)), check=False)
        assert res.returncode != 0, res.stdout
        assert "spec.size" in res.stderr, res.stderr
    assert not cp.exists("widget", "bad")

    # status goes through the subresource only
    cp.kubectl("patch", "widget", "good", "--subresource=status", "--type=merge", "-p", '{"status":{"ready":true}}')
    cp.kubectl("patch", "widget", "good", "--type=merge", "-p", '{"status":{"ready":false},"spec":{"size":4}}')
    obj = cp.kubectl_json("get", "widget", "good")
    assert obj["status"] == {"ready": True}
    assert obj["spec"]["size"] == 4


def test_deployment_creates_replicaset_and_pods(control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.create_namespace("smoke-deploy")
    cp.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "smoke-deploy"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        }
    )
    rs = wait_for(
        lambda: cp.kubectl_json("get", "rs", "-n", "smoke-deploy")["items"],
        timeout=60,
        what="a ReplicaSet for deployment web",
    )
    assert rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = wait_for(
        lambda: (p := cp.kubectl_json("get", "pods", "-n", "smoke-deploy")["items"]) and len(p) == 2 and p,
        timeout=60,
        what="2 pods",
    )
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["status"]["phase"] == "Pending"  # no kubelet, no scheduler


def test_pod_security_restricted_rejects_privileged_pod(control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.create_namespace("smoke-restricted", {"pod-security.kubernetes.io/enforce": "restricted"})

    def pod(name: str, container: dict) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "smoke-restricted"},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/c:1", **container}]},
            }
        )

    res = cp.kubectl("apply", "-f", "-", input=pod("priv", {"securityContext": {"privileged": True}}), check=False)
    assert res.returncode != 0
    assert "violates PodSecurity" in res.stderr, res.stderr

    restricted = {
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    }
    cp.kubectl("apply", "-f", "-", input=pod("ok", restricted))
    assert cp.exists("pod", "ok", "-n", "smoke-restricted")


# ----------------------------------------------------------------- Metacontroller

PARENT_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: smokeparents.e2e.example.com}
spec:
  group: e2e.example.com
  scope: Namespaced
  names: {plural: smokeparents, singular: smokeparent, kind: SmokeParent}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {message: {type: string}}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


class SyncHook(BaseHTTPRequestHandler):
    """Desired state: one ConfigMap named after the parent, holding spec.message."""

    calls = 0

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers["content-length"])))
        parent = req["parent"]
        SyncHook.calls += 1
        body = json.dumps(
            {
                "status": {"configMaps": len(req["children"]["ConfigMap.v1"])},
                "children": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": parent["metadata"]["name"] + "-child"},
                        "data": {"message": parent.get("spec", {}).get("message", "")},
                    }
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sync_hook_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SyncHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sync"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smoke_parent_rights(control_plane: ControlPlane) -> Iterator[None]:
    """Metacontroller runs with the install's ClusterRoles, which cover elastic-jupyter's types only:
    another CompositeController's parent type is granted to it, as the README says (before it starts)."""
    namespace, name = METACONTROLLER_SERVICE_ACCOUNT
    control_plane.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "metacontroller-smokeparents"},
                "rules": [
                    {
                        "apiGroups": ["e2e.example.com"],
                        "resources": ["smokeparents", "smokeparents/status", "smokeparents/finalizers"],
                        "verbs": ["get", "list", "watch", "update", "patch"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "metacontroller-smokeparents"},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "metacontroller-smokeparents",
                },
            },
        ]
    )
    try:
        yield
    finally:
        control_plane.kubectl("delete", "clusterrolebinding,clusterrole", "metacontroller-smokeparents")


@pytest.mark.metacontroller
def test_metacontroller_composite_controller(
    control_plane: ControlPlane, smoke_parent_rights, metacontroller, sync_hook_url: str
) -> None:
    cp = control_plane
    cp.apply(PARENT_CRD)
    cp.kubectl("wait", "--for=condition=Established", "crd/smokeparents.e2e.example.com", "--timeout=60s")
    cp.apply(
        {
            "apiVersion": "metacontroller.k8s.io/v1alpha1",
            "kind": "CompositeController",
            "metadata": {"name": "smoke-controller"},
            "spec": {
                "generateSelector": True,
                "parentResource": {"apiVersion": "e2e.example.com/v1", "resource": "smokeparents"},
                "childResources": [
                    {"apiVersion": "v1", "resource": "configmaps", "updateStrategy": {"method": "InPlace"}}
                ],
                "hooks": {"sync": {"version": "v2", "webhook": {"url": sync_hook_url, "timeout": "10s"}}},
            },
        }
    )
    cp.create_namespace("smoke-mc")
    cp.apply(
        {
            "apiVersion": "e2e.example.com/v1",
            "kind": "SmokeParent",
            "metadata": {"name": "p1", "namespace": "smoke-mc"},
            "spec": {"message": "hello"},
        }
    )

    # Metacontroller sees the new CRD only after a discovery refresh (--discovery-interval).
    child = wait_for(
        lambda: cp.kubectl_json("get", "configmap", "p1-child", "-n", "smoke-mc"),
        timeout=60,
        what="child ConfigMap p1-child (see metacontroller.log)",
    )
    assert child["data"] == {"message": "hello"}
    owner = child["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("SmokeParent", "p1", True)
    wait_for(
        lambda: cp.kubectl_json("get", "smokeparent", "p1", "-n", "smoke-mc").get("status", {}).get("configMaps") == 1,
        timeout=30,
        what="parent status written by the hook",
    )

    # InPlace update follows the parent's spec
    cp.kubectl("patch", "smokeparent", "p1", "-n", "smoke-mc", "--type=merge", "-p", '{"spec":{"message":"bye"}}')
    wait_for(
        lambda: cp.kubectl_json("get", "configmap", "p1-child", "-n", "smoke-mc")["data"] == {"message": "bye"},
        timeout=30,
        what="child updated in place",
    )

    # Deleting the parent: kube-controller-manager's garbage collector removes the child.
    cp.kubectl("delete", "smokeparent", "p1", "-n", "smoke-mc", "--wait=true")
    wait_for(
        lambda: not cp.exists("configmap", "p1-child", "-n", "smoke-mc"),
        timeout=120,
        what="child ConfigMap garbage-collected",
    )
    assert SyncHook.calls > 0
