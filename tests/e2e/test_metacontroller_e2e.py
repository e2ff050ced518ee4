"""JupyterGateway and JupyterNotebook on a real kube-apiserver, kube-controller-manager and Metacontroller.

The manifests are installed with `kubectl apply -k` through an overlay whose only change is
the hook URLs (the hook server runs on 127.0.0.1). No kubelet runs: pods stay Pending, so
the tests assert on API objects. Namespaces enforce the `restricted` Pod Security Standard,
so a pod object that exists has passed the API server's own admission.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from controlplane import REPO_ROOT, ControlPlane, Process, free_port, wait_for
from hooks_next import NEXT_IMAGE

from hooks.models import DEFAULT_NOTEBOOK_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.metacontroller]

SAMPLES = REPO_ROOT / "manifests" / "samples"
GROUP = "kubeflow.tkestack.io"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
HOOK_PATHS = {
    ("jupytergateway-controller", "sync"): "/sync/jupytergateway",
    ("jupytergateway-controller", "customize"): "/customize/jupytergateway",
    ("jupyternotebook-controller", "sync"): "/sync/jupyternotebook",
    ("jupyternotebook-controller", "customize"): "/customize/jupyternotebook",
}


class HookServer:
    """Our hook server (uvicorn, access log on so that calls can be counted), stopped by PID."""

    def __init__(self, workdir: Path, app: str = "hooks.app:app", name: str = "hooks", factory: bool = False) -> None:
        self.port = free_port()
        self.log = workdir / f"{name}-{self.port}.log"
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--app-dir",
            str(Path(__file__).parent),
        ]
        if factory:
            argv.append("--factory")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with self.log.open("ab") as out:
            popen = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.process = Process(name, popen, self.log)
        wait_for(lambda: self._healthy(), timeout=30, what=f"hook server on {self.port}")

    def _healthy(self) -> bool:
        self.process.check_alive()
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
            return r.status == 200

    def calls(self) -> Counter:
        lines = self.log.read_text(errors="replace").splitlines()
        return Counter(line.split('"POST ')[1].split()[0] for line in lines if '"POST ' in line)

    def stop(self) -> None:
        self.process.stop()


def overlay(workdir: Path, port: int) -> Path:
    """A kustomization of manifests/ whose only change is the hook URLs."""
    directory = workdir / f"overlay-{port}"
    directory.mkdir(exist_ok=True)
    patches = []
    for (controller, hook), path in HOOK_PATHS.items():
        patches.append(
            {
                "target": {"group": "metacontroller.k8s.io", "kind": "CompositeController", "name": controller},
                "patch": json.dumps(
                    [
                        {
                            "op": "add",
                            "path": f"/spec/hooks/{hook}/webhook/url",
                            "value": f"http://127.0.0.1:{port}{path}",
                        }
                    ]
                ),
            }
        )
    kustomization = {"resources": [os.path.relpath(REPO_ROOT / "manifests", directory)], "patches": patches}
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization))
    return directory


def get(cp: ControlPlane, *args: str):
    res = cp.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None


def condition(obj: dict | None, type_: str) -> dict:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def owned_by(obj: dict, kind: str, name: str) -> bool:
    return any(
        r["kind"] == kind and r["name"] == name and r.get("controller")
        for r in obj["metadata"].get("ownerReferences", [])
    )


GATEWAY_CHILDREN = [
    ("serviceaccount", "-gateway"),
    ("rolebinding", "-gateway"),
    ("configmap", "-gateway"),
    ("deployment", "-gateway"),
    ("service", ""),
    ("secret", "-gateway-auth"),
    ("networkpolicy", "-gateway"),
]
NOTEBOOK_CHILDREN = [
    ("deployment", "-notebook"),
    ("service", "-notebook"),
    ("secret", "-notebook-auth"),
    ("configmap", "-notebook-config"),  # every notebook here uses a gateway
]


def wait_children(cp, namespace, name, kind, children, timeout=60.0) -> dict[str, dict]:
    def all_there():
        found = {}
        for resource, suffix in children:
            obj = get(cp, resource, f"{name}{suffix}", "-n", namespace)
            if obj is None or not owned_by(obj, kind, name):
                return None
            found[resource] = obj
        return found

    return wait_for(all_there, timeout=timeout, what=f"children of {kind} {namespace}/{name}")


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane):
    """Our manifests installed, Metacontroller and the hook server running."""
    workdir = control_plane.workdir
    hooks = HookServer(workdir)
    control_plane.kubectl("label", "namespace", "default", *[f"{k}={v}" for k, v in RESTRICTED.items()], "--overwrite")
    metacontroller = control_plane.start_metacontroller()
    control_plane.kubectl("apply", "-k", str(overlay(workdir, hooks.port)))
    for crd in ("jupytergateways", "jupyternotebooks"):
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{GROUP}", "--timeout=60s")
        control_plane.wait_for_resource(f"{crd}.{GROUP}")
    state = {"cp": control_plane, "hooks": hooks, "metacontroller_pid": metacontroller.pid, "timings": {}}
    try:
        yield state
    finally:
        state["hooks"].stop()
        control_plane.stop_metacontroller()


def test_1_the_seed_scenario(cluster):
    """The original README's two CRs, applied unchanged."""
    cp = cluster["cp"]
    started = time.monotonic()
    cp.kubectl("apply", "-f", str(SAMPLES / "jupytergateway-sample.yaml"))
    cp.kubectl("apply", "-f", str(SAMPLES / "jupyternotebook-sample.yaml"))
    gw = wait_children(cp, "default", "jupytergateway-sample", "JupyterGateway", GATEWAY_CHILDREN)
    nb = wait_children(cp, "default", "jupyternotebook-sample", "JupyterNotebook", NOTEBOOK_CHILDREN)
    cluster["timings"]["seed: apply to all children"] = time.monotonic() - started

    config = gw["configmap"]["data"]["jupyter_enterprise_gateway_config.json"]
    assert json.loads(config)["RemoteMappingKernelManager"]["cull_idle_timeout"] == 3600
    assert gw["rolebinding"]["roleRef"]["name"] == "jupyter-gateway-kernels"
    env = {e["name"]: e.get("value") for e in nb["deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTER_GATEWAY_URL"] == "http://jupytergateway-sample.default.svc:8888"

    notebook = wait_for(
        lambda: (
            (n := get(cp, "jupyternotebook", "jupyternotebook-sample"))
            and condition(n, "GatewayReady").get("reason") == "GatewayNotReady"
            and n
        ),
        timeout=60,
        what="notebook status",
    )
    assert notebook["status"]["gatewayUrl"] == "http://jupytergateway-sample.default.svc:8888"
    assert notebook["status"]["observedGeneration"] == notebook["metadata"]["generation"]
    gateway = get(cp, "jupytergateway", "jupytergateway-sample")
    assert condition(gateway, "Ready")["reason"] == "DeploymentNotAvailable", "no kubelet: never available"

    table = cp.kubectl("get", "jupyternotebooks").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "GATEWAY", "URL", "AGE"]
    assert "jupytergateway-sample" in table[1] and "http://jupyternotebook-sample-notebook.default.svc:8888" in table[1]
    assert cp.kubectl("get", "jupytergateways").stdout.split()[:4] == ["NAME", "READY", "CULL-IDLE", "AGE"]
    assert "jupyternotebook-sample" in cp.kubectl("get", "jupyter").stdout, "the jupyter category"

    # The ReplicaSets' pods were admitted by the restricted Pod Security admission.
    for selector in (
        "kubeflow.tkestack.io/jupytergateway=jupytergateway-sample",
        "kubeflow.tkestack.io/jupyternotebook=jupyternotebook-sample",
    ):
        wait_for(lambda s=selector: get(cp, "pods", "-l", s)["items"], timeout=60, what=f"pods {selector}")


def test_2_a_notebook_in_another_namespace_uses_the_shared_gateway(cluster):
    cp = cluster["cp"]
    cp.create_namespace("team-a", RESTRICTED)
    cp.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "JupyterNotebook",
            "metadata": {"name": "mallory", "namespace": "team-a"},
            "spec": {"gateway": {"name": "jupytergateway-sample", "namespace": "default"}},
        }
    )
    wait_for(
        lambda: (
            condition(get(cp, "jupyternotebook", "mallory", "-n", "team-a"), "GatewayReady").get("reason")
            == "NamespaceNotAllowed"
        ),
        timeout=60,
        what="a namespace the gateway does not allow",
    )
    assert get(cp, "deployment", "mallory-notebook", "-n", "team-a") is None
    cp.kubectl(
        "patch",
        "jupytergateway",
        "jupytergateway-sample",
        "--type=merge",
        "-p",
        '{"spec": {"allowedNamespaces": ["team-a"]}}',
    )
    cp.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "JupyterNotebook",
            "metadata": {"name": "alice", "namespace": "team-a"},
            "spec": {"gateway": {"name": "jupytergateway-sample", "namespace": "default"}},
        }
    )
    nb = wait_children(cp, "team-a", "alice", "JupyterNotebook", NOTEBOOK_CHILDREN)
    env = {e["name"]: e.get("value") for e in nb["deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTER_GATEWAY_URL"] == "http://jupytergateway-sample.default.svc:8888"
    assert env["KERNEL_USERNAME"] == "alice"
    wait_for(
        lambda: (
            condition(get(cp, "jupyternotebook", "alice", "-n", "team-a"), "GatewayReady").get("reason")
            == "GatewayNotReady"
        ),
        timeout=60,
        what="alice sees the gateway",
    )


def resource_versions(cp, namespace, name, children) -> dict[str, str]:
    return {r: get(cp, r, f"{name}{s}", "-n", namespace)["metadata"]["resourceVersion"] for r, s in children}


def test_3_updates_reach_children_and_resyncs_write_nothing(cluster):
    cp = cluster["cp"]
    name = "jupytergateway-sample"
    before = wait_children(cp, "default", name, "JupyterGateway", GATEWAY_CHILDREN)
    # Nothing changed: several syncs (triggered by touching the parent) write no child.
    versions = resource_versions(cp, "default", name, GATEWAY_CHILDREN)
    calls_before = cluster["hooks"].calls()["/sync/jupytergateway"]
    for i in range(3):
        cp.kubectl("annotate", "jupytergateway", name, f"e2e/touch={i}", "--overwrite")
    wait_for(
        lambda: cluster["hooks"].calls()["/sync/jupytergateway"] >= calls_before + 3,
        timeout=30,
        what="three more gateway syncs",
    )
    time.sleep(2)
    assert resource_versions(cp, "default", name, GATEWAY_CHILDREN) == versions

    # cullIdleTimeout: the ConfigMap changes and the pod template changes (a rollout).
    cp.kubectl("patch", "jupytergateway", name, "--type=merge", "-p", '{"spec": {"cullIdleTimeout": 600}}')
    config = wait_for(
        lambda: (
            (c := get(cp, "configmap", f"{name}-gateway"))
            and '"cull_idle_timeout": 600' in c["data"]["jupyter_enterprise_gateway_config.json"]
            and c
        ),
        timeout=60,
        what="new ConfigMap",
    )
    assert config
    hash_before = before["deployment"]["spec"]["template"]["metadata"]["annotations"]
    wait_for(
        lambda: get(cp, "deployment", f"{name}-gateway")["spec"]["template"]["metadata"]["annotations"] != hash_before,
        timeout=60,
        what="a rollout of the gateway",
    )

    # clusterRole: the RoleBinding is recreated with the new roleRef (roleRef is immutable).
    cp.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "e2e-kernels", "labels": {"kubeflow.tkestack.io/gateway-kernel-role": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
    )
    old_uid = get(cp, "rolebinding", f"{name}-gateway")["metadata"]["uid"]
    cp.kubectl("patch", "jupytergateway", name, "--type=merge", "-p", '{"spec": {"clusterRole": "e2e-kernels"}}')
    binding = wait_for(
        lambda: (b := get(cp, "rolebinding", f"{name}-gateway")) and b["roleRef"]["name"] == "e2e-kernels" and b,
        timeout=60,
        what="RoleBinding to e2e-kernels",
    )
    assert binding["metadata"]["uid"] != old_uid


def test_3b_a_cluster_role_without_the_label_is_refused(cluster):
    cp = cluster["cp"]
    cp.kubectl(
        "patch",
        "jupytergateway",
        "jupytergateway-sample",
        "--type=merge",
        "-p",
        '{"spec": {"clusterRole": "cluster-admin"}}',
    )
    wait_for(
        lambda: (
            condition(get(cp, "jupytergateway", "jupytergateway-sample"), "Ready").get("reason")
            == "ClusterRoleNotAllowed"
        ),
        timeout=60,
        what="ClusterRoleNotAllowed",
    )
    assert get(cp, "rolebinding", "jupytergateway-sample-gateway")["roleRef"]["name"] == "e2e-kernels"
    cp.kubectl(
        "patch",
        "jupytergateway",
        "jupytergateway-sample",
        "--type=merge",
        "-p",
        '{"spec": {"clusterRole": "jupyter-gateway-kernels"}}',
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cullIdleTimeout": -1}, "spec.cullIdleTimeout"),
        ({"logLevel": "loud"}, "spec.logLevel"),
        ({"kernels": ["a"], "defaultKernel": "b"}, "defaultKernel must be one of kernels"),
        ({"cullBusy": "yes"}, "spec.cullBusy"),
    ],
)
def test_4_invalid_input_is_rejected_at_apply_and_changes_nothing(cluster, spec, message):
    cp = cluster["cp"]
    name = "jupytergateway-sample"
    versions = resource_versions(cp, "default", name, GATEWAY_CHILDREN)
    cr = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "JupyterGateway", "metadata": {"name": name}, "spec": spec}
    res = cp.kubectl("apply", "-f", "-", input=json.dumps(cr), check=False)
    assert res.returncode != 0 and message in res.stderr, res.stderr
    assert resource_versions(cp, "default", name, GATEWAY_CHILDREN) == versions


def test_4b_unknown_fields_and_bad_names_are_rejected(cluster):
    cp = cluster["cp"]
    bad = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "JupyterNotebook",
        "metadata": {"name": "bob"},
        "spec": {"gatway": {"name": "x"}},
    }
    res = cp.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0 and 'unknown field "spec.gatway"' in res.stderr, res.stderr
    bad = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "JupyterGateway", "metadata": {"name": "x-notebook"}, "spec": {}}
    res = cp.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0 and "metadata.name" in res.stderr, res.stderr


def test_5_hook_server_down_keeps_children_then_converges(cluster):
    cp = cluster["cp"]
    name = "jupytergateway-sample"
    cluster["hooks"].stop()
    versions = resource_versions(cp, "default", name, GATEWAY_CHILDREN)
    cp.kubectl("patch", "jupytergateway", name, "--type=merge", "-p", '{"spec": {"cullInterval": 30}}')
    wait_for(
        lambda: (
            "SyncError"
            in cp.kubectl("get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}").stdout
        ),
        timeout=60,
        what="a SyncError event",
    )
    assert resource_versions(cp, "default", name, GATEWAY_CHILDREN) == versions, "children untouched while down"
    cluster["hooks"] = HookServer(cp.workdir)
    # Same port is not guaranteed: point the controllers at the new server (Metacontroller keeps running).
    cp.kubectl("apply", "-k", str(overlay(cp.workdir, cluster["hooks"].port)))
    wait_for(
        lambda: (
            '"cull_interval": 30'
            in get(cp, "configmap", f"{name}-gateway")["data"]["jupyter_enterprise_gateway_config.json"]
        ),
        timeout=90,
        what="convergence after the outage",
    )


def test_5b_a_deleted_gateway_is_reported_and_the_notebook_kept(cluster):
    cp = cluster["cp"]
    cp.apply({"apiVersion": f"{GROUP}/v1alpha1", "kind": "JupyterGateway", "metadata": {"name": "doomed"}, "spec": {}})
    cp.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "JupyterNotebook",
            "metadata": {"name": "orphan"},
            "spec": {"gateway": {"name": "doomed"}},
        }
    )
    wait_children(cp, "default", "orphan", "JupyterNotebook", NOTEBOOK_CHILDREN)
    versions = resource_versions(cp, "default", "orphan", NOTEBOOK_CHILDREN)
    cp.kubectl("delete", "jupytergateway", "doomed", "--wait=true")
    wait_for(
        lambda: condition(get(cp, "jupyternotebook", "orphan"), "GatewayReady").get("reason") == "GatewayNotFound",
        timeout=60,
        what="GatewayNotFound",
    )
    assert resource_versions(cp, "default", "orphan", NOTEBOOK_CHILDREN) == versions


def test_6_hot_swap_of_the_hook_server_without_restarting_metacontroller(cluster):
    cp = cluster["cp"]
    deployment = get(cp, "deployment", "jupyternotebook-sample-notebook")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == DEFAULT_NOTEBOOK_IMAGE
    old = cluster["hooks"]
    cluster["hooks"] = HookServer(cp.workdir, app="hooks_next:create_app", name="hooks-next", factory=True)
    cp.kubectl("apply", "-k", str(overlay(cp.workdir, cluster["hooks"].port)))
    wait_for(
        lambda: (
            get(cp, "deployment", "jupyternotebook-sample-notebook")["spec"]["template"]["spec"]["containers"][0][
                "image"
            ]
            == NEXT_IMAGE
        ),
        timeout=90,
        what="the new version's image",
    )
    old.stop()
    assert cp.metacontroller is not None and cp.metacontroller.alive()
    assert cp.metacontroller.pid == cluster["metacontroller_pid"], "Metacontroller was not restarted"


def test_7_deleting_a_notebook_garbage_collects_its_children(cluster):
    cp = cluster["cp"]
    cp.kubectl("delete", "jupyternotebook", "alice", "-n", "team-a", "--wait=true")
    wait_for(
        lambda: all(get(cp, r, f"alice{s}", "-n", "team-a") is None for r, s in NOTEBOOK_CHILDREN),
        timeout=90,
        what="garbage collection of alice's children",
    )


def test_8_measure_apply_to_children_and_hook_calls(cluster):
    cp = cluster["cp"]
    samples = []
    for i in range(5):
        name = f"timing-{i}"
        started = time.monotonic()
        cp.apply(
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "JupyterNotebook",
                "metadata": {"name": name},
                "spec": {"gateway": {"name": "jupytergateway-sample"}},
            }
        )
        seen = {}
        while len(seen) < len(NOTEBOOK_CHILDREN) and time.monotonic() - started < 60:
            for resource, suffix in NOTEBOOK_CHILDREN:
                if resource not in seen and get(cp, resource, f"{name}{suffix}") is not None:
                    seen[resource] = time.monotonic() - started
            time.sleep(0.05)
        assert len(seen) == len(NOTEBOOK_CHILDREN)
        samples.append(seen)
    medians = {r: statistics.median(s[r] for s in samples) for r, _ in NOTEBOOK_CHILDREN}
    calls = cluster["hooks"].calls()
    print(
        "\n[e2e] median seconds from `kubectl apply` of a JupyterNotebook to its child existing:",
        {r: round(v, 2) for r, v in medians.items()},
    )
    print(
        f"[e2e] seed scenario, apply to all children: {cluster['timings'].get('seed: apply to all children', 0):.2f}s"
    )
    print(f"[e2e] hook calls served by the current hook server: {dict(calls)}")
    assert all(v < 30 for v in medians.values())
    assert calls["/sync/jupyternotebook"] >= 5
