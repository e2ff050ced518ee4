"""Metacontroller's narrowed rights (manifests/metacontroller-install: rbac.yaml, kernel-roles.yaml)
checked by the real API server's authorizer and RBAC escalation prevention.

Requests are made with the credentials the e2e harness gives Metacontroller (a TokenRequest token
of its ServiceAccount, `ControlPlane.metacontroller_identity`), as a buggy hook's response would be
applied by it: the binary itself is not needed here. The scenarios of test_metacontroller_e2e.py
run the real Metacontroller with the same credentials.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from controlplane import METACONTROLLER_INSTALL, ControlPlane

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-metacontroller-rbac"
METACONTROLLER = "system:serviceaccount:metacontroller:metacontroller"


@pytest.fixture(scope="module")
def as_metacontroller(installed: ControlPlane):
    """kubectl as Metacontroller's ServiceAccount (the install's ClusterRoles installed too)."""
    cp = installed
    kubeconfig = cp.metacontroller_identity()
    cp.create_namespace(NAMESPACE)

    def kubectl(*args: str, input: str | None = None):
        return cp.kubectl(f"--kubeconfig={kubeconfig}", *args, input=input, check=False)

    return cp, kubectl


def binding(name: str, role: str) -> str:
    return json.dumps(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NAMESPACE}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        }
    )


def test_it_is_who_the_harness_says(as_metacontroller):
    _, kubectl = as_metacontroller
    who = json.loads(kubectl("auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == METACONTROLLER


@pytest.mark.parametrize("role", ["cluster-admin", "admin", "edit", "system:controller:namespace-controller"])
def test_it_cannot_bind_an_unapproved_cluster_role(as_metacontroller, role):
    """What a hook bug returning such a RoleBinding would make Metacontroller do: refused (403)."""
    cp, kubectl = as_metacontroller
    res = kubectl("create", "-f", "-", input=binding("bug", role))
    assert res.returncode != 0 and "is attempting to grant RBAC permissions not currently held" in res.stderr, (
        res.stderr
    )
    assert not cp.exists("rolebinding", "bug", "-n", NAMESPACE)


def test_it_binds_the_approved_kernel_role(as_metacontroller):
    cp, kubectl = as_metacontroller
    res = kubectl("create", "-f", "-", input=binding("kernels", "jupyter-gateway-kernels"))
    assert res.returncode == 0, res.stderr
    cp.kubectl("delete", "rolebinding", "kernels", "-n", NAMESPACE)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource"),
    [
        ("create", "", "pods", ""),
        ("create", "", "pods", "exec"),
        ("list", "", "nodes", ""),
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
        ("create", "rbac.authorization.k8s.io", "roles", ""),
        ("update", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("create", "admissionregistration.k8s.io", "validatingadmissionpolicies", ""),
        ("create", "apiextensions.k8s.io", "customresourcedefinitions", ""),
        ("delete", "", "namespaces", ""),
        ("create", "", "serviceaccounts", "token"),
        ("impersonate", "", "serviceaccounts", ""),
        ("launch", "kubeflow.tkestack.io", "kernelpods", ""),
    ],
)
def test_it_holds_nothing_beyond_its_controllers(as_metacontroller, verb, group, resource, subresource):
    cp, _ = as_metacontroller
    assert not cp.allowed(METACONTROLLER, verb, group, resource, NAMESPACE, subresource)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource"),
    [
        ("watch", "kubeflow.tkestack.io", "jupyternotebooks", ""),
        ("update", "kubeflow.tkestack.io", "jupytergateways", "status"),
        ("create", "rbac.authorization.k8s.io", "rolebindings", ""),
        ("delete", "apps", "deployments", ""),
        ("watch", "", "secrets", ""),
        ("watch", "", "pods", ""),  # a notebook's kernel pods (status.kernels)
        ("list", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("create", "", "events", ""),
        ("watch", "metacontroller.k8s.io", "compositecontrollers", ""),
    ],
)
def test_it_holds_what_its_controllers_need(as_metacontroller, verb, group, resource, subresource):
    cp, _ = as_metacontroller
    assert cp.allowed(METACONTROLLER, verb, group, resource, NAMESPACE, subresource)


@pytest.mark.metacontroller
def test_the_install_replaces_upstreams_rules(control_plane: ControlPlane, tmp_path: Path):
    """`kubectl kustomize` of manifests/metacontroller-install with upstream's manifests/production
    taken from beside $METACONTROLLER_CRDS instead of its URL (no network here): upstream's
    ClusterRole `metacontroller` carries exactly our rules, still bound to its ServiceAccount."""
    upstream = Path(os.environ.get("METACONTROLLER_CRDS", "")).parent
    if not (upstream / "kustomization.yaml").is_file():
        pytest.skip(f"no upstream manifests/production beside METACONTROLLER_CRDS ({upstream})")
    kustomization = yaml.safe_load((METACONTROLLER_INSTALL / "kustomization.yaml").read_text())
    overlay = tmp_path / "install"
    overlay.mkdir()
    for name in os.listdir(METACONTROLLER_INSTALL):
        (overlay / name).write_text((METACONTROLLER_INSTALL / name).read_text())
    shutil.copytree(upstream, overlay / "upstream")  # kustomize takes relative paths only
    kustomization["resources"] = ["upstream" if r.startswith("https://") else r for r in kustomization["resources"]]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    built = list(yaml.safe_load_all(control_plane.kubectl("kustomize", str(overlay)).stdout))
    ours = yaml.safe_load((METACONTROLLER_INSTALL / "rbac.yaml").read_text())
    [role] = [o for o in built if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "metacontroller"]
    assert role["rules"] == ours["rules"]
    assert not [r for o in built if o["kind"] == "ClusterRole" for r in o.get("rules", []) if "*" in r["verbs"]]
    subjects = {o["metadata"]["name"]: o["subjects"] for o in built if o["kind"] == "ClusterRoleBinding"}
    account = [{"kind": "ServiceAccount", "name": "metacontroller", "namespace": "metacontroller"}]
    assert subjects == {"metacontroller": account, "metacontroller-gateway-kernel-roles": account}
    [statefulset] = [o for o in built if o["kind"] == "StatefulSet"]
    assert statefulset["spec"]["template"]["spec"]["serviceAccountName"] == "metacontroller"
