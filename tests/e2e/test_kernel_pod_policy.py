"""The ValidatingAdmissionPolicy elastic-jupyter-gateway-kernel-pods on the real API server.

Installed by `kubectl apply -k manifests/` (manifests/rbac/kernel-pod-policy.yaml). A gateway and a
notebook of another namespace are rendered by the hooks and applied, so the gateway's
ServiceAccount holds the shipped kernel ClusterRole in both namespaces through the RoleBindings
the hooks render. Requests are made as that ServiceAccount (impersonation: the API server
authorizes and admits them as the ServiceAccount itself). The notebook's namespace does not
enforce a Pod Security level, so every refusal here is the policy's own.
"""

from __future__ import annotations

import copy
import json

import pytest
from controlplane import ControlPlane, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks import kernel_guard
from hooks.gateway import sync_gateway
from hooks.kernelspecs import WORKSPACE_DIR
from hooks.notebook import sync_notebook
from tests import eg_launcher
from tests.builders import NOW, TOKEN, gateway, kernel_role, notebook, related_gateway

pytestmark = pytest.mark.e2e

POLICY = "elastic-jupyter-gateway-kernel-pods"
GROUP = "kubeflow.tkestack.io"
GATEWAY_NS, NOTEBOOK_NS = "e2e-policy-gateways", "e2e-policy-notebooks"
GATEWAY = "guarded"
AS_GATEWAY = f"--as=system:serviceaccount:{GATEWAY_NS}:{GATEWAY}-gateway"
KERNEL_ID = "0f0e0d0c-0b0a-4908-8706-050403020100"
OTHER_SERVICE_ACCOUNTS = ("builder", "api-gateway", "ws-gateway")
PROFILE = {
    "name": "python_gpu",
    "maxResources": {"nvidia.com/gpu": 1, "cpu": 2},
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "e2e-policy-kernels",
}


def launcher_pod(name: str = f"ws-{KERNEL_ID}", kernel_id: str = KERNEL_ID) -> dict:
    """The kernel pod Enterprise Gateway's whole launcher (launch_kubernetes.py of the sdist, in its
    --pod-template mode) writes from our template for a GPU kernel of notebook ws, after the guard:
    rendered, with its environment added as it does before creating the pod."""
    parent = gateway(GATEWAY, GATEWAY_NS, allowedNamespaces=[NOTEBOOK_NS], kernelProfiles=[PROFILE])
    parent["spec"]["defaultKernel"] = PROFILE["name"]
    children = sync_gateway(parent, {}, kernel_role(), NOW, TOKEN)["children"]
    data = next(c["data"] for c in children if f"{PROFILE['name']}.policy.json" in c.get("data", {}))
    client = {
        "KERNEL_ID": kernel_id,
        "KERNEL_POD_NAME": name,
        "KERNEL_NAMESPACE": NOTEBOOK_NS,
        "KERNEL_NOTEBOOK": "ws",
        "KERNEL_USERNAME": "ws",
        "KERNEL_GPUS": "1",
        "KERNEL_WORKSPACE_CLAIM": "ws-workspace",
        "KERNEL_WORKING_DIR": WORKSPACE_DIR,
        "KERNEL_SERVICE_ACCOUNT_NAME": f"{GATEWAY}-gateway",  # dropped by the guard
    }
    env = kernel_guard.checked_env(client, json.loads(data[f"{PROFILE['name']}.policy.json"]))
    return eg_launcher.launch_pod(data[f"{PROFILE['name']}.kernel-pod.yaml.j2"], env, kernel_id)


def create(cp: ControlPlane, pod: dict, *who: str, dry_run: bool = True):
    args = ["create", "-f", "-", *who] + (["--dry-run=server"] if dry_run else [])
    return cp.kubectl(*args, input=json.dumps(pod), check=False)


def refused_by_policy(result) -> bool:
    return result.returncode != 0 and f"ValidatingAdmissionPolicy '{POLICY}'" in result.stderr


@pytest.fixture(scope="module")
def guarded(installed: ControlPlane) -> ControlPlane:
    """The rendered gateway and a notebook of another namespace applied; the policy in force."""
    cp = installed
    cp.create_namespace(GATEWAY_NS)
    cp.create_namespace(NOTEBOOK_NS)
    priority = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": -10}
    cp.apply({**priority, "metadata": {"name": PROFILE["priorityClassName"]}, "preemptionPolicy": "Never"})
    parent = gateway(GATEWAY, GATEWAY_NS, allowedNamespaces=[NOTEBOOK_NS], kernelProfiles=[PROFILE])
    parent["spec"]["defaultKernel"] = PROFILE["name"]
    cp.apply_server_side(sync_gateway(parent, {}, kernel_role(), NOW, TOKEN)["children"])
    nb = notebook("ws", NOTEBOOK_NS, gateway={"name": GATEWAY, "namespace": GATEWAY_NS}, workspace={"size": "1Gi"})
    cp.apply_server_side(sync_notebook(nb, {}, related_gateway(parent), NOW, TOKEN)["children"])
    # ServiceAccounts of the notebook's namespace that may create pods there (`edit`): ordinary
    # ones, one merely named like a gateway. A kernel pod may not run as them.
    for name in OTHER_SERVICE_ACCOUNTS:
        cp.apply(
            [
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NOTEBOOK_NS}},
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": f"{name}-edit", "namespace": NOTEBOOK_NS},
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NOTEBOOK_NS}],
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                },
            ]
        )
    # The policy and its binding reach the admission plugin through informers: wait until a pod
    # with a Secret volume is refused.
    hostile = launcher_pod()
    hostile["spec"]["volumes"].append({"name": "creds", "secret": {"secretName": "creds"}})
    wait_for(lambda: refused_by_policy(create(cp, hostile, AS_GATEWAY)), timeout=30, what="the policy in force")
    return cp


def test_the_policy_type_checks_against_the_pod_schema(guarded):
    policy = wait_for(
        lambda: (
            (p := guarded.kubectl_json("get", "validatingadmissionpolicy", POLICY))
            .get("status", {})
            .get("observedGeneration")
            == p["metadata"]["generation"]
            and p
        ),
        timeout=30,
        what="the policy's type checking",
    )
    assert not policy["status"].get("typeChecking", {}).get("expressionWarnings"), policy["status"]


def test_the_kernel_pod_the_launcher_renders_is_admitted_and_its_gateway_deletes_it(guarded):
    cp = guarded
    pod = launcher_pod()
    created = create(cp, pod, AS_GATEWAY, dry_run=False)
    assert created.returncode == 0, created.stderr
    stored = cp.kubectl_json("get", "pod", pod["metadata"]["name"], "-n", NOTEBOOK_NS)
    assert stored["spec"]["serviceAccountName"] == "default"
    assert stored["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {e["name"] for e in stored["spec"]["containers"][0]["env"]} >= {"KERNEL_ID", "RESPONSE_ADDRESS"}
    deleted = cp.kubectl("delete", "pod", pod["metadata"]["name"], "-n", NOTEBOOK_NS, AS_GATEWAY, check=False)
    assert deleted.returncode == 0, deleted.stderr
    # The guard's kernel_sweep.py selector is all a deletion needs: component=kernel and the gateway.


# Each hostile change of the launcher's pod: (what the policy's message then names, change).
# ``draw`` gives each change generated values (names, paths, capabilities).
NAME = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
LABEL_KEY = st.from_regex(r"(([a-z]{1,8}\.)?[a-z]{1,8}/)?[a-z]([a-z0-9_.-]{0,9}[a-z0-9])?", fullmatch=True)


def _spec(pod):
    return pod["spec"]


def _kernel(pod):
    return pod["spec"]["containers"][0]


def _add_volume(pod, volume):
    _spec(pod).setdefault("volumes", []).append(volume)
    _kernel(pod).setdefault("volumeMounts", []).append({"name": volume["name"], "mountPath": f"/mnt/{volume['name']}"})


MUTATIONS = {
    "another service account": (
        "serviceAccountName default",
        lambda pod, draw: _spec(pod).update(serviceAccountName=draw(st.sampled_from(OTHER_SERVICE_ACCOUNTS))),
    ),
    "a token mounted": (
        "automountServiceAccountToken false",
        lambda pod, draw: _spec(pod).pop("automountServiceAccountToken"),
    ),
    "a projected token volume": (
        "one volume at most",
        lambda pod, draw: _add_volume(
            pod, {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
        ),
    ),
    "a Secret volume": (
        "one volume at most",
        lambda pod, draw: _add_volume(pod, {"name": "creds", "secret": {"secretName": draw(NAME)}}),
    ),
    "a hostPath volume": (
        "one volume at most",
        lambda pod, draw: _add_volume(pod, {"name": "host", "hostPath": {"path": "/" + draw(NAME)}}),
    ),
    "the workspace as a hostPath": (
        "one volume at most",
        lambda pod, draw: _spec(pod).update(volumes=[{"name": "workspace", "hostPath": {"path": "/" + draw(NAME)}}]),
    ),
    "the workspace as a Secret": (
        "one volume at most",
        lambda pod, draw: _spec(pod).update(volumes=[{"name": "workspace", "secret": {"secretName": draw(NAME)}}]),
    ),
    "privileged": (
        "container securityContext",
        lambda pod, draw: _kernel(pod)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True),
    ),
    "an added capability": (
        "container securityContext",
        lambda pod, draw: _kernel(pod)["securityContext"]["capabilities"].update(
            add=[draw(st.sampled_from(["SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "CHOWN"]))]
        ),
    ),
    "privilege escalation": (
        "container securityContext",
        lambda pod, draw: _kernel(pod)["securityContext"].update(allowPrivilegeEscalation=True),
    ),
    "root": (
        "pod securityContext",
        lambda pod, draw: _spec(pod)["securityContext"].update(runAsUser=0, runAsNonRoot=False),
    ),
    "the host's namespaces": (
        "no host network",
        lambda pod, draw: _spec(pod).update({draw(st.sampled_from(["hostNetwork", "hostPID", "hostIPC"])): True}),
    ),
    "a node chosen": ("no nodeName", lambda pod, draw: _spec(pod).update(nodeName=draw(NAME))),
    "unconfined seccomp": (
        "pod securityContext",
        lambda pod, draw: _spec(pod)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    ),
    "supplemental root group": (
        "pod securityContext",
        lambda pod, draw: _spec(pod)["securityContext"].update(supplementalGroups=[0]),
    ),
    "another label": (
        "no other label",
        lambda pod, draw: pod["metadata"]["labels"].update({draw(LABEL_KEY.filter(lambda k: k not in ALLOWED)): "x"}),
    ),
    "a notebook's labels": (
        "no other label",
        lambda pod, draw: pod["metadata"]["labels"].update(
            {"app.kubernetes.io/component": "notebook", "kubeflow.tkestack.io/jupyternotebook": "ws"}
        ),
    ),
    "another gateway's labels": (
        "may create only its kernel pods",
        lambda pod, draw: pod["metadata"]["labels"].update(
            {
                draw(
                    st.sampled_from(["kubeflow.tkestack.io/gateway-name", "kubeflow.tkestack.io/gateway-namespace"])
                ): (draw(NAME.filter(lambda n: n not in (GATEWAY, GATEWAY_NS))))
            }
        ),
    ),
    "a kernel label missing": (
        "may create only its kernel pods",
        lambda pod, draw: pod["metadata"]["labels"].pop(
            draw(st.sampled_from(["app", "component", "source", "kernel_id", "kubeflow.tkestack.io/kernel-profile"]))
        ),
    ),
    "an annotation": (
        "no annotation but",
        lambda pod, draw: pod["metadata"]["annotations"].update({draw(LABEL_KEY): "x"}),
    ),
    "a finalizer": (
        "no finalizers",
        lambda pod, draw: pod["metadata"].update(finalizers=["example.com/" + draw(NAME)]),
    ),
    "a sidecar": (
        "one container, named kernel",
        lambda pod, draw: _spec(pod)["containers"].append({**copy.deepcopy(_kernel(pod)), "name": draw(NAME)}),
    ),
    "an init container": (
        "no init or",
        lambda pod, draw: _spec(pod).update(initContainers=[{**copy.deepcopy(_kernel(pod)), "name": "init"}]),
    ),
    "a command": ("runs its own command", lambda pod, draw: _kernel(pod).update(command=["/bin/sh", "-c", draw(NAME)])),
    "a Secret in the environment": (
        "no valueFrom",
        lambda pod, draw: _kernel(pod)["env"].append(
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": draw(NAME), "key": "token"}}}
        ),
    ),
    "envFrom a Secret": (
        "no envFrom",
        lambda pod, draw: _kernel(pod).update(envFrom=[{"secretRef": {"name": draw(NAME)}}]),
    ),
    "a host port": (
        "no ports",
        lambda pod, draw: _kernel(pod).update(ports=[{"containerPort": 8080, "hostPort": draw(st.integers(1, 65535))}]),
    ),
    "the workspace mounted elsewhere": (
        "only the workspace mounted",
        lambda pod, draw: _kernel(pod)["volumeMounts"][0].update(mountPath="/" + draw(NAME)),
    ),
    "a subPath of the workspace": (
        "only the workspace mounted",
        lambda pod, draw: _kernel(pod)["volumeMounts"][0].update(subPath=draw(NAME)),
    ),
    "another resource": (
        "cpu, memory and",
        lambda pod, draw: _kernel(pod)["resources"]["limits"].update(
            {draw(st.sampled_from(["ephemeral-storage", "example.com/fpga"])): "1"}
        ),
    ),
    "restart always": ("restartPolicy Never", lambda pod, draw: _spec(pod).update(restartPolicy="Always")),
}
ALLOWED = {
    "app",
    "component",
    "source",
    "kernel_id",
    "kubeflow.tkestack.io/kernel-profile",
    "kubeflow.tkestack.io/gateway-name",
    "kubeflow.tkestack.io/gateway-namespace",
    "kubeflow.tkestack.io/notebook",
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3, unique=True), data=st.data())
def test_hostile_kernel_pods_are_refused_by_the_policy(guarded, names, data):
    pod = launcher_pod(name="hostile")
    for name in names:
        MUTATIONS[name][1](pod, data.draw)
    result = create(guarded, pod, AS_GATEWAY)
    assert refused_by_policy(result), (names, result.returncode, result.stderr)
    assert any(MUTATIONS[name][0] in result.stderr for name in names), (names, result.stderr)
    assert f"JupyterGateway {GATEWAY_NS}/{GATEWAY}" in result.stderr


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_each_hostile_change_alone_is_refused_with_its_message(guarded, mutation, data):
    pod = launcher_pod(name="hostile")
    message, change = MUTATIONS[mutation]
    change(pod, data.draw)
    result = create(guarded, pod, AS_GATEWAY)
    assert refused_by_policy(result) and message in result.stderr, result.stderr


def plain_pod(name: str, labels: dict) -> dict:
    from hooks.podsecurity import harden

    spec = harden({"containers": [{"name": "app", "image": "registry.example/app:1"}]})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NOTEBOOK_NS, "labels": labels},
        "spec": spec,
    }


def test_the_gateway_deletes_only_its_own_kernel_pods(guarded):
    cp = guarded
    own = {
        "component": "kernel",
        "kubeflow.tkestack.io/gateway-name": GATEWAY,
        "kubeflow.tkestack.io/gateway-namespace": GATEWAY_NS,
    }
    pods = {
        "not-a-kernel": plain_pod("not-a-kernel", {"app": "web"}),
        # A notebook pod of this gateway carries the gateway's client labels, not component=kernel.
        "a-notebook": plain_pod("a-notebook", {**own, "component": "notebook"}),
        "another-gateways-kernel": plain_pod(
            "another-gateways-kernel", {**own, "kubeflow.tkestack.io/gateway-name": "other"}
        ),
        "own-kernel": plain_pod("own-kernel", own),  # made by an admin, but labelled as this gateway's kernel
    }
    cp.apply_server_side(list(pods.values()))
    try:
        for name in ("not-a-kernel", "a-notebook", "another-gateways-kernel"):
            res = cp.kubectl("delete", "pod", name, "-n", NOTEBOOK_NS, AS_GATEWAY, "--wait=false", check=False)
            assert res.returncode != 0 and "may delete only its own kernel pods" in res.stderr, (name, res.stderr)
            assert cp.exists("pod", name, "-n", NOTEBOOK_NS)
        res = cp.kubectl("delete", "pod", "own-kernel", "-n", NOTEBOOK_NS, AS_GATEWAY, "--wait=false", check=False)
        assert res.returncode == 0, res.stderr
    finally:
        cp.kubectl("delete", "pod", *pods, "-n", NOTEBOOK_NS, "--ignore-not-found", "--wait=false")


def test_admins_and_other_service_accounts_are_not_affected(guarded):
    """The policy matches only a `*-gateway` ServiceAccount that holds the kernel role's virtual
    permission here: an admin, an ordinary ServiceAccount with `edit`, and a ServiceAccount that is
    merely named like a gateway create the pod the gateway may not."""
    cp = guarded
    pod = launcher_pod(name="not-a-kernel-at-all")
    MUTATIONS["a Secret volume"][1](pod, lambda strategy: "creds")
    MUTATIONS["another service account"][1](pod, lambda strategy: "builder")
    pod["metadata"]["labels"] = {"app": "batch"}
    assert refused_by_policy(create(cp, pod, AS_GATEWAY))

    def admitted(*who: str):
        result = create(cp, pod, *who)
        if result.returncode != 0:
            raise AssertionError(result.stderr)
        return result

    for who in ([], *([f"--as=system:serviceaccount:{NOTEBOOK_NS}:{name}"] for name in OTHER_SERVICE_ACCOUNTS)):
        # RoleBindings and the aggregated `edit` reach the authorizer through informers.
        result = wait_for(lambda w=who: admitted(*w), timeout=30, what=f"pod admitted for {who or 'admin'}")
        assert "created (server dry run)" in result.stdout


def test_the_kernel_role_grants_the_virtual_permission_and_the_edit_role_does_not(guarded):
    def allowed(account: str, namespace: str) -> bool:
        return guarded.allowed(f"system:serviceaccount:{account}", "launch", GROUP, "kernelpods", namespace)

    gateway_account = f"{GATEWAY_NS}:{GATEWAY}-gateway"
    assert allowed(gateway_account, NOTEBOOK_NS) and allowed(gateway_account, GATEWAY_NS)
    assert not allowed(gateway_account, "default")
    assert not allowed(f"{NOTEBOOK_NS}:api-gateway", NOTEBOOK_NS), "edit does not grant it"
