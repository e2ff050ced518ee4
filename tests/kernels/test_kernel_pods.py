"""Kernel pods for real, on a real node: Enterprise Gateway 3.3.0 in the gateway pod the hooks
render creates each kernel pod through the API server with its KubernetesProcessProxy; the pod
passes `restricted` and the notebook namespace's ResourceQuota, the kube-scheduler places it
and the kubelet runs it (containerd, runc); the kernel runs `1+1` for the Jupyter Server in the
notebook's pod and opens the files that server saves in the workspace (one local
PersistentVolume mounted in both pods); EG culls it and the kubelet stops the deleted pod.
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
from kubeapi import ApiError

pytestmark = [pytest.mark.kernels, pytest.mark.node]

CULL_IDLE, CULL_INTERVAL = 4, 1
KERNEL_DEFAULTS = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
GPU_PROFILE = {
    "name": "python_gpu",
    "displayName": "Python with a GPU",
    "image": ks.GPU_IMAGE,
    "resources": KERNEL_DEFAULTS,
    "maxResources": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1},
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": ks.PREEMPTIBLE,
}
MISSING_IMAGE = "elyra/kernel-missing:0.0"  # no image the node has, and no registry to pull from
# A start that fails says why well before kernelLaunchTimeout (60 s here).
FAIL_FAST_S = 15
GATEWAY_SPEC = {
    "cullIdleTimeout": CULL_IDLE,
    "cullInterval": CULL_INTERVAL,
    "allowedNamespaces": [ks.NOTEBOOK_NS],
    "kernelLaunchTimeout": 60,
    "kernelProfiles": [
        {"name": "python_kubernetes", "displayName": "Python", "image": ks.KERNEL_IMAGE,
         "resources": KERNEL_DEFAULTS, "maxResources": {"cpu": "1", "memory": "1Gi"}},
        GPU_PROFILE,
        {"name": "python_no_image", "displayName": "Python (image not on any registry)",
         "image": MISSING_IMAGE, "resources": KERNEL_DEFAULTS},
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


def failure(stack: ks.KernelStack) -> str:
    """What to read when a kernel did not start: EG's log and the kernel pods' states."""
    pods = {p["metadata"]["name"]: p["status"].get("containerStatuses") or p["status"] for p in stack.kernel_pods()}
    return f"\n--- EG log ---\n{stack.eg.log_tail(30)}\n--- kernel pods ---\n{json.dumps(pods)[:3000]}"


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
    assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"] == stack.cp.node_name
    assert pod["status"]["containerStatuses"][0]["state"].get("running"), pod["status"]
    t0 = time.monotonic()
    result = notebook_kernel["ws"].execute("1+1", timeout=60)
    figures["first_execute_1_plus_1_s"] = round(time.monotonic() - t0, 2)
    assert (result["status"], result["result"]) == ("ok", "2"), result
    # The kernel runs in the pod's container (its hostname is the pod's), as the pod's user.
    result = notebook_kernel["ws"].execute("import os, socket; socket.gethostname(), os.getuid()", timeout=30)
    hostname, uid = result["result"].strip("()").split(", ")
    assert hostname.strip("'") == pod["metadata"]["name"], result
    assert int(uid) == pod["spec"]["securityContext"]["runAsUser"] != 0, result


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


def test_the_gateways_own_token_may_create_kernel_pods_only(stack, notebook_kernel):
    """Enterprise Gateway created the kernel pod as the gateway's ServiceAccount with the kernel pod
    policy of manifests/rbac in force; with that same token, a copy of the pod is admitted and the
    copy with a Secret mounted is refused by the policy."""
    pod = stack.kernel_pod(notebook_kernel["id"])
    sa = stack.deployment(stack.gateway_children)["spec"]["template"]["spec"]["serviceAccountName"]
    token = stack.token(sa, ks.GATEWAY_NS)
    user = f"system:serviceaccount:{ks.GATEWAY_NS}:{ks.GATEWAY}-gateway"
    kubeconfig = stack.cp.token_kubeconfig(user, token, stack.workdir / "gateway.kubeconfig")
    server_set = ("nodeName", "priority")  # the scheduler's binding; the Priority admission's value
    spec = {k: v for k, v in pod["spec"].items() if k not in server_set}
    metadata = {k: pod["metadata"][k] for k in ("namespace", "labels", "annotations")}
    copy = {"apiVersion": "v1", "kind": "Pod", "metadata": {**metadata, "name": "copy"}, "spec": spec}

    def create(obj: dict):
        args = (f"--kubeconfig={kubeconfig}", "create", "--dry-run=server", "-f", "-")
        return stack.cp.kubectl(*args, input=json.dumps(obj), check=False)

    admitted = create(copy)
    assert admitted.returncode == 0, admitted.stderr
    spec = {**spec, "volumes": [*spec["volumes"], {"name": "creds", "secret": {"secretName": "anything"}}]}
    refused = create({**copy, "spec": spec})
    assert refused.returncode != 0, refused.stdout
    assert "ValidatingAdmissionPolicy 'elastic-jupyter-gateway-kernel-pods'" in refused.stderr, refused.stderr


def test_a_file_saved_in_the_notebook_is_what_the_kernel_opens(stack, notebook_kernel):
    """Issue 11 item 4: the workspace is mounted in the notebook and the kernel at the same path."""
    text = f"written through the contents API at {time.time()}"
    status, model = stack.jupyter.api(
        "PUT", "/api/contents/shared.txt", {"type": "file", "format": "text", "content": text}
    )
    assert status in (200, 201), model
    result = notebook_kernel["ws"].execute("print(open('shared.txt').read(), end='')", timeout=30)
    assert result["stdout"] == text, result
    claim = next(c for c in stack.notebook_children if c["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    assert (stack.workspace(ks.NOTEBOOK_NS, claim) / "shared.txt").read_text() == text, "not on the local volume"


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


def test_the_tests_reach_eg_again_after_kubectl_port_forward_exits(stack):
    """kubectl port-forward exits when the pod resets a forwarded connection; the next call forwards
    again (the harness once read the dead forward's port from the shared log, and every later test
    got 'connection refused')."""
    assert stack.eg.api("GET", "/api")[0] == 200
    dead = stack.eg.forward
    dead.stop()
    assert stack.eg.api("GET", "/api")[0] == 200
    assert stack.eg.forward is not dead and stack.eg.forward.alive()
    stack.eg.forward.stop()
    assert "elastic_jupyter_kernel_starts_total" in stack.eg.metrics()


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
    figures[f"steer.{steer}"] = "started, steering ignored" if status == 201 else f"refused {status}: {message(body)}"
    if status == 201:
        assert pod is not None, "EG started the kernel but no pod is in the API server"
        assert holds(pod), f"the client steered the pod: {pod['spec']}"
    else:
        assert status >= 400 and no_pod_named(stack, username), (status, body)
        assert message(body) and "Unknown server error" not in message(body), f"the client is not told why: {body}"


def test_only_the_gateways_own_kernelspecs_start(stack, figures):
    status, specs = stack.eg.api("GET", "/api/kernelspecs")
    assert status == 200
    figures["kernelspecs_served"] = sorted(specs["kernelspecs"])
    for name in ("python3", "spark_python_kubernetes", "R_kubernetes"):
        status, body, _ = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": "stock"}, name=name)
        figures[f"stock_kernelspec.{name}"] = f"{status} {message(body)[:80]}"
        assert status >= 400, f"EG started the stock kernelspec {name}: {body}"
        stack.eg.wait_for_log(rf"NoSuchKernel: No such kernel named {name}")
    others = [
        p["metadata"]["name"] for p in stack.kernel_pods() if not p["metadata"]["name"].startswith(ks.NOTEBOOK + "-")
    ]
    assert no_pod_named(stack, "stock") and not others, f"kernels running besides the notebook's: {others}"


def test_a_kernel_over_its_profile_maximum_is_refused_with_a_message(stack, figures):
    username = "greedy"
    before = counters(stack)
    t0 = time.monotonic()
    status, body, pod = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": username, "KERNEL_CPUS": "3"})
    figures["over_profile_maximum.client_gets"] = f"{status} {message(body)}"
    figures["over_profile_maximum.seconds"] = round(time.monotonic() - t0, 2)
    assert status == 403 and pod is None and no_pod_named(stack, username), (status, body)
    assert message(body) == (
        "refused by the kernel profile python_kubernetes: "
        "KERNEL_CPUS=3 is more than this kernel profile allows (cpu at most 1)"
    )
    assert time.monotonic() - t0 < FAIL_FAST_S
    failed = ("elastic_jupyter_kernel_start_failures_total", "python_kubernetes", "profile")
    assert increase(before, counters(stack)) == {failed: 1}
    # The launcher's stderr still reaches the gateway's log.
    stack.eg.wait_for_log(r"KERNEL_CPUS=3 is more than this kernel profile allows \(cpu at most 1\)")


def test_a_kernel_whose_image_cannot_be_pulled_fails_at_once_naming_the_image(stack, figures):
    username = "no-image"
    before = counters(stack)
    t0 = time.monotonic()
    status, body, pod = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": username}, "python_no_image")
    seconds = time.monotonic() - t0
    figures["image_not_pulled.client_gets"] = f"{status} {message(body)}"
    figures["image_not_pulled.seconds"] = round(seconds, 2)
    assert status == 500 and pod is None, (status, body)
    expected = f"cannot pull the kernel image {MISSING_IMAGE} (ErrImagePull: "
    assert message(body).startswith(expected), message(body)
    assert seconds < FAIL_FAST_S, f"{seconds:.1f} s: the start waited for the launch timeout"
    assert increase(before, counters(stack)) == {
        ("elastic_jupyter_kernel_start_failures_total", "python_no_image", "image"): 1
    }
    # The pod that could not run is deleted (it would hold its quota).
    wait_for(lambda: no_pod_named(stack, username), timeout=30, what="the deletion of the pod that cannot run")


def test_the_user_reads_why_in_jupyterlab(stack, figures):
    """Through the notebook's Jupyter Server (its gateway client) and in JupyterLab's dialog, in
    Chromium, as a user who picks the profile whose image cannot be pulled."""
    from jupyterlab import JupyterLab

    expected = f"cannot pull the kernel image {MISSING_IMAGE}"
    body = {"path": "no-image.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python_no_image"}}
    t0 = time.monotonic()
    status, answer = stack.jupyter.api("POST", "/api/sessions", body, timeout=120)
    figures["notebook_api.image_not_pulled"] = f"{status} {message(answer)} ({time.monotonic() - t0:.1f} s)"
    assert status == 500 and expected in message(answer), (status, answer)
    shot = ks.OUTPUT / "jupyterlab-kernel-start-failed.png"
    with JupyterLab(stack.jupyter.url, stack.jupyter.token, failure_shot=shot) as lab:
        t0 = time.monotonic()
        text = lab.kernel_start_error("Python (image not on any registry)")
        seconds = time.monotonic() - t0
        lab.screenshot(shot)
    figures["jupyterlab.dialog"] = " ".join(text.split())
    figures["jupyterlab.dialog_seconds"] = round(seconds, 2)
    assert expected in " ".join(text.split()), text
    assert seconds < FAIL_FAST_S


def test_a_kernel_whose_pod_ends_on_its_own_is_logged_counted_and_its_model_says_why(stack, figures):
    """Item 2 in part: the process proxy reads why the pod ended (here the kernel process exits
    3; the kubelet reports the pod Failed with the container's exit code)."""
    before = counters(stack)
    status, kernel = stack.eg_post({"env": {**CLIENT_ENV, "KERNEL_USERNAME": "dies"}})
    assert status == 201, f"{status} {kernel}{failure(stack)}"
    ws = lr.KernelWS(stack.eg.url, kernel["id"], stack.eg.token)
    try:
        first = stack.kernel_pod(kernel["id"])["metadata"]["uid"]
        ws.start("import os; os._exit(3)")
        model = wait_for(
            lambda: stack.eg.api("GET", f"/api/kernels/{kernel['id']}")[1].get("last_end"),
            timeout=60,
            what="the kernel's model to say why its pod ended",
        )
    finally:
        ws.close()
    figures["pod_ended.kernel_model_last_end"] = model
    # The kubelet's terminated reason (Completed for 0, Error otherwise) and exit code are the
    # container's entrypoint's (the image's bootstrap-kernel.sh), not the kernel's.
    assert model["reason"] == "exited" and re.fullmatch(
        r"the kernel process ended \((Completed|Error), exit code \d+\)", model["message"]
    ), model
    assert (
        increase(before, counters(stack)).get(("elastic_jupyter_kernel_ends_total", "python_kubernetes", "exited")) == 1
    )
    stack.eg.wait_for_log(r"ended: the kernel process ended \((Completed|Error), exit code \d+\) \[exited\]")
    # EG restarts a dead kernel (autorestart): a new pod.
    wait_for(
        lambda: (stack.kernel_pod(kernel["id"]) or {}).get("metadata", {}).get("uid") not in (None, first),
        timeout=60,
        what="EG's restart of the kernel in a new pod",
    )
    stack.eg.api("DELETE", f"/api/kernels/{kernel['id']}")
    wait_for(lambda: stack.kernel_pod(kernel["id"]) is None, timeout=30, what="the kernel pod's deletion")


def pod_with_uid(stack: ks.KernelStack, kernel_id: str, uid: str) -> dict | None:
    return next((p for p in stack.api.pods(None, f"kernel_id={kernel_id}") if p["metadata"]["uid"] == uid), None)


def pod_deleted(stack: ks.KernelStack, kernel_id: str, uid: str, timeout: float) -> float:
    """When (time.time()) the kernel pod ``uid`` was deleted through the API (a deletion
    timestamp set, or gone)."""

    def deleted():
        pod = pod_with_uid(stack, kernel_id, uid)
        return (pod is None or bool(pod["metadata"].get("deletionTimestamp"))) and time.time()

    return wait_for(deleted, timeout=timeout, what="the kernel pod's deletion")


def pod_gone(stack: ks.KernelStack, kernel_id: str, uid: str, timeout: float, what: str) -> float:
    """When (time.time()) the kubelet had stopped the kernel pod ``uid`` and the API server removed it."""
    return wait_for(lambda: pod_with_uid(stack, kernel_id, uid) is None and time.time(), timeout=timeout, what=what)


def stderr_of(ws: lr.KernelWS, msg_id: str, until: str, timeout: float) -> str:
    """The stderr a cell prints (stream messages child of ``msg_id``) until it holds ``until``."""
    text, deadline = "", time.monotonic() + timeout
    while until not in text:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {until!r} in the cell's stderr within {timeout}s: {text!r}")
        msg = ws.next_message(deadline) or {}
        if (msg.get("parent_header") or {}).get("msg_id") == msg_id and msg.get("msg_type") == "stream":
            text += msg["content"].get("text", "") if msg["content"].get("name") == "stderr" else ""
    return text


# The kubelet reports the pod Failed with the container's terminated reason and exit code.
DIES = "import os; os._exit(3)"
DIED_SAYS = (
    r"The kernel was restarted: the kernel process ended \((Completed|Error), exit code \d+\)\. "
    r"Variables and imports from before are gone\.\n"
)


def connected_session(stack: ks.KernelStack, path: str) -> tuple[dict, lr.KernelWS]:
    """A session on the notebook's Jupyter Server whose kernel answered 1+1 over a websocket.

    The stack culls after 4 idle seconds, and EG culls a kernel still 'starting' with no
    connection: once, Jupyter Server opened its websocket to the gateway 6 s after the start,
    and the kernel was gone. Then, and only then, one more session."""
    body = {"path": path, "type": "notebook", "name": path, "kernel": {}}
    for attempt in (1, 2):
        status, session = stack.jupyter.api("POST", "/api/sessions", body, timeout=120)
        assert status == 201, f"{status} {session}{failure(stack)}"
        kernel_id = session["kernel"]["id"]
        ws = lr.KernelWS(stack.jupyter.url, kernel_id, stack.jupyter.token, timeout=60)
        try:
            assert ws.execute("1+1", timeout=30)["result"] == "2"
            return session, ws
        except lr.LocalRunError:
            ws.close()
            culled = re.search(rf"Culling 'starting' kernel .*\({kernel_id}\)", stack.eg.log())
            if attempt == 2 or not culled:
                raise
            stack.jupyter.api("DELETE", f"/api/sessions/{session['id']}")
    raise AssertionError("unreachable")


def test_the_cell_that_was_running_says_why_its_kernel_died(stack, figures):
    """Item 2: through the notebook's Jupyter Server and the front door, the running cell's output
    says why the kernel's pod ended, before the restart (hooks/kernel_notices.py)."""
    session, ws = connected_session(stack, "dies.ipynb")
    kernel_id = session["kernel"]["id"]
    with ws:
        t0 = time.monotonic()
        cell = ws.start(DIES)
        said = stderr_of(ws, cell, "Variables and imports from before are gone.", timeout=90)
        figures["died.cell_told_s"] = round(time.monotonic() - t0, 2)
    figures["died.cell_stderr"] = said
    assert re.fullmatch(DIED_SAYS, said), said
    stack.jupyter.api("DELETE", f"/api/sessions/{session['id']}")
    wait_for(lambda: stack.kernel_pod(kernel_id) is None, timeout=60, what="the kernel pod's deletion")


def test_jupyterlab_shows_in_the_cell_why_the_kernel_died(stack, figures):
    """The same in Chromium: the cell that was running when the kernel's pod ended shows why."""
    from jupyterlab import JupyterLab

    shot = ks.OUTPUT / "jupyterlab-kernel-died.png"
    with JupyterLab(stack.jupyter.url, stack.jupyter.token, failure_shot=shot) as lab:
        lab.new_notebook()
        assert lab.run("1+1")["output"] == "2"
        t0 = time.monotonic()
        lab.run(DIES, wait=False)
        text = lab.output_with(1, "Variables and imports from before are gone.")
        figures["jupyterlab.died_cell_s"] = round(time.monotonic() - t0, 2)
        lab.screenshot(shot)  # the cell's output, under Lab's own "Kernel Restarting" dialog
        dialog = lab.page.locator(".jp-Dialog")
        if dialog.count():
            dialog.locator(".jp-mod-accept").click()
            dialog.wait_for(state="detached")
        lab.close_and_shut_down()
    figures["jupyterlab.died_cell"] = text
    assert re.fullmatch(DIED_SAYS, text + "\n"), text


def counters(stack: ks.KernelStack) -> dict[tuple, float]:
    """The gateway's kernel counters (hooks/kernel_metrics.py), scraped from its metrics port:
    {(name, profile, reason): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(stack.eg.metrics()):
        for sample in family.samples:
            if sample.name.startswith("elastic_jupyter_kernel_") and sample.name.endswith("_total"):
                out[(sample.name, sample.labels.get("profile"), sample.labels.get("reason"))] = sample.value
    return out


def increase(before: dict, after: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


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
    figures[f"spelling.{case}"] = f"{status} in {time.monotonic() - t0:.1f} s: {message(body)}"
    assert status >= 400 and pod is None and no_pod_named(stack, username), (status, body, pod and pod["spec"])
    name = min(env)  # the guard names the first, in sorted order
    refusal = f"{name!a} is not a kernel variable this gateway takes"
    assert refusal in message(body), f"the client is not told why: {status} {body}"
    stack.eg.wait_for_log(re.escape(refusal))


@pytest.mark.parametrize("value", ["nan", "1e9", "-1", "61"])
def test_a_launch_timeout_the_gateway_would_not_wait_is_refused_at_once(stack, value, figures):
    """Enterprise Gateway reads KERNEL_LAUNCH_TIMEOUT before the guard runs and waits on it
    (nan: for ever); the guard's exit ends that wait before any pod exists."""
    username = f"timeout-{value.replace('.', '-')}"
    t0 = time.monotonic()
    status, body, pod = started_pod(stack, {**CLIENT_ENV, "KERNEL_USERNAME": username, "KERNEL_LAUNCH_TIMEOUT": value})
    elapsed = time.monotonic() - t0
    figures[f"launch_timeout.{value}"] = f"{status} in {elapsed:.1f} s: {message(body)}"
    assert status >= 400 and pod is None and no_pod_named(stack, username), (status, body)
    assert elapsed < GATEWAY_SPEC["kernelLaunchTimeout"] / 2, "the gateway waited on the client's timeout"
    refusal = f"KERNEL_LAUNCH_TIMEOUT={value!r} is not a number of seconds"
    assert refusal in message(body), f"the client is not told why: {status} {body}"
    stack.eg.wait_for_log(re.escape(refusal))


def test_a_launch_timeout_shorter_than_the_start_leaves_no_kernel_pod(stack, figures):
    """The guard allows any timeout above 0; EG gives up before it has read the pod the launcher
    made, and its stock kill() had no pod name: the pod ran on, holding its quota."""
    username = "timeout-short"
    t0 = time.monotonic()
    status, body, pod = started_pod(
        stack, {**CLIENT_ENV, "KERNEL_USERNAME": username, "KERNEL_LAUNCH_TIMEOUT": "0.001"}
    )
    figures["launch_timeout.0.001"] = f"{status} in {time.monotonic() - t0:.1f} s: {message(body)}"
    assert status >= 400 and pod is None, (status, body)
    assert "Waited too long (0.001s)" in message(body), body
    wait_for(lambda: no_pod_named(stack, username), timeout=30, what="no kernel pod left by the timed-out start")
    figures["launch_timeout.0.001.pod_gone_s"] = round(time.monotonic() - t0, 2)


def message(body) -> str:
    return body.get("message") or body.get("reason") or str(body) if isinstance(body, dict) else str(body)


def test_a_gpu_kernel_gets_its_gpu_and_the_profiles_placement_and_the_quota_holds(stack, figures):
    """Issue 11 item 7, and a kernel over the namespace's ResourceQuota (one GPU) is refused."""
    env = {**CLIENT_ENV, "KERNEL_USERNAME": "gpu-user", "KERNEL_GPUS": "1"}
    before = counters(stack)
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
        assert status == 403 and second is None and no_pod_named(stack, "gpu-two"), (status, body)
        assert message(body) == ("over the namespace quota team: requests.nvidia.com/gpu (asked 1, 1 used of 1)")
        stack.eg.wait_for_log(r"exceeded quota: team, requested: requests.nvidia.com/gpu=1")
        assert increase(before, counters(stack)) == {
            ("elastic_jupyter_kernel_starts_total", "python_gpu", None): 1,
            ("elastic_jupyter_kernel_start_failures_total", "python_gpu", "quota"): 1,
        }
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


def gpu_kernel(stack: ks.KernelStack, env: dict) -> tuple[dict, lr.KernelWS]:
    """A connected GPU kernel in the notebook's namespace, once its GPU quota is free again."""
    quota = f"/api/v1/namespaces/{ks.NOTEBOOK_NS}/resourcequotas/team"
    wait_for(
        lambda: stack.api.get(quota)["status"]["used"].get("requests.nvidia.com/gpu") == "0",
        timeout=30,
        what="the namespace's GPU quota free again (resourcequota controller)",
    )
    status, kernel = stack.eg_post({"name": GPU_PROFILE["name"], "env": env})
    assert status == 201, f"{status} {kernel}{failure(stack)}"
    return kernel, lr.KernelWS(stack.eg.url, kernel["id"], stack.eg.token)


def training_job(name: str, priority_class: str) -> dict:
    """A training Job wanting the node's GPU, at a higher priority than kernels; restricted."""
    container = {
        "name": "train",
        "image": ks.KERNEL_IMAGE,  # an image the node has; the Job only holds the GPU
        "command": ["python3", "-c", "import time; time.sleep(600)"],
        "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "metadata": {"labels": {"job": name}},
        "spec": {
            "restartPolicy": "Never",
            "priorityClassName": priority_class,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ks.GATEWAY_NS},
        "spec": {"backoffLimit": 0, "template": pod},
    }


def test_a_training_job_preempts_a_gpu_kernel_and_the_user_is_told(stack, figures):
    """Issue 17 item 3 on the real kube-scheduler: a kernel (PriorityClass value -10) holds the
    node's only GPU; a training Job (value 1000) arrives; the scheduler preempts the kernel pod,
    places the Job's pod, and the gateway says why the kernel ended."""
    stack.cp.apply(
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "training"}, "value": 1000}
    )
    env = {**CLIENT_ENV, "KERNEL_USERNAME": "gpu-preempted", "KERNEL_GPUS": "1"}
    kernel, ws = gpu_kernel(stack, env)
    uid = stack.kernel_pod(kernel["id"])["metadata"]["uid"]
    jobs = f"/apis/batch/v1/namespaces/{ks.GATEWAY_NS}/jobs"
    try:
        before = counters(stack)
        t0 = time.time()
        stack.api.post(jobs, training_job("train", "training"))
        gone = pod_deleted(stack, kernel["id"], uid, timeout=60) - t0

        def job_pod_bound():
            pods = stack.api.pods(ks.GATEWAY_NS, "job=train")
            return pods and pods[0]["spec"].get("nodeName") == stack.cp.node_name and time.time()

        scheduled = wait_for(job_pod_bound, timeout=60, what="the Job's pod on the node") - t0
        last_end = wait_for(
            lambda: stack.eg.api("GET", f"/api/kernels/{kernel['id']}")[1].get("last_end"),
            timeout=60,
            what="the kernel's model to say why its pod ended",
        )
        figures["preemption"] = {
            "job_created_to_kernel_pod_deleted_s": round(gone, 2),
            "job_created_to_job_pod_scheduled_s": round(scheduled, 2),
            "kernel_model_last_end": last_end,
        }
        assert last_end["reason"] == "preempted", last_end
        assert last_end["message"].startswith("preempted by the scheduler for higher-priority work"), last_end
        ended = ("elastic_jupyter_kernel_ends_total", "python_gpu", "preempted")
        assert increase(before, counters(stack)).get(ended) == 1
    finally:
        ws.close()
        stack.api.request("DELETE", f"{jobs}/train", {"propagationPolicy": "Background"})
        for job_pod in stack.api.pods(ks.GATEWAY_NS, "job=train"):
            with contextlib.suppress(ApiError):
                stack.api.delete(f"/api/v1/namespaces/{ks.GATEWAY_NS}/pods/{job_pod['metadata']['name']}", 0)
        wait_for(lambda: not stack.api.pods(ks.GATEWAY_NS, "job=train"), timeout=60, what="the Job's pod gone")
        # EG restarts the preempted kernel, which fails at once (the GPU is the Job's); EG 3.3 may
        # then keep the kernel "restarting": a shutdown waits up to 60 s for that restart (seen here).
        t0 = time.monotonic()
        with contextlib.suppress(TimeoutError, OSError):
            stack.eg.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=90)
        wait_for(
            lambda: stack.eg.api("GET", f"/api/kernels/{kernel['id']}")[0] == 404,
            timeout=90,
            what="EG to forget the preempted kernel",
        )
        figures["preemption.shutdown_after_failed_restart_s"] = round(time.monotonic() - t0, 2)


def test_a_gpu_kernel_no_node_can_take_fails_at_once_naming_the_gpu(stack, figures):
    """The real kube-scheduler: one kernel holds the node's only GPU; a second GPU kernel (in the
    gateway's namespace, which has no quota) is unschedulable, and the user reads why."""
    env = {**CLIENT_ENV, "KERNEL_USERNAME": "gpu-holder", "KERNEL_GPUS": "1"}
    kernel, ws = gpu_kernel(stack, env)
    try:
        assert stack.kernel_pod(kernel["id"])["spec"]["nodeName"] == stack.cp.node_name
        before = counters(stack)
        second = {**env, "KERNEL_USERNAME": "gpu-waiter", "KERNEL_NAMESPACE": ks.GATEWAY_NS}
        t0 = time.monotonic()
        status, body, pod = started_pod(stack, second, GPU_PROFILE["name"])
        seconds = time.monotonic() - t0
        figures["unschedulable.client_gets"] = f"{status} {message(body)}"
        figures["unschedulable.seconds"] = round(seconds, 2)
        assert status == 503 and pod is None, (status, body)
        assert message(body).startswith(
            "no node has a free nvidia.com/gpu (0/1 nodes are available: 1 Insufficient nvidia.com/gpu"
        ), message(body)
        assert seconds < FAIL_FAST_S, f"{seconds:.1f} s: the start waited for the launch timeout"
        failed = ("elastic_jupyter_kernel_start_failures_total", "python_gpu", "unschedulable")
        assert increase(before, counters(stack)) == {failed: 1}
        wait_for(lambda: no_pod_named(stack, "gpu-waiter"), timeout=30, what="the unschedulable pod's deletion")
    finally:
        ws.close()
        stack.eg.api("DELETE", f"/api/kernels/{kernel['id']}")


# --- where the gateway restarts ----------------------------------------------------------------


def test_culling_deletes_the_kernel_pod(stack, notebook_kernel, figures):
    """Last with the notebook's kernel: close its websocket, let it idle, EG culls it; the
    notebook's next kernel tells the user in its first cell."""
    kernel_id = notebook_kernel["id"]
    pod = stack.kernel_pod(kernel_id)
    before = counters(stack)
    # Its last activity is this cell; an open tab keeps a kernel (cullConnected is false).
    assert notebook_kernel["ws"].execute("1+1", timeout=30)["result"] == "2"
    notebook_kernel["ws"].close()
    wait_for(lambda: stack.eg.api("GET", f"/api/kernels/{kernel_id}")[1]["connections"] == 0, timeout=10)
    last_activity = stack.eg.api("GET", f"/api/kernels/{kernel_id}")[1]["last_activity"]
    deleted = pod_deleted(stack, kernel_id, pod["metadata"]["uid"], timeout=CULL_IDLE + CULL_INTERVAL + 30)
    idle = deleted - datetime.fromisoformat(last_activity.replace("Z", "+00:00")).timestamp()
    figures["last_activity_to_pod_deleted_s"] = round(idle, 2)
    culled = ("elastic_jupyter_kernel_ends_total", "python_kubernetes", "culled")
    wait_for(lambda: increase(before, counters(stack)) == {culled: 1}, timeout=15, what="the culled kernel counted")
    assert CULL_IDLE - 0.5 <= idle <= CULL_IDLE + CULL_INTERVAL + 20
    gone = pod_gone(stack, kernel_id, pod["metadata"]["uid"], timeout=60, what="the kubelet to stop the culled pod")
    figures["last_activity_to_pod_gone_s"] = round(gone - deleted + idle, 2)
    # EG forgets the kernel once its shutdown ends; Jupyter Server when it lists the gateway's kernels.
    wait_for(lambda: stack.eg.api("GET", f"/api/kernels/{kernel_id}")[0] == 404, timeout=30, what="EG's 404")
    listed = stack.jupyter.api("GET", "/api/kernels")
    assert listed[0] == 200 and kernel_id not in [k["id"] for k in listed[1]], listed
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not stack.kernel_pods(), timeout=10, what="no kernel pods")
    left = stack.kernel_pods()
    figures["kernel_pods_left_after_culling"] = len(left)
    assert not left, [p["metadata"]["name"] for p in left]
    # The user comes back and JupyterLab opens the notebook again: a new kernel, whose first cell
    # says which kernel the gateway culled and after how long idle (kernel_ends), once.
    body = {"path": "analysis.ipynb", "type": "notebook", "name": "analysis.ipynb", "kernel": {}}
    status, session = stack.jupyter.api("POST", "/api/sessions", body, timeout=120)
    assert status == 201 and session["kernel"]["id"] != kernel_id, f"{status} {session}{failure(stack)}"
    try:
        with lr.KernelWS(stack.jupyter.url, session["kernel"]["id"], stack.jupyter.token) as ws:
            first, second = ws.execute("1+1", timeout=60), ws.execute("2+2", timeout=30)
    finally:
        stack.jupyter.api("DELETE", f"/api/sessions/{session['id']}")
    figures["first_cell_after_culling"] = first["stderr"]
    assert (first["status"], first["result"], second["result"]) == ("ok", "2", "4"), (first, second)
    told = re.fullmatch(
        r"The gateway culled your kernel python_kubernetes at \S+ \S+ UTC after (\d+) idle seconds, "
        r"giving its resources back: variables and imports from that kernel are gone\.\n",
        first["stderr"],
    )
    assert told, first["stderr"] + failure(stack)
    assert CULL_IDLE <= int(told.group(1)) <= CULL_IDLE + CULL_INTERVAL + 20
    assert second["stderr"] == "", "told once"
    wait_for(lambda: not stack.kernel_pods(), timeout=60, what="the new kernel's pod gone with its session")


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
    t0 = time.monotonic()
    stack.wait_gateway(after=stopped["before"])
    restarted = time.monotonic() - t0
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not stack.kernel_pods(), timeout=CULL_IDLE + CULL_INTERVAL + 30, what="no kernel pods")
    left = [p["metadata"]["name"] for p in stack.kernel_pods()]
    gone = time.monotonic() - t0
    figures[f"restart.{signal_name}"] = {
        "kernel_pods_before": before,
        "gateway_exit_s": stopped["seconds"],
        "kernel_pods_after_gateway_exit": after_stop,
        "gateway_restart_s": round(restarted, 2),
        "seconds_from_restart_to_no_kernel_pod": round(gone, 2),
        "kernel_pods_left": left,
    }
    assert before == 2
    assert not left, f"kernel pods no gateway culls after a {signal_name}: {left}"
    # The gateway pod's containers end on SIGTERM, well within its 30 s grace period.
    assert signal_name == "SIGKILL" or stopped["seconds"] < 20, stopped
    status, listed = stack.eg.api("GET", "/api/kernels")
    assert status == 200 and not [k for k in listed if k["id"] in kernels], listed
