"""Kernel pods for real: a real Enterprise Gateway 3.3.0, started from what the hooks render,
creates each kernel pod through a real API server with its real KubernetesProcessProxy and
the sdist's launch_kubernetes.py; the pod passes `restricted` and the notebook namespace's
ResourceQuota; the kernel (the sdist's launch_ipykernel.py) runs `1+1` for a real Jupyter
Server configured from the rendered notebook; EG culls it and the pod is deleted through
the API. The only stand-in is the node (fake_node.FakeNode).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import localrun as lr
import pytest
import stack as ks
from controlplane import wait_for

pytestmark = pytest.mark.kernels

CULL_IDLE, CULL_INTERVAL = 4, 1
KERNEL_DEFAULTS = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
GPU_PROFILE = {
    "name": "python_gpu",
    "displayName": "Python with a GPU",
    "image": "elyra/kernel-tf-gpu-py:3.3.0",
    "resources": KERNEL_DEFAULTS,
    "maxResources": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1},
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": ks.PREEMPTIBLE,
}
GATEWAY_SPEC = {
    "cullIdleTimeout": CULL_IDLE,
    "cullInterval": CULL_INTERVAL,
    "allowedNamespaces": [ks.NOTEBOOK_NS],
    "kernelLaunchTimeout": 60,
    "kernelProfiles": [
        {"name": "python_kubernetes", "displayName": "Python", "image": ks.KERNEL_IMAGE,
         "resources": KERNEL_DEFAULTS, "maxResources": {"cpu": "1", "memory": "1Gi"}},
        GPU_PROFILE,
    ],
}  # fmt: skip
NOTEBOOK_SPEC = {"gateway": {"name": ks.GATEWAY, "namespace": ks.GATEWAY_NS}, "workspace": {"size": "1Gi"}}
# A client talking to the gateway directly (any holder of the gateway token), as a notebook would.
CLIENT_ENV = {"KERNEL_USERNAME": "mallory", "KERNEL_NAMESPACE": ks.NOTEBOOK_NS}


@pytest.fixture(scope="module")
def stack(figures):
    with ks.start_stack("kernel-pods", GATEWAY_SPEC, NOTEBOOK_SPEC) as running:
        figures.update({f"setup.{k}": v for k, v in running.timings.items()})
        yield running
        figures["node.errors"] = running.node.errors[-5:]


def failure(stack: ks.KernelStack) -> str:
    """What to read when a kernel did not start: EG's log and what the node saw."""
    return f"\n--- EG log ---\n{stack.eg.log_tail(30)}\n--- node ---\n{stack.node.errors[-5:]}"


@pytest.fixture(scope="module")
def notebook_kernel(stack, figures):
    """A kernel the notebook starts (as JupyterLab would), with an open websocket."""
    jupyter = stack.jupyter
    t0 = time.monotonic()
    # As JupyterLab opens a notebook: a session, whose kernel is the gateway's default profile.
    body = {"path": "analysis.ipynb", "type": "notebook", "name": "analysis.ipynb", "kernel": {}}
    status, session = jupyter.api("POST", "/api/sessions", body, timeout=120)
    assert status == 201, f"{status} {session}{failure(stack)}"
    figures["kernel_start_s"] = round(time.monotonic() - t0, 2)
    kernel = session["kernel"]
    ws = lr.KernelWS(jupyter.url, kernel["id"], jupyter.token)
    try:
        yield {"id": kernel["id"], "ws": ws}
    finally:
        ws.close()


def test_the_notebook_runs_1_plus_1_in_a_kernel_pod(stack, notebook_kernel, figures):
    pod = stack.kernel_pod(notebook_kernel["id"])
    assert pod is not None, "no kernel pod in the API server" + failure(stack)
    figures["kernel_pod_namespace"] = pod["metadata"]["namespace"]
    assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"] == "fake-node"
    record = stack.node.record(pod["metadata"]["namespace"], pod["metadata"]["name"])
    assert record and record.proc and record.proc.poll() is None, "the node runs no process for the pod"
    assert "launch_ipykernel.py" in " ".join(record.argv) or "bootstrap-kernel.sh" in " ".join(record.argv)
    t0 = time.monotonic()
    result = notebook_kernel["ws"].execute("1+1", timeout=60)
    figures["first_execute_1_plus_1_s"] = round(time.monotonic() - t0, 2)
    assert (result["status"], result["result"]) == ("ok", "2"), result
    # The kernel is the process the node started for the pod, not a child of EG.
    result = notebook_kernel["ws"].execute("import os; os.getpid(), os.getsid(0)", timeout=30)
    kernel_pid, session = (int(x) for x in result["result"].strip("()").split(","))
    assert session == record.proc.pid and kernel_pid not in lr.descendants(stack.eg.pid)


def test_the_kernel_runs_beside_its_notebook(stack, notebook_kernel):
    """Issue 11 item 3: a notebook's kernels run in the notebook's namespace."""
    pod = stack.kernel_pod(notebook_kernel["id"])
    assert pod["metadata"]["namespace"] == ks.NOTEBOOK_NS, (
        f"the kernel pod runs in {pod['metadata']['namespace']}, not beside its notebook in {ks.NOTEBOOK_NS}"
    )


def test_the_kernel_pod_is_admitted_as_restricted_and_holds_no_token(stack, notebook_kernel):
    pod = stack.kernel_pod(notebook_kernel["id"])
    namespace = stack.api.get(f"/api/v1/namespaces/{pod['metadata']['namespace']}")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The admission is real: the stock template's pod (no securityContext) is refused there.
    where = {"name": "stock", "namespace": pod["metadata"]["namespace"]}
    stock = {"apiVersion": "v1", "kind": "Pod", "metadata": where,
             "spec": {"containers": [{"name": "kernel", "image": ks.KERNEL_IMAGE}]}}  # fmt: skip
    res = stack.cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(stock), check=False)
    assert res.returncode != 0 and "violates PodSecurity" in res.stderr, res.stderr
    assert pod["spec"].get("automountServiceAccountToken") is False
    assert pod["spec"]["serviceAccountName"] != f"{ks.GATEWAY}-gateway"


def test_a_file_saved_in_the_notebook_is_what_the_kernel_opens(stack, notebook_kernel):
    """Issue 11 item 4: the workspace is mounted in the notebook and the kernel at the same path."""
    text = f"written through the contents API at {time.time()}"
    status, model = stack.jupyter.api(
        "PUT", "/api/contents/shared.txt", {"type": "file", "format": "text", "content": text}
    )
    assert status in (200, 201), model
    result = notebook_kernel["ws"].execute("print(open('shared.txt').read(), end='')", timeout=30)
    assert result["stdout"] == text, result


# --- a client that tries to steer its kernel pod ---------------------------------------------


def started_pod(stack: ks.KernelStack, env: dict, name: str | None = None) -> tuple[int, object, dict | None]:
    """POST a kernel straight to EG; (status, body, its pod or None). Deletes a started kernel."""
    body = {"env": env} | ({"name": name} if name else {})
    status, kernel = stack.eg_post(body)
    pod = None
    if status == 201:
        pod = stack.kernel_pod(kernel["id"])
        stack.eg.api("DELETE", f"/api/kernels/{kernel['id']}")
    return status, kernel, pod


def no_pod_named(stack: ks.KernelStack, username: str) -> bool:
    return not [p for p in stack.kernel_pods() if p["metadata"]["name"].startswith(username + "-")]


STEERS = {
    "service-account": (
        {"KERNEL_SERVICE_ACCOUNT_NAME": f"{ks.GATEWAY}-gateway"},
        lambda pod: pod["spec"]["serviceAccountName"] != f"{ks.GATEWAY}-gateway",
    ),
    "image": ({"KERNEL_IMAGE": "evil/miner:1"}, lambda pod: pod["spec"]["containers"][0]["image"] != "evil/miner:1"),
    "host-path": (
        {
            "KERNEL_VOLUMES": "[{name: host, hostPath: {path: /}}]",
            "KERNEL_VOLUME_MOUNTS": "[{name: host, mountPath: /host}]",
        },
        lambda pod: not any("hostPath" in v for v in pod["spec"].get("volumes") or []),
    ),
    "root": (
        {"KERNEL_UID": "0", "KERNEL_GID": "0"},
        lambda pod: (pod["spec"].get("securityContext") or {}).get("runAsUser") not in (0, None),
    ),
    "namespace": ({"KERNEL_NAMESPACE": "kube-system"}, lambda pod: pod["metadata"]["namespace"] != "kube-system"),
}


@pytest.mark.parametrize("steer", sorted(STEERS))
def test_a_client_cannot_steer_its_kernel_pod(stack, steer, figures):
    env, holds = STEERS[steer]
    username = f"steer-{steer}"
    status, body, pod = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": username, **env})
    figures[f"steer.{steer}"] = "started, steering ignored" if status == 201 else f"refused {status}"
    if status == 201:
        assert pod is not None, "EG started the kernel but no pod is in the API server"
        assert holds(pod), f"the client steered the pod: {pod['spec']}"
    else:
        assert status >= 400 and no_pod_named(stack, username), (status, body)


def test_only_the_gateways_own_kernelspecs_start(stack, figures):
    status, specs = stack.eg.api("GET", "/api/kernelspecs")
    assert status == 200
    figures["kernelspecs_served"] = sorted(specs["kernelspecs"])
    for name in ("python3", "spark_python_kubernetes", "R_kubernetes"):
        status, body, _ = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": "stock"}, name=name)
        figures[f"stock_kernelspec.{name}"] = f"{status} {message(body)[:80]}"
        assert status >= 400, f"EG started the stock kernelspec {name}: {body}"
        stack.eg.wait_for_log(rf"NoSuchKernel: No such kernel named {name}")
    others = [r.name for r in stack.node.running() if not r.name.startswith(ks.NOTEBOOK + "-")]
    assert no_pod_named(stack, "stock") and not others, f"kernels running besides the notebook's: {others}"


def test_a_kernel_over_its_profile_maximum_is_refused_with_a_message(stack, figures):
    username = "greedy"
    status, body, pod = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": username, "KERNEL_CPUS": "3"})
    figures["over_profile_maximum.client_gets"] = f"{status} {message(body)}"
    assert status >= 400 and pod is None and no_pod_named(stack, username), (status, body)
    assert "Error occurred during launch" in message(body)
    stack.eg.wait_for_log(r"KERNEL_CPUS=3 is more than this kernel profile allows \(cpu at most 1\)")


# Other spellings of the variables the template reads: the stock launcher lower-cases every
# KERNEL_* name into a keyword and the last one wins, so each of these steered the pod before
# the guard refused names it does not know exactly (issue 15).
SPELLINGS = {
    "gpus": {"KERNEL_GPUs": "1", "KERNEL_GPUS_LIMIt": "1"},
    "cpu-limit": {"KERNEL_CPUS_LIMIt": "64"},
    "kernel-id": {"KERNEL_Id": "deadbeef-0000-4000-8000-000000000000"},
    "kelvin-sign": {"KERNEL_NOTEBOO\u212a": "someone-else"},
}


@pytest.mark.parametrize("case", sorted(SPELLINGS))
def test_another_spelling_of_a_kernel_variable_is_refused_with_a_message(stack, case, figures):
    username = f"spelling-{case}"
    env = SPELLINGS[case]
    t0 = time.monotonic()
    status, body, pod = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": username, **env})
    figures[f"spelling.{case}"] = f"{status} in {time.monotonic() - t0:.1f} s"
    assert status >= 400 and pod is None and no_pod_named(stack, username), (status, body, pod and pod["spec"])
    name = min(env)  # the guard names the first, in sorted order
    stack.eg.wait_for_log(re.escape(f"{name!a} is not a kernel variable this gateway takes"))


@pytest.mark.parametrize("value", ["nan", "1e9", "-1", "61"])
def test_a_launch_timeout_the_gateway_would_not_wait_is_refused_at_once(stack, value, figures):
    """Enterprise Gateway reads KERNEL_LAUNCH_TIMEOUT before the guard runs and waits on it
    (nan: for ever); the guard's exit ends that wait before any pod exists."""
    username = f"timeout-{value.replace('.', '-')}"
    t0 = time.monotonic()
    status, body, pod = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": username, "KERNEL_LAUNCH_TIMEOUT": value})
    elapsed = time.monotonic() - t0
    figures[f"launch_timeout.{value}"] = f"{status} in {elapsed:.1f} s"
    assert status >= 400 and pod is None and no_pod_named(stack, username), (status, body)
    assert elapsed < GATEWAY_SPEC["kernelLaunchTimeout"] / 2, "the gateway waited on the client's timeout"
    stack.eg.wait_for_log(re.escape(f"KERNEL_LAUNCH_TIMEOUT={value!r} is not a number of seconds"))


def message(body) -> str:
    return body.get("message") or body.get("reason") or str(body) if isinstance(body, dict) else str(body)


def test_a_gpu_kernel_gets_its_gpu_and_the_profiles_placement_and_the_quota_holds(stack, figures):
    """Issue 11 item 7, and a kernel over the namespace's ResourceQuota (one GPU) is refused."""
    env = {**CLIENT_ENV, "KERNEL_USERNAME": "gpu-user", "KERNEL_GPUS": "1"}
    status, kernel = stack.eg_post({"name": GPU_PROFILE["name"], "env": env})
    assert status == 201, f"{status} {kernel}{failure(stack)}"
    # Connected, so that it is not culled (freeing its GPU) before the second one asks.
    ws = lr.KernelWS(stack.eg.url, kernel["id"], stack.eg.token)
    try:
        pod = stack.kernel_pod(kernel["id"])
        resources = pod["spec"]["containers"][0]["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
        assert pod["spec"]["nodeSelector"] == GPU_PROFILE["nodeSelector"]
        assert GPU_PROFILE["tolerations"][0] in pod["spec"]["tolerations"]
        assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == (ks.PREEMPTIBLE, -10)
        assert pod["spec"]["containers"][0]["image"] == GPU_PROFILE["image"]
        used = stack.api.get(f"/api/v1/namespaces/{ks.NOTEBOOK_NS}/resourcequotas/team")["status"]["used"]
        assert used["requests.nvidia.com/gpu"] == "1", used
        # The namespace's quota holds one GPU: a second GPU kernel is refused.
        status, body, second = started_pod(stack, {**env, "KERNEL_USERNAME": "gpu-two"}, GPU_PROFILE["name"])
        figures["over_quota.client_gets"] = f"{status} {message(body)}"
        assert status >= 400 and second is None and no_pod_named(stack, "gpu-two"), (status, body)
        stack.eg.wait_for_log(r"exceeded quota: team, requested: requests.nvidia.com/gpu=1")
    finally:
        ws.close()
        stack.eg.api("DELETE", f"/api/kernels/{kernel['id']}")
    notebook = wait_for(
        lambda: stack.api.pods(ks.NOTEBOOK_NS, f"kubeflow.tkestack.io/jupyternotebook={ks.NOTEBOOK}"),
        timeout=60,
        what="the notebook pod (kube-controller-manager)",
    )
    for container in notebook[0]["spec"]["containers"]:
        for part in ("requests", "limits"):
            assert "nvidia.com/gpu" not in (container.get("resources") or {}).get(part, {}), container


# --- where the gateway restarts ----------------------------------------------------------------


def test_culling_deletes_the_kernel_pod(stack, notebook_kernel, figures):
    """Last with the notebook's kernel: close its websocket, let it idle, EG culls it."""
    kernel_id = notebook_kernel["id"]
    pod = stack.kernel_pod(kernel_id)
    # Its last activity is this cell; an open tab keeps a kernel (cullConnected is false).
    assert notebook_kernel["ws"].execute("1+1", timeout=30)["result"] == "2"
    notebook_kernel["ws"].close()
    wait_for(lambda: stack.eg.api("GET", f"/api/kernels/{kernel_id}")[1]["connections"] == 0, timeout=10)
    last_activity = stack.eg.api("GET", f"/api/kernels/{kernel_id}")[1]["last_activity"]
    record = stack.node.record(pod["metadata"]["namespace"], pod["metadata"]["name"])
    wait_for(lambda: record.deleted, timeout=CULL_IDLE + CULL_INTERVAL + 30, what="the kernel pod's deletion")
    idle = record.deleted - datetime.fromisoformat(last_activity.replace("Z", "+00:00")).timestamp()
    figures["last_activity_to_pod_deleted_s"] = round(idle, 2)
    assert CULL_IDLE - 0.5 <= idle <= CULL_IDLE + CULL_INTERVAL + 20
    wait_for(lambda: record.stopped, timeout=15, what="the kernel process to stop")
    # EG forgets the kernel once its shutdown ends; Jupyter Server when it lists the gateway's kernels.
    wait_for(lambda: stack.eg.api("GET", f"/api/kernels/{kernel_id}")[0] == 404, timeout=30, what="EG's 404")
    listed = stack.jupyter.api("GET", "/api/kernels")
    assert listed[0] == 200 and kernel_id not in [k["id"] for k in listed[1]], listed
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not stack.kernel_pods(), timeout=10, what="no kernel pods")
    left = stack.kernel_pods()
    figures["kernel_pods_left_after_culling"] = len(left)
    assert not left, [p["metadata"]["name"] for p in left]
    assert not stack.node.running()


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_after_a_gateway_restart_no_kernel_pod_is_left_that_no_gateway_culls(stack, signal_name, figures):
    """Issue 11 item 5: SIGTERM is a Recreate rollout, SIGKILL a crash (OOM, lost node)."""
    wait_for(lambda: not stack.kernel_pods(), timeout=30, what="no kernel pods before the restart")

    def connected_kernel(i: int) -> tuple[int, dict, lr.KernelWS | None]:
        status, kernel = stack.eg_post({"env": {**CLIENT_ENV, "KERNEL_USERNAME": f"restart-{i}"}})
        # Connected, as an open notebook tab: not culled while the gateway runs.
        return status, kernel, lr.KernelWS(stack.eg.url, kernel["id"], stack.eg.token) if status == 201 else None

    with ThreadPoolExecutor(2) as pool:
        started = list(pool.map(connected_kernel, range(2)))
    kernels = [kernel["id"] for status, kernel, _ in started if status == 201]
    sockets = [ws for _, _, ws in started if ws]
    try:
        assert len(kernels) == 2, f"{started}{failure(stack)}"
        before = len(stack.kernel_pods())
        stopped = stack.kill_gateway(getattr(signal, signal_name))
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                ws.close()
    after_stop = len(stack.kernel_pods())
    running_after_stop = len(stack.node.running())
    t0 = time.monotonic()
    stack.start_gateway()
    restarted = time.monotonic() - t0
    wait_for(lambda: not stack.kernel_pods(), timeout=CULL_IDLE + CULL_INTERVAL + 20, what="no kernel pods")
    gone = time.monotonic() - t0
    figures[f"restart.{signal_name}"] = {
        "kernel_pods_before": before,
        "gateway_exit_s": stopped["seconds"],
        "kernel_pods_after_gateway_exit": after_stop,
        "kernel_processes_after_gateway_exit": running_after_stop,
        "gateway_restart_s": round(restarted, 2),
        "seconds_from_restart_to_no_kernel_pod": round(gone, 2),
        "sweep_log": stack.init_logs.get("sweep-kernels", "").strip()[-200:],
    }
    assert before == 2
    wait_for(lambda: not stack.node.running(), timeout=15, what="the node to stop every kernel")
    status, listed = stack.eg.api("GET", "/api/kernels")
    assert status == 200 and not [k for k in listed if k["id"] in kernels], listed
