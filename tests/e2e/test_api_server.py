"""Our manifests and the hooks' output on a real kube-apiserver and kube-controller-manager.

What does not need Metacontroller: the install applies, the CRDs serve the original
samples unchanged and refuse bad CRs with the field's name (schema, CEL, strict fields),
every status field the hooks write survives the status subresource, and every child the
hooks render is accepted by the API server, with its pods admitted by the `restricted`
Pod Security admission (kube-controller-manager's ReplicaSets create them).
"""

from __future__ import annotations

import json
import os

import pytest
from controlplane import ControlPlane, wait_for

from hooks.__main__ import render
from hooks.gateway import sync_gateway
from hooks.notebook import sync_notebook
from tests.builders import NOW, ROOT, TOKEN, gateway, kernel_role, load, merged, notebook, related_gateway, user_secret

pytestmark = pytest.mark.e2e

GROUP = "kubeflow.tkestack.io"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
KINDS = "deployments,services,configmaps,secrets,serviceaccounts,rolebindings,networkpolicies"


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    """`kubectl apply -k` of everything but the CompositeControllers, whose kind only exists
    once Metacontroller's CRDs are installed (Metacontroller cannot be fetched here)."""
    overlay = control_plane.workdir / "overlay-without-metacontroller"
    overlay.mkdir(exist_ok=True)
    delete = [
        {
            "patch": json.dumps(
                {
                    "apiVersion": "metacontroller.k8s.io/v1alpha1",
                    "kind": "CompositeController",
                    "metadata": {"name": name},
                    "$patch": "delete",
                }
            )
        }
        for name in ("jupytergateway-controller", "jupyternotebook-controller")
    ]
    manifests = os.path.relpath(ROOT / "manifests", overlay)
    (overlay / "kustomization.yaml").write_text(json.dumps({"resources": [manifests], "patches": delete}))
    control_plane.kubectl("apply", "-k", str(overlay))
    for crd in ("jupytergateways", "jupyternotebooks"):
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{GROUP}", "--timeout=60s")
        control_plane.wait_for_resource(f"{crd}.{GROUP}")
    control_plane.create_namespace("e2e-restricted", RESTRICTED)
    return control_plane


def test_the_install_creates_everything(installed):
    cp = installed
    assert (
        cp.kubectl_json("get", "namespace", "elastic-jupyter-system")["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )
    for kind, name in [
        ("clusterrole", "jupyter-gateway-kernels"),
        ("clusterrole", "elastic-jupyter-edit"),
        ("deployment", "elastic-jupyter-hooks"),
        ("service", "elastic-jupyter-hooks"),
        ("poddisruptionbudget", "elastic-jupyter-hooks"),
    ]:
        namespace = [] if kind == "clusterrole" else ["-n", "elastic-jupyter-system"]
        assert cp.exists(kind, name, *namespace), (kind, name)
    # The hook server's pods pass the restricted admission of their namespace.
    wait_for(
        lambda: cp.kubectl_json(
            "get", "pods", "-n", "elastic-jupyter-system", "-l", "app.kubernetes.io/name=elastic-jupyter-hooks"
        )["items"],
        timeout=60,
        what="hook server pods admitted",
    )


def test_the_original_samples_apply_unchanged_and_get_the_defaults(installed):
    cp = installed
    cp.kubectl("apply", "-f", str(ROOT / "manifests" / "samples"))
    gw = cp.kubectl_json("get", "jupytergateway", "jupytergateway-sample")
    assert gw["spec"] == {
        "cullIdleTimeout": 3600,
        "cullInterval": 60,
        "cullConnected": False,
        "cullBusy": False,
        "defaultKernel": "python_kubernetes",
        "kernelLaunchTimeout": 60,
        "logLevel": "INFO",
        "image": "elyra/enterprise-gateway:3.3.0",
        "clusterRole": "jupyter-gateway-kernels",
    }
    nb = cp.kubectl_json("get", "jupyternotebook", "jupyternotebook-sample")
    assert nb["spec"] == {"gateway": {"name": "jupytergateway-sample", "namespace": "default"}, "suspend": False}
    assert cp.kubectl("get", "jupytergateways").stdout.split()[:4] == ["NAME", "READY", "CULL-IDLE", "AGE"]
    assert cp.kubectl("get", "jupyternotebooks").stdout.split()[:5] == ["NAME", "READY", "GATEWAY", "URL", "AGE"]
    assert "jupyternotebook-sample" in cp.kubectl("get", "jupyter").stdout
    assert "jupyternotebook-sample" in cp.kubectl("get", "jnb").stdout
    assert "cullIdleTimeout" in cp.kubectl("explain", "jupytergateway.spec").stdout
    env = cp.kubectl("explain", "jupyternotebook.spec.template.spec.containers.env").stdout
    assert "valueFrom" in env and "List of environment variables" in env, env


REJECTED = [
    ("JupyterGateway", "gw", {"cullIdleTimeout": -1}, "spec.cullIdleTimeout"),
    ("JupyterGateway", "gw", {"cullInterval": 0}, "spec.cullInterval"),
    ("JupyterGateway", "gw", {"cullBusy": "yes"}, "spec.cullBusy"),
    ("JupyterGateway", "gw", {"logLevel": "loud"}, "spec.logLevel"),
    ("JupyterGateway", "gw", {"kernels": ["a"], "defaultKernel": "b"}, "defaultKernel must be one of kernels"),
    ("JupyterGateway", "gw", {"resources": {"requests": {"cpu": "lots"}}}, "spec.resources.requests.cpu"),
    ("JupyterGateway", "gw", {"clusterRole": "Not_A_Name"}, "spec.clusterRole"),
    ("JupyterGateway", "x-notebook", {}, "metadata.name"),
    ("JupyterNotebook", "nb", {"gatway": {"name": "x"}}, 'unknown field "spec.gatway"'),
    ("JupyterNotebook", "nb", {"gateway": {"namespace": "default"}}, "spec.gateway.name"),
    ("JupyterNotebook", "nb", {"auth": {"mode": "disable", "secretRef": {"name": "s"}}}, "need mode enable"),
    # Issue 15: a notebook without authentication would open its gateway to every pod.
    ("JupyterNotebook", "nb", {"gateway": {"name": "gw"}, "auth": {"mode": "disable"}}, "spec.auth.mode"),
    ("JupyterNotebook", "nb", {"template": {"spec": {"containers": []}}}, "spec.template.spec.containers"),
    ("JupyterNotebook", "n" * 55, {}, "metadata.name"),
    # Issue 9: no credentials in a CR (item 5), a real pod template and quantities in range (item 2).
    ("JupyterNotebook", "nb", {"auth": {"token": "abcdefgh"}}, 'unknown field "spec.auth.token"'),
    ("JupyterNotebook", "nb", {"auth": {"password": "hunter2"}}, 'unknown field "spec.auth.password"'),
    *[
        ("JupyterNotebook", "nb", {"template": {"spec": spec}}, field)
        for spec, field in [
            (
                {"containers": [{"name": "notebook", "image": "x", "env": "oops"}]},
                "spec.template.spec.containers[0].env",
            ),
            (
                {"containers": [{"name": "notebook", "image": "x", "env": [5]}]},
                "spec.template.spec.containers[0].env[0]",
            ),
            ({"containers": [{"name": "notebook", "image": "x"}], "volumes": "x"}, "spec.template.spec.volumes"),
            (
                {"containers": [{"name": "notebook", "image": "x"}], "securityContext": "x"},
                "spec.template.spec.securityContext",
            ),
            (
                {"containers": [{"name": "notebook", "image": "x", "ports": "x"}]},
                "spec.template.spec.containers[0].ports",
            ),
            (
                {"containers": [{"name": "notebook", "image": "x"}], "initContainers": [5]},
                "spec.template.spec.initContainers[0]",
            ),
            ({"containers": [{"name": "notebook"}]}, "spec.template.spec.containers[0].image"),
            (
                {"containers": [{"name": "notebook", "image": "x", "resources": {"limits": {"cpu": "1e30"}}}]},
                "spec.template.spec.containers[0].resources.limits[cpu]",
            ),
        ]
    ],
    *[
        ("JupyterNotebook", "nb", {"gateway": {"name": "gw"}, "kernelResources": {"requests": {"cpu": q}}}, field)
        for q, field in [
            ("1e1000000", "spec.kernelResources.requests.cpu"),
            ("1e30", "spec.kernelResources.requests.cpu"),
        ]
    ],
    ("JupyterGateway", "gw", {"resources": {"limits": {"memory": "1e30"}}}, "spec.resources.limits[memory]"),
    ("JupyterGateway", "gw", {"resources": {"limits": {"memory": "1e1000000"}}}, "spec.resources.limits[memory]"),
]


@pytest.mark.parametrize(("kind", "name", "spec", "message"), REJECTED)
def test_invalid_crs_are_rejected_with_the_fields_name(installed, kind, name, spec, message):
    cr = {"apiVersion": f"{GROUP}/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    res = installed.kubectl("apply", "-f", "-", input=json.dumps(cr), check=False)
    assert res.returncode != 0, f"accepted: {cr}"
    assert message in res.stderr, res.stderr


def apply_children(cp: ControlPlane, children: list[dict]) -> str:
    """Server-side apply of rendered children, as one List; kubectl's output and warnings."""
    items = json.dumps({"apiVersion": "v1", "kind": "List", "items": children})
    res = cp.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-", input=items)
    return res.stdout + res.stderr


def write_status(cp: ControlPlane, resource: str, name: str, status: dict) -> dict:
    """Write ``status`` through the status subresource; return what the API server kept."""
    patch = json.dumps({"status": status})
    cp.kubectl("patch", resource, name, "--subresource=status", "--type=merge", "-p", patch)
    return cp.kubectl_json("get", resource, name)["status"]


def test_every_status_field_the_hooks_write_survives_the_status_subresource(installed):
    cp = installed
    cp.kubectl("apply", "-f", str(ROOT / "manifests" / "samples"))
    parent = cp.kubectl_json("get", "jupyternotebook", "jupyternotebook-sample")
    status = sync_notebook(parent, {}, related_gateway(gateway("jupytergateway-sample")), NOW, TOKEN)["status"]
    assert write_status(cp, "jupyternotebook", "jupyternotebook-sample", status) == status
    parent = cp.kubectl_json("get", "jupytergateway", "jupytergateway-sample")
    status = sync_gateway(parent, {}, kernel_role(), NOW, TOKEN)["status"]
    assert write_status(cp, "jupytergateway", "jupytergateway-sample", status) == status
    table = cp.kubectl("get", "jupyternotebooks").stdout
    assert "http://jupyternotebook-sample-notebook.default.svc:8888" in table


TEMPLATE = {
    "metadata": {"labels": {"team": "ml"}},
    "spec": {
        "containers": [
            {
                "name": "notebook",
                "image": "my/lab:1",
                "command": ["jupyter", "lab"],
                "resources": {"requests": {"cpu": "500m", "memory": "1024Mi"}},
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    },
}
CASES = {
    "samples": None,
    "notebook-template": (
        notebook(
            "templated",
            "e2e-restricted",
            gateway={"name": "gw"},
            template=TEMPLATE,
            auth={"passwordSecretRef": {"name": "pw"}},
            kernelResources={"requests": {"cpu": "1", "nvidia.com/gpu": 1}, "limits": {"memory": "8Gi"}},
        ),
        gateway("gw", "e2e-restricted"),
    ),
    "gateway-full": (
        gateway(
            "full",
            "e2e-restricted",
            kernels=["python_kubernetes"],
            cullConnected=True,
            resources={"requests": {"cpu": 1}},
            kernelProfiles=[
                {"name": "python_kubernetes"},
                {"name": "gpu", "maxResources": {"nvidia.com/gpu": 1}, "priorityClassName": "kernels-low"},
            ],
        ),
        None,
    ),
    # kernels beside the notebook: its workspace claim and the gateway's RoleBinding here
    "notebook-kernels": (
        notebook(
            "ws", "e2e-restricted", gateway={"name": "shared", "namespace": "e2e-gateways"}, workspace={"size": "1Gi"}
        ),
        gateway("shared", "e2e-gateways", allowedNamespaces=["e2e-restricted"]),
    ),
}


def rendered(case: str) -> list[dict]:
    if case == "samples":
        docs = [
            load("manifests/samples/jupytergateway-sample.yaml"),
            load("manifests/samples/jupyternotebook-sample.yaml"),
        ]
        for doc in docs:
            doc["metadata"]["namespace"] = "e2e-restricted"
        docs[1]["spec"]["gateway"]["namespace"] = "e2e-restricted"
        children = render(docs)
        for child in children:
            if child["kind"] == "Secret":
                child["data"] = {"token": "c2VjcmV0"}
        return children
    parent, gw = CASES[case]
    if parent["kind"] == "JupyterGateway":
        return sync_gateway(parent, {}, kernel_role(), NOW, TOKEN)["children"]
    related = merged(related_gateway(gw), user_secret("pw", {"password": "pw"}, "e2e-restricted"))
    return sync_notebook(parent, {}, related, NOW, TOKEN)["children"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_children_are_accepted_and_their_pods_admitted_as_restricted(installed, case):
    cp = installed
    children = rendered(case)
    out = apply_children(cp, children)
    assert "Warning" not in out
    for child in children:
        if child["kind"] != "Deployment":
            continue
        selector = ",".join(f"{k}={v}" for k, v in child["spec"]["selector"]["matchLabels"].items())
        pods = wait_for(
            lambda s=selector: cp.kubectl_json("get", "pods", "-n", "e2e-restricted", "-l", s)["items"],
            timeout=60,
            what=f"pods of {child['metadata']['name']} admitted",
        )
        assert pods[0]["spec"]["securityContext"]["runAsNonRoot"] is True
    # Applying the same children again changes nothing: the hooks emit canonical values.
    before = {
        c["metadata"]["name"] + c["kind"]: c
        for c in cp.kubectl_json("get", f"{KINDS},persistentvolumeclaims", "-n", "e2e-restricted")["items"]
    }
    apply_children(cp, children)
    after = cp.kubectl_json("get", f"{KINDS},persistentvolumeclaims", "-n", "e2e-restricted")["items"]
    for obj in after:
        key = obj["metadata"]["name"] + obj["kind"]
        if key in before and obj["kind"] == "PersistentVolumeClaim":
            # kube-controller-manager's volume binder updates claims on its own: compare what we own.
            assert manager_entry(obj) == manager_entry(before[key]), key
        elif key in before:
            assert obj["metadata"]["resourceVersion"] == before[key]["metadata"]["resourceVersion"], key


def manager_entry(obj: dict) -> list[dict]:
    return [m for m in obj["metadata"].get("managedFields", []) if m["manager"] == "e2e"]


def test_a_root_template_would_be_refused_by_the_cluster_too(installed):
    """What the hook refuses (InvalidSpec) the API server's admission refuses as well."""
    from hooks.podsecurity import harden

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "evil", "namespace": "e2e-restricted"},
        "spec": harden({"containers": [{"name": "notebook", "image": "x"}], "securityContext": {"runAsUser": 0}}),
    }
    res = installed.kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)
    assert res.returncode != 0 and "violates PodSecurity" in res.stderr, res.stderr
    result = sync_notebook(notebook("evil", "e2e-restricted", template={"spec": pod["spec"]}), {}, {}, NOW, TOKEN)
    assert result["status"]["conditions"][0]["reason"] == "InvalidSpec"


def test_a_suspended_notebook_runs_no_pod_but_keeps_its_service_and_secret(installed):
    cp = installed
    gw = gateway("gw", "e2e-restricted")
    parent = notebook("sleepy", "e2e-restricted", gateway={"name": "gw"}, suspend=True)
    children = sync_notebook(parent, {}, related_gateway(gw), NOW, TOKEN)["children"]
    apply_children(cp, children)
    wait_for(
        lambda: cp.kubectl_json(
            "get", "replicasets", "-n", "e2e-restricted", "-l", "kubeflow.tkestack.io/jupyternotebook=sleepy"
        )["items"],
        timeout=60,
        what="the ReplicaSet of a suspended notebook",
    )
    assert cp.kubectl_json("get", "deployment", "sleepy-notebook", "-n", "e2e-restricted")["spec"]["replicas"] == 0
    assert not cp.kubectl_json(
        "get", "pods", "-n", "e2e-restricted", "-l", "kubeflow.tkestack.io/jupyternotebook=sleepy"
    )["items"]
    assert cp.exists("service", "sleepy-notebook", "-n", "e2e-restricted")
    assert cp.exists("secret", "sleepy-notebook-auth", "-n", "e2e-restricted")


def test_kernel_pods_the_launcher_renders_are_admitted_as_restricted_with_their_gpu(installed):
    """Enterprise Gateway's own launch_kubernetes.py rendering (tests/eg_launcher.py) of our
    template, after the guard, for a GPU profile with a ReadWriteOnce workspace: the API server
    accepts the pod in a namespace enforcing restricted, GPU request and priority included."""
    from hooks import kernel_guard
    from tests import eg_launcher

    cp = installed
    priority = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "kernels-preemptible"},
        "value": -10,
        "preemptionPolicy": "Never",
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(priority))
    profile = {
        "name": "python_gpu",
        "maxResources": {"nvidia.com/gpu": 1, "cpu": 2},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "kernels-preemptible",
    }
    parent = gateway("gw", "e2e-gateways", allowedNamespaces=["e2e-restricted"], kernelProfiles=[profile])
    parent["spec"]["defaultKernel"] = "python_gpu"
    data = next(c for c in sync_gateway(parent, {}, kernel_role(), NOW, TOKEN)["children"] if c["kind"] == "ConfigMap")[
        "data"
    ]
    kernel_id = "11111111-2222-4333-8444-555555555555"
    env = kernel_guard.checked_env(
        {
            "KERNEL_ID": kernel_id,
            "KERNEL_POD_NAME": f"ws-{kernel_id}",
            "KERNEL_NAMESPACE": "e2e-restricted",
            "KERNEL_NOTEBOOK": "ws",
            "KERNEL_GPUS": "1",
            "KERNEL_WORKSPACE_CLAIM": "ws-workspace",
            "KERNEL_WORKING_DIR": "/home/jovyan/work",
            "KERNEL_SERVICE_ACCOUNT_NAME": "gw-gateway",
            "KERNEL_IMAGE": "evil:1",
        },
        json.loads(data["python_gpu.policy.json"]),
    )
    [pod] = eg_launcher.render_pod(data["python_gpu.kernel-pod.yaml.j2"], env)
    out = cp.kubectl("apply", "-f", "-", input=json.dumps(pod)).stdout
    assert "created" in out
    stored = cp.kubectl_json("get", "pod", pod["metadata"]["name"], "-n", "e2e-restricted")
    container = stored["spec"]["containers"][0]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == "elyra/kernel-py:3.3.0"
    assert stored["spec"]["serviceAccountName"] == "default"
    assert stored["spec"]["automountServiceAccountToken"] is False
    assert stored["spec"]["priority"] == -10
    assert stored["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert not [v for v in stored["spec"]["volumes"] if "projected" in v], "no service account token"


def test_the_gateway_may_run_kernel_pods_exactly_where_its_notebooks_are_and_sweeps_its_orphans(installed):
    """RBAC as rendered (the gateway's RoleBinding, a notebook's RoleBinding in its namespace,
    the shipped ClusterRole), checked by the API server's authorizer; then the gateway's
    sweep (kernel_sweep.py, run by Enterprise Gateway's interpreter with its kubernetes client)
    deletes this gateway's kernel pods and nothing else."""
    import subprocess

    from hooks import kernelspecs

    eg_python = ROOT / ".cache" / "venvs" / "eg" / "bin" / "python"
    assert eg_python.exists(), f"{eg_python} missing: run `make runtimes` (tests/integration/provision.sh)"
    cp = installed
    cp.create_namespace("e2e-gateways")
    gw = gateway("sweeper", "e2e-gateways", allowedNamespaces=["e2e-restricted"])
    gw_children = sync_gateway(gw, {}, kernel_role(), NOW, TOKEN)["children"]
    apply_children(cp, gw_children)
    nb = notebook("swept", "e2e-restricted", gateway={"name": "sweeper", "namespace": "e2e-gateways"})
    apply_children(cp, sync_notebook(nb, {}, related_gateway(gw), NOW, TOKEN)["children"])

    who = "--as=system:serviceaccount:e2e-gateways:sweeper-gateway"

    def can(verb: str, resource: str, namespace: str) -> bool:
        res = cp.kubectl("auth", "can-i", verb, resource, "-n", namespace, who, check=False)
        return res.stdout.strip() == "yes"

    for namespace in ("e2e-gateways", "e2e-restricted"):
        assert all(can(verb, "pods", namespace) for verb in ("create", "get", "list", "delete")), namespace
        assert not can("watch", "pods", namespace) and not can("create", "secrets", namespace)
    assert not can("create", "pods", "default") and not can("create", "pods", "kube-system")

    def pod(name: str, labels: dict) -> dict:
        spec = {"containers": [{"name": "kernel", "image": "elyra/kernel-py:3.3.0"}]}
        from hooks.podsecurity import harden

        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "e2e-restricted", "labels": labels},
            "spec": {**harden(spec), "automountServiceAccountToken": False},
        }

    selector = dict(part.split("=") for part in kernelspecs.sweep_selector("sweeper", "e2e-gateways").split(","))
    orphan = pod("orphan-kernel", {**selector, "app": "enterprise-gateway", "kernel_id": "x"})
    other = pod("other-gateways-kernel", {**selector, "kubeflow.tkestack.io/gateway-name": "another"})
    apply_children(cp, [orphan, other])
    data = next(c for c in gw_children if c["metadata"]["name"] == "sweeper-gateway-kernelspecs")["data"]
    sweep = cp.workdir / "sweep.json"
    sweep.write_text(data["sweep.json"])
    script = ROOT / "hooks" / "kernel_sweep.py"
    env = {"KUBECONFIG": str(cp.kubeconfig), "PATH": os.environ["PATH"]}
    result = subprocess.run([str(eg_python), str(script), str(sweep)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "deleted 1 kernel pods" in result.stderr
    wait_for(lambda: not cp.exists("pod", "orphan-kernel", "-n", "e2e-restricted"), timeout=30, what="orphan gone")
    assert cp.exists("pod", "other-gateways-kernel", "-n", "e2e-restricted")
