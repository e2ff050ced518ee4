"""A JupyterNotebook's ``status.kernels``: its kernels, as their pods show them.

The notebook's customize hook asks Metacontroller for the kernel pods of this notebook (its
namespace; labels component=kernel, the notebook's name and its gateway's, which the gateway's
front door stamps from the caller's identity). Each sync turns them into one entry per kernel:

    {id, profile, pod, phase, started, waiting?, lastEnd?: {reason, message, at}}

- ``waiting``: why a Pending kernel pod does not run (no node with a free GPU, a missing image);
- ``lastEnd``: why the kernel's pod last ended when not by its user, read from the pod as the
  scheduler and kubelet leave it (OOMKilled, preempted, evicted, exited: kernel_reasons);
- a kernel whose pod is gone stays listed as ``Ended``; with no reason seen it was deleted
  (by the gateway: shut down, or culled when idle; or by someone else). Only the last
  ``MAX_ENDED`` ended kernels are kept.

The status is rebuilt from the previous one plus the pods observed now: pods vanish between
syncs (the gateway deletes an ended kernel's pod when it restarts it), so what was seen is
carried forward. The previous status is input like any other: read defensively.
"""

from __future__ import annotations

from . import kernel_reasons as reasons
from .children import as_dict as _dict
from .children import gateway_client_labels
from .kernelspecs import NOTEBOOK_LABEL, PROFILE_LABEL

PODS = "Pod.v1"
MAX_ENDED = 10
ENDED = "Ended"
DELETED = {
    "reason": "deleted",
    "message": "the kernel pod was deleted: shut down or culled by the gateway, or deleted by someone",
}


def selector(name: str, gateway: tuple[str, str]) -> dict[str, str]:
    return {"component": "kernel", NOTEBOOK_LABEL: name, **gateway_client_labels(*gateway)}


def related_rule(name: str, namespace: str, gateway: tuple[str, str]) -> dict:
    """The customize hook's rule: this notebook's kernel pods, in its namespace only."""
    return {"apiVersion": "v1", "resource": "pods", "namespace": namespace,
            "labelSelector": {"matchLabels": selector(name, gateway)}}  # fmt: skip


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def kernels(name: str, namespace: str, gateway: tuple[str, str], related: dict, previous, now: str) -> list[dict]:
    """The new ``status.kernels`` from the observed pods and the previous ``status.kernels``."""
    before = {e["id"]: e for e in _previous(previous)}
    current: dict[str, dict] = {}
    wanted = selector(name, gateway)
    for pod in sorted(_dict(related.get(PODS)).values(), key=_started):
        meta = _dict(_dict(pod).get("metadata"))
        labels = _dict(meta.get("labels"))
        kernel_id = _text(labels.get("kernel_id"))
        if (
            meta.get("namespace") != namespace
            or kernel_id is None
            or any(labels.get(k) != v for k, v in wanted.items())
        ):
            continue
        current[kernel_id] = _entry(kernel_id, pod, before.get(kernel_id), now)
    ended = [_ended(e, now) for kernel_id, e in before.items() if kernel_id not in current]
    ended.sort(key=lambda e: _dict(e.get("lastEnd")).get("at") or "")
    return list(current.values()) + ended[-MAX_ENDED:]


def _started(pod) -> str:
    pod = _dict(pod)
    return (
        _text(_dict(pod.get("status")).get("startTime"))
        or _text(_dict(pod.get("metadata")).get("creationTimestamp"))
        or ""
    )


def _entry(kernel_id: str, pod: dict, before: dict | None, now: str) -> dict:
    meta, status = _dict(pod.get("metadata")), _dict(pod.get("status"))
    entry = {
        "id": kernel_id,
        "profile": _text(_dict(meta.get("labels")).get(PROFILE_LABEL)) or "",
        "pod": _text(meta.get("name")) or "",
        "phase": _text(status.get("phase")) or "Pending",
        # A pod without a start time yet: the time it was first seen, kept (no churn).
        "started": _started(pod) or (before or {}).get("started") or now,
    }
    if entry["phase"] == "Pending":
        waiting = reasons.pod_start_failure(pod)
        if waiting is not None:
            entry["waiting"] = waiting.message
    end = reasons.pod_end(pod)
    last = _dict(before.get("lastEnd")) if before else {}
    if end is not None:
        same = last.get("reason") == end.code and before is not None and before.get("started") == entry["started"]
        entry["lastEnd"] = last if same else {"reason": end.code, "message": end.message, "at": _finished(pod) or now}
    elif before and before.get("started") != entry["started"]:
        # A new pod of the same kernel (the gateway restarted it): why the old one ended.
        entry["lastEnd"] = last if (last.get("at") or "") >= before.get("started", "") else {**DELETED, "at": now}
    elif last:
        entry["lastEnd"] = last
    return entry


def _ended(before: dict, now: str) -> dict:
    if before["phase"] == ENDED:
        return before
    last = _dict(before.get("lastEnd"))
    this_pod = (last.get("at") or "") >= before.get("started", "")
    kept = {k: v for k, v in before.items() if k != "waiting"}
    return {**kept, "phase": ENDED, "lastEnd": last if last and this_pod else {**DELETED, "at": now}}


def _finished(pod: dict) -> str | None:
    for container in _dict(pod.get("status")).get("containerStatuses") or []:
        finished = _text(_dict(_dict(_dict(container).get("state")).get("terminated")).get("finishedAt"))
        if finished:
            return finished
    return None


def _previous(previous) -> list[dict]:
    """The previous status.kernels, keeping only well-formed entries (anyone with the status
    subresource could have written it)."""
    out = []
    for entry in previous if isinstance(previous, list) else []:
        entry = _dict(entry)
        fields = {k: entry.get(k) for k in ("id", "profile", "pod", "phase", "started")}
        if not all(isinstance(v, str) for v in fields.values()) or not fields["id"]:
            continue
        last = _dict(entry.get("lastEnd"))
        if all(isinstance(last.get(k), str) for k in ("reason", "message", "at")):
            fields["lastEnd"] = {k: last[k] for k in ("reason", "message", "at")}
        if isinstance(entry.get("waiting"), str):
            fields["waiting"] = entry["waiting"]
        out.append(fields)
    return out[: MAX_ENDED + 100]
