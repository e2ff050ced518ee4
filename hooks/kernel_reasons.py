"""Why a kernel did not start, or ended, in the user's words: pure functions of what the
API server and the kernel launcher say.

Enterprise Gateway 3.3 waits for a kernel pod until ``kernelLaunchTimeout`` whatever the pod
says, then answers a generic 500; a launcher that exits early (the guard's refusal, a quota's
403) gets "Check Enterprise Gateway log". kernel_proxy.py (our process proxy) asks these
functions at each poll and fails the start at once with their message.

Each answer is a ``Reason``: a short ``code`` (a metric label: a fixed, small set), the HTTP
status Enterprise Gateway answers with, and a one-line ``message`` for the user.

Standard library only and Python 3.8+: the hook ships this file's text in the gateway's
kernelspec ConfigMap and the gateway image's interpreter imports it.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

# Start failures (codes): refused before a pod exists, or a pod that cannot run.
REFUSED_BY_PROFILE = "profile"  # the guard (kernel_guard.py) refused the client's values
OVER_QUOTA = "quota"  # the namespace's ResourceQuota refused the pod
POD_SECURITY = "pod-security"  # the namespace's Pod Security level refused the pod
REFUSED_BY_API = "api"  # another refusal of the API server (RBAC, admission, validation)
UNSCHEDULABLE = "unschedulable"  # the scheduler finds no node
IMAGE = "image"  # the kubelet cannot pull the kernel image
CONTAINER_CONFIG = "container-config"  # the kubelet cannot create the container
LAUNCHER = "launcher"  # the launcher failed otherwise
# Ends (codes), before or after the kernel connected.
OOM_KILLED = "oom-killed"
PREEMPTED = "preempted"
EVICTED = "evicted"
CULLED = "culled"
EXITED = "exited"
DELETED = "deleted"

START_FAILURES = (REFUSED_BY_PROFILE, OVER_QUOTA, POD_SECURITY, REFUSED_BY_API, UNSCHEDULABLE, IMAGE)
START_FAILURES += (CONTAINER_CONFIG, LAUNCHER)
ENDS = (OOM_KILLED, PREEMPTED, EVICTED, CULLED, EXITED, DELETED)

GUARD_PREFIX = "kernel start refused by profile "  # kernel_guard.main's line
IMAGE_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_WAITING = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
_MAX = 400  # characters of a message quoted from the cluster
_INSUFFICIENT = re.compile(r"Insufficient ([A-Za-z0-9./_-]*[A-Za-z0-9])")
_QUOTA = re.compile(r"exceeded quota: ([^,]+), requested: (\S+), used: (\S+), limited: (\S+)")
_DRA_NOISE = "no new claims to deallocate"  # the 1.34+ scheduler's DRA plugin, in every message
_MUST_SPECIFY = re.compile(r"(?:must specify |; )([a-z]+\.[A-Za-z0-9./_-]+) for")


class Reason(NamedTuple):
    code: str
    status: int
    message: str


def _clip(text: str) -> str:
    """One line, at most _MAX characters: an HTTP reason and a dialog take one short line."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX else line[: _MAX - 1] + "…"


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _str(value) -> str:
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------- before a pod exists


def api_refusal(message: str) -> Reason:
    """The API server's message refusing the kernel pod (the Status of a failed create)."""
    message = _str(message)
    quota = _QUOTA.search(message)
    if quota:
        name, requested, used, limited = quota.groups()
        over = _over_quota(requested, used, limited)
        return Reason(OVER_QUOTA, 403, _clip(f"over the namespace quota {name}: {over}"))
    if "failed quota" in message:  # "failed quota: team: must specify limits.cpu for: kernel; ..."
        what = ", ".join(_MUST_SPECIFY.findall(message)) or "requests and limits"
        return Reason(
            OVER_QUOTA, 403, _clip(f"the namespace quota requires {what}, which this kernel profile does not set")
        )
    if "violates PodSecurity" in message:
        return Reason(POD_SECURITY, 403, _clip(f"the namespace's Pod Security level refuses the kernel pod: {message}"))
    return Reason(REFUSED_BY_API, 403, _clip(f"the cluster refused the kernel pod: {message}"))


def pod_unreadable(namespace: str, status: int | None, reason: str | None) -> Reason:
    """The gateway may not list kernel pods in ``namespace`` (its RoleBinding is elsewhere)."""
    code = 403 if status == 403 else 500
    why = " ".join(str(x) for x in (status, reason) if x)
    return Reason(REFUSED_BY_API, code, _clip(f"the gateway cannot read kernel pods in namespace {namespace}: {why}"))


def _over_quota(requested: str, used: str, limited: str) -> str:
    """'requests.cpu (asked 3, 1 used of 2)' per resource the quota refused (the API server
    lists only those, comma-separated as name=quantity)."""

    def values(text: str) -> dict:
        return dict(part.split("=", 1) for part in text.split(",") if "=" in part)

    asked, in_use, limit = values(requested), values(used), values(limited)
    parts = [f"{name} (asked {asked[name]}, {in_use.get(name, '0')} used of {limit.get(name, '?')})" for name in asked]
    return ", ".join(parts) or requested


def launcher_failure(stderr: str) -> Reason:
    """Why the launcher (the guard, then launch_kubernetes.py) exited before a pod ran, from
    what it wrote on stderr: the guard's refusal, the API server's Status in an ApiException,
    or its last line."""
    lines = [line.strip() for line in _str(stderr).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(GUARD_PREFIX):
            profile, _, why = line[len(GUARD_PREFIX) :].partition(": ")
            return Reason(REFUSED_BY_PROFILE, 403, _clip(f"refused by the kernel profile {profile}: {why}"))
    for line in reversed(lines):
        if line.startswith("HTTP response body:"):
            try:
                status = json.loads(line.split(":", 1)[1])
            except ValueError:
                continue
            message = _str(_dict(status).get("message"))
            if message:
                return api_refusal(message)
    last = lines[-1] if lines else "it exited without a message"
    return Reason(LAUNCHER, 500, _clip(f"the kernel launcher failed: {last}"))


# ---------------------------------------------------------------------- a pod that does not run


def pod_start_failure(pod: dict) -> Reason | None:
    """Why a kernel pod, still waited for, will not run, or None while it may still.

    Unschedulable (the scheduler's PodScheduled condition), an image the kubelet cannot pull,
    a container it cannot create, or a pod that ended before its kernel connected."""
    pod = _dict(pod)
    status = _dict(pod.get("status"))
    ended = pod_end(pod)
    if ended is not None:
        return Reason(ended.code, 500, _clip(f"the kernel pod ended before the kernel started: {ended.message}"))
    for condition in _list(status.get("conditions")):
        condition = _dict(condition)
        if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return Reason(UNSCHEDULABLE, 503, _clip(unschedulable(_str(condition.get("message")))))
    images = {c.get("name"): c.get("image") for c in _list(_dict(pod.get("spec")).get("containers")) if _dict(c)}
    for container in _list(status.get("containerStatuses")):
        container = _dict(container)
        waiting = _dict(_dict(container.get("state")).get("waiting"))
        reason, message = _str(waiting.get("reason")), _str(waiting.get("message"))
        image = _str(images.get(container.get("name"))) or _str(container.get("image")) or "?"
        if reason in IMAGE_WAITING:
            what = "invalid image name" if reason == "InvalidImageName" else "cannot pull the kernel image"
            detail = f"{reason}: {message}" if message else reason
            return Reason(IMAGE, 500, _clip(f"{what} {image} ({detail})"))
        if reason in CONFIG_WAITING:
            return Reason(CONTAINER_CONFIG, 500, _clip(f"the kernel container cannot be created ({reason}: {message})"))
    return None


def unschedulable(message: str) -> str:
    """The scheduler's '0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) had
    untolerated taint ... preemption: ...' as what the user lacks, the message kept."""
    head = message.split(" preemption:", 1)[0].replace(_DRA_NOISE, "").strip().rstrip(" .,")
    scarce = sorted(set(_INSUFFICIENT.findall(head)))
    if scarce:
        what = f"no node has a free {' or '.join(scarce)}"
    elif "node affinity/selector" in head or "didn't match Pod's node affinity" in head:
        what = "no node matches the kernel profile's nodeSelector or affinity"
    elif "untolerated taint" in head:
        what = "every node has a taint the kernel profile does not tolerate"
    elif "unbound immediate PersistentVolumeClaims" in head:
        what = "its workspace volume is not bound to any storage yet"
    elif "pod affinity" in head:
        what = "no node can run it beside its notebook"
    else:
        what = "no node can run the kernel now"
    return f"{what} ({head})" if head else what


# ---------------------------------------------------------------------- why a pod ended


def pod_end(pod: dict) -> Reason | None:
    """Why a kernel pod ended (or is ending) for a reason other than its user, or None.

    Preempted and evicted pods carry the DisruptionTarget condition (Kubernetes 1.26+);
    the kubelet reports OOMKilled as the container's terminated reason."""
    pod = _dict(pod)
    status = _dict(pod.get("status"))
    for condition in _list(status.get("conditions")):
        condition = _dict(condition)
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            reason, message = _str(condition.get("reason")), _str(condition.get("message"))
            if reason == "PreemptionByScheduler":
                return Reason(PREEMPTED, 500, _clip(f"preempted by the scheduler for higher-priority work ({message})"))
            if reason:
                return Reason(EVICTED, 500, _clip(f"evicted ({reason}: {message})"))
    if status.get("reason") == "Evicted":
        return Reason(EVICTED, 500, _clip(f"evicted by the node ({_str(status.get('message'))})"))
    for container in _list(status.get("containerStatuses")):
        terminated = _dict(_dict(_dict(container).get("state")).get("terminated"))
        if not terminated:
            continue
        if terminated.get("reason") == "OOMKilled":
            limit = _memory_limit(pod, _dict(container).get("name"))
            return Reason(OOM_KILLED, 500, _clip("out of memory: the kernel used more than its limit" + limit))
        code = terminated.get("exitCode")
        detail = _str(terminated.get("reason")) or "exited"
        return Reason(EXITED, 500, _clip(f"the kernel process ended ({detail}, exit code {code})"))
    if status.get("phase") in ("Failed", "Succeeded"):
        return Reason(EXITED, 500, _clip(f"the kernel pod {status['phase'].lower()}"))
    return None


def pod_gone(last_seen: dict, events: list | None = None) -> Reason:
    """Why a kernel pod that is gone, or ends, without a reason in its status: the reason of its
    last seen status (a preemption's DisruptionTarget condition, when it was seen), else of the
    events about it (the scheduler's "Preempted", a kubelet's or the API's "Evicted"), else
    deleted by someone other than the gateway."""
    return (
        pod_end(last_seen)
        or event_end(events)
        or Reason(DELETED, 500, "the kernel pod was deleted, not by the gateway")
    )


def event_end(events) -> Reason | None:
    """The newest event (core/v1, as listed) that says a pod was preempted or evicted."""
    found = None
    for event in _list(events):
        event = _dict(event)
        reason, message = _str(event.get("reason")), _str(event.get("message") or event.get("note"))
        if reason == "Preempted":
            found = Reason(PREEMPTED, 500, _clip(f"preempted by the scheduler for higher-priority work ({message})"))
        elif reason in ("Evicted", "TaintManagerEviction", "Killing") and "evict" in (reason + message).lower():
            found = Reason(EVICTED, 500, _clip(f"evicted ({reason}: {message})"))
    return found


def _memory_limit(pod: dict, container_name) -> str:
    for container in _list(_dict(pod.get("spec")).get("containers")):
        container = _dict(container)
        if container.get("name") == container_name:
            limit = _dict(_dict(container.get("resources")).get("limits")).get("memory")
            return f" of {limit}" if isinstance(limit, str) else ""
    return ""


def culled(idle_seconds: float) -> Reason:
    return Reason(CULLED, 200, f"culled after {round(idle_seconds)} idle seconds")
