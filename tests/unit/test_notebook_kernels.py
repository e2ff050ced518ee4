"""The notebook's kernels: their namespace, the workspace, and the gateway's RoleBinding."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.gateway import CLUSTER_ROLES
from hooks.kernelspecs import WORKSPACE_DIR
from hooks.notebook import sync_notebook
from tests.builders import (
    NOW,
    TOKEN,
    by_kind,
    child_types,
    env_of,
    gateway,
    kernel_role,
    notebook,
    observe,
    related_gateway,
)

TYPES = child_types("jupyternotebook.yaml")
SHARED = gateway("shared", "infra", allowedNamespaces=["team-a"], clusterRole="jupyter-gateway-kernels")
REF = {"name": "shared", "namespace": "infra"}


def sync(parent, children=None, related=None):
    related = related_gateway(SHARED) if related is None else related
    return sync_notebook(parent, children or {t: {} for t in TYPES}, related, NOW, TOKEN)


def container(result) -> dict:
    pod = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "notebook")


def test_kernels_run_in_the_notebooks_namespace_and_know_their_notebook():
    env = env_of(container(sync(notebook("alice", "team-a", gateway=REF))))
    assert env["KERNEL_NAMESPACE"] == "team-a"
    assert env["KERNEL_NOTEBOOK"] == "alice"
    assert "KERNEL_WORKSPACE_CLAIM" not in env and "KERNEL_WORKING_DIR" not in env


def test_a_gateway_of_another_namespace_gets_a_role_binding_here_and_only_here():
    result = sync(notebook("alice", "team-a", gateway=REF))
    binding = by_kind(result["children"])["RoleBinding"]
    assert binding["metadata"] == {
        "name": "alice-gateway-kernels",
        "namespace": "team-a",
        "labels": binding["metadata"]["labels"],
    }
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "jupyter-gateway-kernels",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "shared-gateway", "namespace": "infra"}]
    same = sync(notebook("bob", "infra", gateway=REF))
    assert "RoleBinding" not in by_kind(same["children"]), "the gateway's own RoleBinding covers its namespace"


def test_an_unapproved_cluster_role_is_not_bound_and_the_children_are_kept():
    custom = gateway("shared", "infra", allowedNamespaces=["team-a"], clusterRole="cluster-admin")
    running = observe(sync(notebook("alice", "team-a", gateway=REF))["children"], TYPES)
    result = sync(notebook("alice", "team-a", gateway=REF), running, related_gateway(custom))
    ready = next(c for c in result["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "KernelRoleNotAllowed" and "cluster-admin" in ready["message"]
    bound = [c["roleRef"]["name"] for c in result["children"] if c["kind"] == "RoleBinding"]
    assert bound == ["jupyter-gateway-kernels"], "kept as it was, cluster-admin never bound"


@pytest.mark.parametrize(
    "revoked",
    [
        related_gateway(gateway("shared", "infra", allowedNamespaces=["team-b"])),
        related_gateway(None),
    ],
    ids=["namespace-no-longer-allowed", "gateway-gone"],
)
def test_revoked_access_removes_the_role_binding_and_keeps_the_rest(revoked):
    parent = notebook("alice", "team-a", gateway=REF)
    running = observe(sync(parent)["children"], TYPES)
    result = sync(parent, running, revoked)
    kinds = sorted(c["kind"] for c in result["children"])
    assert kinds == ["ConfigMap", "Deployment", "Secret", "Service"]


def test_a_new_workspace_is_a_claim_mounted_where_kernels_mount_it():
    parent = notebook("alice", "team-a", gateway=REF, workspace={"size": "10Gi", "storageClassName": "fast"})
    result = sync(parent)
    claim = by_kind(result["children"])["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "alice-workspace" and claim["metadata"]["namespace"] == "team-a"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "10Gi"}},
        "storageClassName": "fast",
    }
    notebook_container = container(result)
    assert {"name": "jupyter-notebook-workspace", "mountPath": WORKSPACE_DIR} in notebook_container["volumeMounts"]
    assert notebook_container["workingDir"] == WORKSPACE_DIR, "Jupyter Server's root directory"
    env = env_of(notebook_container)
    assert env["KERNEL_WORKSPACE_CLAIM"] == "alice-workspace"
    assert env["KERNEL_WORKSPACE_ACCESS_MODE"] == "ReadWriteOnce"
    pod = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "jupyter-notebook-workspace", "persistentVolumeClaim": {"claimName": "alice-workspace"}} in pod[
        "volumes"
    ]


def test_an_existing_claim_is_mounted_and_not_created():
    parent = notebook("alice", "team-a", gateway=REF, workspace={"claimName": "data", "accessMode": "ReadWriteMany"})
    result = sync(parent)
    assert "PersistentVolumeClaim" not in by_kind(result["children"])
    env = env_of(container(result))
    assert env["KERNEL_WORKSPACE_CLAIM"] == "data" and env["KERNEL_WORKSPACE_ACCESS_MODE"] == "ReadWriteMany"


def test_a_users_own_working_directory_and_volume_names_stay_theirs():
    template = {
        "spec": {
            "containers": [{"name": "notebook", "image": "lab:1", "workingDir": "/srv"}],
            "volumes": [{"name": "jupyter-notebook-workspace", "emptyDir": {}}],
        }
    }
    bad = sync(notebook("alice", "team-a", gateway=REF, template=template, workspace={"size": "1Gi"}))
    ready = next(c for c in bad["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and "jupyter-notebook-workspace is reserved" in ready["message"]
    template["spec"]["volumes"] = []
    good = sync(notebook("alice", "team-a", gateway=REF, template=template, workspace={"size": "1Gi"}))
    assert container(good)["workingDir"] == "/srv"


def test_a_steady_notebook_with_kernels_is_answered_byte_identically():
    parent = notebook("alice", "team-a", gateway=REF, workspace={"size": "5Gi"})
    observed = observe(sync(parent)["children"], TYPES)
    parent["status"] = sync(parent, observed)["status"]
    assert json.dumps(sync(parent, observed)) == json.dumps(sync(parent, observed))
    assert sorted(c["kind"] for c in sync(parent, observed)["children"]) == [
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "RoleBinding",
        "Secret",
        "Service",
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "claimName": st.one_of(st.text(max_size=10), st.sampled_from(["data", "a.b"])),
            "size": st.one_of(st.integers(-5, 10**12), st.sampled_from(["1Gi", "x", "500M"])),
            "storageClassName": st.sampled_from(["fast", "Bad_Name"]),
            "accessMode": st.sampled_from(["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"]),
        },
    )
)
def test_any_workspace_is_rendered_or_refused_naming_the_field(workspace):
    result = sync(notebook("alice", "team-a", gateway=REF, workspace=workspace))
    ready = next(c for c in result["status"]["conditions"] if c["type"] == "Ready")
    if result["children"]:
        claim = env_of(container(result))["KERNEL_WORKSPACE_CLAIM"]
        assert claim == workspace.get("claimName", "alice-workspace")
    else:
        assert ready["reason"] == "InvalidSpec" and ready["message"].startswith("spec.workspace")


def test_kernel_resources_beyond_the_default_profile_are_reported_on_the_notebook():
    """The gateway's refusal reaches the user only as a generic launch error; the notebook's
    status names the field and the limit."""

    def fit(resources, gw=SHARED):
        result = sync(notebook("alice", "team-a", gateway=REF, kernelResources=resources), related=related_gateway(gw))
        cond = next(c for c in result["status"]["conditions"] if c["type"] == "KernelResourcesFit")
        assert result["children"], "a warning, not a reason to hold the notebook back"
        return cond

    assert fit({"requests": {"cpu": "2"}})["status"] == "True"
    gpu = fit({"limits": {"nvidia.com/gpu": 1}})
    assert gpu["status"] == "False" and gpu["reason"] == "ExceedsProfile"
    assert gpu["message"].startswith("spec.kernelResources.limits.nvidia.com/gpu: 1 exceeds 0, the most kernel profile")
    assert "4" in fit({"requests": {"cpu": "5"}})["message"]
    gpus = gateway(
        "shared",
        "infra",
        allowedNamespaces=["team-a"],
        kernelProfiles=[{"name": "python_kubernetes", "maxResources": {"nvidia.com/gpu": 2}}],
    )
    assert fit({"limits": {"nvidia.com/gpu": 1}}, gpus)["status"] == "True"
    assert fit({"requests": {"cpu": -1}})["message"].endswith("is not a positive quantity")


def test_a_role_that_loses_its_approval_unbinds_the_notebooks_kernels_and_keeps_the_rest():
    """Issue 15: the kernel ClusterRole loses its approval label (or disappears) while the notebook
    runs; the KernelRoleNotAllowed keep path must not keep the RoleBinding to it."""
    parent = notebook("alice", "team-a", gateway=REF)
    running = observe(sync(parent)["children"], TYPES)
    assert "RoleBinding" in by_kind(sync(parent, running)["children"])
    for roles in (kernel_role(allowed=False), {CLUSTER_ROLES: {}}):
        result = sync(parent, running, {**related_gateway(SHARED), **roles})
        ready = next(c for c in result["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "KernelRoleNotAllowed", ready
        assert sorted(c["kind"] for c in result["children"]) == ["ConfigMap", "Deployment", "Secret", "Service"]
