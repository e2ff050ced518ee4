"""A JupyterNotebook's status.kernels (hooks/notebook_kernel_status.py), as a pure function."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hooks import notebook_kernel_status as ks
from hooks.models import KernelStatus
from hooks.notebook import customize_notebook, sync_notebook
from tests.builders import gateway, notebook

from .test_notebook import related_gateway

NB, NS, GW = "alice", "team-a", ("gw", "gateways")
T0, T1, T2 = "2026-12-05T10:00:00Z", "2026-12-05T10:05:00Z", "2026-12-05T10:09:00Z"


def pod(kernel_id="k1", started=T0, phase="Running", notebook=NB, namespace=NS, gw=GW, **status) -> dict:
    labels = {**ks.selector(notebook, gw), "kernel_id": kernel_id, ks.PROFILE_LABEL: "python_gpu"}
    return {
        "metadata": {"name": f"{notebook}-{kernel_id}", "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "kernel", "image": "elyra/kernel-py:3.3.0",
                                 "resources": {"limits": {"memory": "512Mi"}}}]},
        "status": {"phase": phase, "startTime": started, **status},
    }  # fmt: skip


def related(*pods) -> dict:
    return {ks.PODS: {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in pods}}


def oom(finished=T1, started=T0) -> dict:
    terminated = {"reason": "OOMKilled", "exitCode": 137, "finishedAt": finished}
    return pod(
        started=started, phase="Failed", containerStatuses=[{"name": "kernel", "state": {"terminated": terminated}}]
    )


def kernels(*pods, previous=None, now=T2) -> list[dict]:
    return ks.kernels(NB, NS, GW, related(*pods), previous, now)


def test_a_running_kernel_is_listed_with_its_profile_pod_and_start():
    assert kernels(pod()) == [
        {"id": "k1", "profile": "python_gpu", "pod": "alice-k1", "phase": "Running", "started": T0}
    ]


def test_a_kernel_that_cannot_be_scheduled_says_why_it_waits():
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}  # fmt: skip
    (entry,) = kernels(pod(phase="Pending", conditions=[unschedulable]))
    assert entry["phase"] == "Pending" and "nvidia.com/gpu" in entry["waiting"]


def test_an_oom_killed_kernel_keeps_its_reason_when_its_pod_is_gone_and_when_it_restarts():
    first = kernels(oom())
    assert first[0]["lastEnd"] == {
        "reason": "oom-killed",
        "message": "out of memory: the kernel used more than its limit of 512Mi",
        "at": T1,
    }
    gone = kernels(previous=first)
    assert gone[0]["phase"] == "Ended" and gone[0]["lastEnd"] == first[0]["lastEnd"]
    restarted = kernels(pod(started=T2), previous=first)
    assert restarted[0]["phase"] == "Running" and restarted[0]["started"] == T2
    assert restarted[0]["lastEnd"] == first[0]["lastEnd"], "why its previous pod ended"


def test_a_kernel_pod_that_vanishes_without_a_reason_was_deleted():
    (ended,) = kernels(previous=kernels(pod()), now=T2)
    assert ended["phase"] == "Ended"
    assert ended["lastEnd"] == {**ks.DELETED, "at": T2}


def test_preempted_is_read_from_the_pods_disruption_condition():
    condition = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                 "message": "preempting to accommodate a higher priority pod"}  # fmt: skip
    (entry,) = kernels(pod(conditions=[condition]))
    assert entry["lastEnd"]["reason"] == "preempted"
    (ended,) = kernels(previous=[entry])
    assert ended["lastEnd"]["reason"] == "preempted"


def test_only_this_notebooks_kernels_of_its_gateway_in_its_namespace_count():
    others = [
        pod("x1", notebook="bob"),
        pod("x2", namespace="team-b"),
        pod("x3", gw=("other", "gateways")),
    ]
    assert kernels(*others) == []


def test_only_the_last_ended_kernels_are_kept():
    previous = [
        {"id": f"k{i:02}", "profile": "p", "pod": "x", "phase": "Ended", "started": T0,
         "lastEnd": {**ks.DELETED, "at": f"2026-12-05T10:{i:02}:00Z"}}
        for i in range(30)
    ]  # fmt: skip
    out = kernels(previous=previous)
    assert [e["id"] for e in out] == [f"k{i:02}" for i in range(30 - ks.MAX_ENDED, 30)]


def test_the_hooks_read_and_write_it():
    nb = notebook(NB, NS, gateway={"name": GW[0], "namespace": GW[1]})
    rules = customize_notebook(nb)["relatedResources"]
    assert ks.related_rule(NB, NS, GW) in rules
    gw = gateway(GW[0], GW[1], allowedNamespaces=[NS])
    result = sync_notebook({**nb, "status": {"kernels": kernels(oom())}}, {}, {**related_gateway(gw)}, T2, "t" * 48)
    (entry,) = result["status"]["kernels"]
    assert entry["phase"] == "Ended" and entry["lastEnd"]["reason"] == "oom-killed"


TEXT = st.one_of(st.none(), st.integers(), st.text(max_size=6), st.sampled_from([T0, T1, T2, ""]))
POD = st.builds(
    pod,
    kernel_id=st.sampled_from(["k1", "k2", "k3"]),
    started=st.one_of(st.sampled_from([T0, T1, T2]), TEXT),
    phase=st.one_of(st.sampled_from(["Pending", "Running", "Failed", "Succeeded"]), TEXT),
    notebook=st.sampled_from([NB, "bob"]),
)
ENTRY = st.fixed_dictionaries(
    {"id": TEXT, "profile": TEXT, "pod": TEXT, "phase": st.one_of(TEXT, st.just("Ended")), "started": TEXT},
    optional={"lastEnd": st.one_of(TEXT, st.fixed_dictionaries({"reason": TEXT, "message": TEXT, "at": TEXT}))},
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(POD, st.builds(oom, st.sampled_from([T0, T1, T2])))), st.one_of(TEXT, st.lists(ENTRY)))
def test_any_pods_and_previous_status_give_a_valid_stable_status(pods, previous):
    out = kernels(*pods, previous=previous)
    for entry in out:
        KernelStatus.model_validate(entry)
    json.dumps(out)
    assert len([e for e in out if e["phase"] == "Ended"]) <= ks.MAX_ENDED
    # Nothing moves on a resync with nothing new: Metacontroller would write the status forever.
    assert kernels(*pods, previous=out, now="2026-12-06T00:00:00Z") == out
