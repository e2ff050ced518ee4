"""Why a kernel did not start or ended, in the user's words (hooks/kernel_reasons.py): the
statuses and launcher output the cluster really produces, and generated odd ones."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hooks import kernel_reasons as kr
from hooks import kernelspecs

QUOTA_403 = (
    'pods "gpu-two-1" is forbidden: exceeded quota: team, requested: requests.nvidia.com/gpu=1, '
    "used: requests.nvidia.com/gpu=1, limited: requests.nvidia.com/gpu=1"
)


def launcher_stderr(message: str, code: int = 403) -> str:
    """What launch_kubernetes.py leaves on stderr when the API server refuses its pod."""
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    return "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "/usr/local/share/jupyter/kernels/p/scripts/launch_kubernetes.py", line 212, in <module>',
            "kubernetes.client.exceptions.ApiException: (403)",
            "Reason: Forbidden",
            "HTTP response headers: HTTPHeaderDict({'Content-Type': 'application/json'})",
            f"HTTP response body: {json.dumps(body)}",
            "",
        ]
    )


def pod(status: dict, limits: dict | None = None, image: str = "elyra/kernel-py:3.3.0") -> dict:
    container = {"name": "kernel", "image": image, "resources": {"limits": limits or {}}}
    return {"metadata": {"name": "k"}, "spec": {"containers": [container]}, "status": status}


def waiting(reason: str, message: str) -> dict:
    return {
        "phase": "Pending",
        "containerStatuses": [{"name": "kernel", "state": {"waiting": {"reason": reason, "message": message}}}],
    }


def test_the_quota_refusal_names_the_resource_and_the_figures():
    reason = kr.launcher_failure(launcher_stderr(QUOTA_403))
    assert reason == kr.Reason(
        "quota", 403, "over the namespace quota team: requests.nvidia.com/gpu (asked 1, 1 used of 1)"
    )
    two = kr.api_refusal(
        "exceeded quota: team, requested: limits.cpu=3,requests.cpu=3, used: limits.cpu=1,requests.cpu=1, "
        "limited: limits.cpu=2,requests.cpu=2"
    )
    assert two.message == (
        "over the namespace quota team: limits.cpu (asked 3, 1 used of 2), requests.cpu (asked 3, 1 used of 2)"
    )


def test_a_quota_that_needs_limits_says_which():
    reason = kr.api_refusal(
        'pods "x" is forbidden: failed quota: team: must specify limits.cpu for: kernel; limits.memory for: kernel'
    )
    assert reason.code == "quota"
    assert (
        reason.message
        == "the namespace quota requires limits.cpu, limits.memory, which this kernel profile does not set"
    )


def test_pod_security_and_other_refusals_keep_the_api_servers_words():
    psa = kr.api_refusal('pods "x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true')
    assert psa.code == "pod-security" and 'violates PodSecurity "restricted:latest"' in psa.message
    rbac = kr.launcher_failure(launcher_stderr('pods is forbidden: User "system:serviceaccount:g:gw" cannot create'))
    assert rbac.code == "api" and rbac.message.startswith("the cluster refused the kernel pod: pods is forbidden")


def test_the_guards_refusal_is_passed_on():
    why = "KERNEL_GPUS=2 is more than this kernel profile allows (nvidia.com/gpu at most 1)"
    reason = kr.launcher_failure(f"some warning\nkernel start refused by profile python_gpu: {why}\n")
    assert reason == kr.Reason("profile", 403, f"refused by the kernel profile python_gpu: {why}")


def test_an_unknown_launcher_failure_quotes_its_last_line():
    assert kr.launcher_failure("a\nValueError: boom\n").message == "the kernel launcher failed: ValueError: boom"
    assert kr.launcher_failure("").message == "the kernel launcher failed: it exited without a message"
    assert kr.launcher_failure("HTTP response body: {not json\n").code == "launcher"


def test_an_unschedulable_pod_says_what_no_node_has():
    message = (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )
    status = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}],
    }
    reason = kr.pod_start_failure(pod(status))
    assert reason == kr.Reason(
        "unschedulable",
        503,
        "no node has a free nvidia.com/gpu (0/1 nodes are available: 1 Insufficient nvidia.com/gpu)",
    )
    # As kube-scheduler 1.36 says it (tests/kernels, the real scheduler).
    real = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. no new claims to deallocate, preemption: 0/1 nodes"
    assert kr.unschedulable(real) == reason.message
    selector = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    assert kr.unschedulable(selector).startswith("no node matches the kernel profile's nodeSelector")
    taint = "0/1 nodes are available: 1 node(s) had untolerated taint(s). no new claims to deallocate, preemption: x"
    assert kr.unschedulable(taint) == (
        "every node has a taint the kernel profile does not tolerate "
        "(0/1 nodes are available: 1 node(s) had untolerated taint(s))"
    )
    assert kr.unschedulable(taint).startswith("every node has a taint")
    assert kr.unschedulable("") == "no node can run the kernel now"
    unbound = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. not found"
    assert kr.unschedulable(unbound).startswith("its workspace volume is not bound to any storage yet (0/1 nodes")


def test_a_pod_whose_image_cannot_be_pulled_names_the_image():
    reason = kr.pod_start_failure(pod(waiting("ErrImagePull", 'failed to pull "x/y:1": not found'), image="x/y:1"))
    assert reason == kr.Reason(
        "image", 500, 'cannot pull the kernel image x/y:1 (ErrImagePull: failed to pull "x/y:1": not found)'
    )
    backoff = kr.pod_start_failure(pod(waiting("ImagePullBackOff", ""), image="x/y:1"))
    assert backoff.message == "cannot pull the kernel image x/y:1 (ImagePullBackOff)"
    invalid = kr.pod_start_failure(pod(waiting("InvalidImageName", "bad"), image="X::1"))
    assert invalid.message.startswith("invalid image name X::1")
    config = kr.pod_start_failure(pod(waiting("CreateContainerConfigError", 'secret "s" not found')))
    assert config.code == "container-config"


def test_a_pod_still_on_its_way_is_no_failure():
    assert kr.pod_start_failure(pod({})) is None
    assert (
        kr.pod_start_failure(pod({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}))
        is None
    )
    assert kr.pod_start_failure(pod(waiting("ContainerCreating", ""))) is None
    assert kr.pod_start_failure(pod({"phase": "Running"})) is None


PREEMPTING = "default-scheduler: preempting to accommodate a higher priority pod"


def test_why_a_pod_ended():
    oom = {
        "phase": "Failed",
        "containerStatuses": [{"name": "kernel", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}],
    }
    assert kr.pod_end(pod(oom, {"memory": "512Mi"})) == kr.Reason(
        "oom-killed", 500, "out of memory: the kernel used more than its limit of 512Mi"
    )
    preempted = {
        "phase": "Running",
        "conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler", "message": PREEMPTING}
        ],
    }
    assert kr.pod_end(pod(preempted)).code == "preempted"
    assert "higher-priority work" in kr.pod_end(pod(preempted)).message
    evicted = {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}
    assert kr.pod_end(pod(evicted)).message == "evicted by the node (The node was low on resource: memory.)"
    api = {
        "conditions": [
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
            }
        ]
    }
    assert kr.pod_end(pod(api)).code == "evicted"
    exited = {
        "phase": "Failed",
        "containerStatuses": [{"name": "kernel", "state": {"terminated": {"reason": "Error", "exitCode": 1}}}],
    }
    assert kr.pod_end(pod(exited)).message == "the kernel process ended (Error, exit code 1)"
    assert kr.pod_end(pod({"phase": "Running"})) is None
    # Gone: the last status seen says why, else the events about it, else someone else deleted it.
    preempting = {"reason": "Preempted", "message": "Preempted by pod 1b2c on node fake-node"}
    assert kr.pod_gone(pod({"phase": "Running"}), [{"reason": "Scheduled"}, preempting]) == kr.Reason(
        "preempted",
        500,
        "preempted by the scheduler for higher-priority work (Preempted by pod 1b2c on node fake-node)",
    )
    evicted_event = {"reason": "Evicted", "message": "The node was low on resource: memory."}
    assert kr.event_end([evicted_event]).code == "evicted"
    assert kr.event_end([{"reason": "Killing", "message": "Stopping container kernel"}]) is None
    assert kr.pod_gone(pod(preempted)).code == "preempted"
    assert kr.pod_gone(pod({"phase": "Running"})) == kr.Reason(
        "deleted", 500, "the kernel pod was deleted, not by the gateway"
    )
    assert kr.pod_start_failure(pod(oom)).message.startswith(
        "the kernel pod ended before the kernel started: out of memory"
    )


def test_the_shipped_proxy_and_reasons_are_these_modules():
    from pathlib import Path

    gateway = {"kernelProfiles": None}
    from hooks.models import JupyterGatewaySpec

    data = kernelspecs.config_map("gw", "ns", {}, JupyterGatewaySpec.model_validate(gateway))["data"]
    hooks = Path(kr.__file__).parent
    for name in kernelspecs.PROXY_MODULES:
        assert data[name] == (hooks / name).read_text()
    items = kernelspecs.gateway_pod_parts("gw", "img")["volumes"][-1]["configMap"]["items"]
    assert {"key": "kernel_proxy.py", "path": "kernel_proxy.py"} in items


# --- odd statuses: never an exception, always one short line and a known code ------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["status", "spec", "conditions", "containerStatuses", "containers", "state", "waiting", "terminated", "reason",
     "message", "type", "phase", "name", "image", "resources", "limits", "memory", "exitCode"]
)  # fmt: skip
PODLIKE = st.recursive(
    st.none() | st.text(max_size=40) | st.sampled_from(["False", "True", "Unschedulable", "OOMKilled", "ErrImagePull",
                                                         "PodScheduled", "DisruptionTarget", "Failed", "Evicted"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)  # fmt: skip


def well_formed(reason: kr.Reason | None, codes) -> None:
    if reason is None:
        return
    assert reason.code in codes and reason.status in (200, 403, 500, 503)
    assert "\n" not in reason.message and 0 < len(reason.message) <= 400


@settings(max_examples=300)
@given(PODLIKE | JSON)
def test_any_pod_gets_a_short_answer_or_none(value):
    well_formed(kr.pod_start_failure(value), kr.START_FAILURES + kr.ENDS)
    well_formed(kr.pod_end(value), kr.ENDS)
    well_formed(kr.pod_gone(value), kr.ENDS)
    well_formed(kr.pod_gone(value, value), kr.ENDS)


@settings(max_examples=300)
@given(st.text(max_size=300) | st.builds(launcher_stderr, st.text(max_size=600)))
def test_any_launcher_output_gets_a_short_answer(text):
    well_formed(kr.launcher_failure(text), kr.START_FAILURES)
    well_formed(kr.api_refusal(text), kr.START_FAILURES)


def test_a_namespace_the_gateway_cannot_read_is_named():
    reason = kr.pod_unreadable("kube-system", 403, "Forbidden")
    assert reason == kr.Reason(
        kr.REFUSED_BY_API, 403, "the gateway cannot read kernel pods in namespace kube-system: 403 Forbidden"
    )


@settings(max_examples=300)
@given(st.text(max_size=80), st.none() | st.integers(), st.none() | st.text(max_size=300))
def test_any_unreadable_namespace_gets_a_short_answer(namespace, status, reason):
    well_formed(kr.pod_unreadable(namespace, status, reason), kr.START_FAILURES)
